"""How the tests judge the engine against the C: the harness's own trace parser
(harness/compare/traces.py) and its one comparison primitive (harness/compare/primitive.py).

Tests never re-implement either: a NaN, a missing key or a wrong count fails here exactly as it
fails `nbparity run`.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from harness.compare import traces
from harness.compare.images import ImageThreshold, image_metrics
from harness.compare.primitive import Tolerance, compare, compare_records

#: The engine's bar on trace values (|Δ| ≤ 1e-6 + 1e-9·|C|) and on images (max|Δ| ≤ 1e-6·max|C|).
TRACE_TOL = Tolerance(atol=1e-6, rtol=1e-9)
IMAGE_BAR = ImageThreshold(rtol_of_max=1e-6)


def pixel_records(stdout: str, source: Optional[str] = None) -> list[traces.TraceRecord]:
    """The traced pixel's records and the φ lines, in print order (set-up lines left out)."""
    return [r for r in traces.parse(stdout, source) if r.kind in ("pixel", "phi")]


def values_of(stdout: str, key: str, source: Optional[str] = None, kind: str = "pixel",
              source_index: Optional[int] = None) -> list[tuple]:
    """Every occurrence's values of one key, in print order (``source_index``: the
    ``TRACE_C_SOURCE<n>:`` lines of source n, kind 'source')."""
    if source_index is not None:
        kind = "source"
    return [r.values for r in traces.parse(stdout, source)
            if r.kind == kind and r.key == key and getattr(r, "source_index", None) == source_index]


def first_values(stdout: str, key: str, source: Optional[str] = None, kind: str = "pixel",
                 source_index: Optional[int] = None) -> tuple:
    found = values_of(stdout, key, source, kind, source_index)
    assert found, f"no {kind} trace record {key!r} in the output"
    return found[0]


def setup_records(stdout: str, source: Optional[str] = None) -> list[traces.TraceRecord]:
    return [r for r in traces.parse(stdout, source) if r.kind == "setup"]


def close(c, other, tol: Tolerance = TRACE_TOL) -> bool:
    """Whether ``other`` is within ``tol`` of the C value(s) ``c`` (NaN against a number is not)."""
    return compare(c, other, tol).ok


def trace_problems(c_records: Sequence[traces.TraceRecord], py_records: Sequence[traces.TraceRecord],
                   skip_keys: Iterable[str] = (), tol: Tolerance = TRACE_TOL) -> list[str]:
    """Every record compared in order (all repetitions, every φ field); returns the failures."""
    c_ids = [r.ident for r in c_records]
    py_ids = [r.ident for r in py_records]
    if c_ids != py_ids:
        i = next((i for i, (a, b) in enumerate(zip(c_ids, py_ids)) if a != b), min(len(c_ids), len(py_ids)))
        return [f"record sequence differs at #{i}: C {c_ids[i:i + 3]} vs engine {py_ids[i:i + 3]} "
                f"({len(c_ids)} vs {len(py_ids)} records)"]
    skip = set(skip_keys)
    problems = []
    for i, (c, py) in enumerate(zip(c_records, py_records)):
        if c.key in skip:
            continue
        row = compare_records(c, py, tol)
        if c.components != py.components:
            problems.append(f"#{i} {c.key}: labels {c.components} vs the engine's {py.components}")
        elif not row.ok:
            where = f"phi[{c.phi_tic}].{c.key}" if c.kind == "phi" else c.key
            problems.append(f"#{i} {where}: C {c.values} vs engine {py.values} ({row.verdict})")
    return problems


def image_problem(ref: np.ndarray, image: np.ndarray, bar: ImageThreshold = IMAGE_BAR) -> Optional[str]:
    """Why ``image`` fails the bar against the C's ``ref`` (None when it passes)."""
    m = image_metrics(np.asarray(ref), np.asarray(image), bar)
    if m.ok:
        return None
    return (f"image: {m.reason or 'diverged'}; max|Δ|/max|C| = {m.rel_to_max:.3g}, NaN C/engine "
            f"{m.nan_c}/{m.nan_py}, worst pixel {m.worst_pixel}")
