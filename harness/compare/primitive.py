"""The one comparison primitive, trace alignment and first divergence (frames: ``images``).

Everything numeric in the harness is judged by :func:`compare`: ``|other - ref| <= atol +
rtol * |ref|`` element by element (numpy.testing.assert_allclose semantics, NaN equal to NaN,
infinities equal when they have the same sign), with the reference (the C) on the right of the
relative term. It returns a typed result instead of raising so that callers can report.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from harness.compare import keys
from harness.compare.traces import TraceRecord, Value
from harness.model import gcpause

DEFAULT_ATOL = 1e-6
DEFAULT_RTOL = 0.0


@dataclass(frozen=True)
class Tolerance:
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL

    def __str__(self) -> str:
        return f"{self.atol:g}" if self.rtol == 0 else f"{self.atol:g}+{self.rtol:g}·|C|"


@dataclass(frozen=True)
class Comparison:
    """The verdict of :func:`compare` over arrays (or scalars).

    worst: flat index of the element with the largest excess over its allowance (the largest
    |Δ| when all pass); allowed: the allowance there; n_failed: elements over tolerance.
    """

    ok: bool
    max_abs_diff: float
    worst: int
    allowed: float
    n_failed: int
    n: int


def compare(ref, other, tol: Tolerance) -> Comparison:
    ref_a = np.asarray(ref, dtype=np.float64).ravel()
    oth_a = np.asarray(other, dtype=np.float64).ravel()
    if ref_a.shape != oth_a.shape:
        raise ValueError(f"compare: shapes differ {ref_a.shape} vs {oth_a.shape}")
    if ref_a.size == 0:
        return Comparison(True, 0.0, 0, tol.atol, 0, 0)
    return compare_rows(ref_a[None, :], oth_a[None, :], np.array([tol.atol]), np.array([tol.rtol]))[0]


def compare_rows(ref: np.ndarray, other: np.ndarray, atol: np.ndarray, rtol: np.ndarray) -> list[Comparison]:
    """:func:`compare` of each row of two 2-D float64 arrays of one shape, row i under
    Tolerance(atol[i], rtol[i]).

    The one element-wise rule, vectorised across rows: a trace has thousands of short value
    lists, and one numpy pass per list cost seconds.
    """
    n_rows, n = ref.shape
    if n == 0:
        return [Comparison(True, 0.0, 0, float(a), 0, 0) for a in atol]
    if np.isfinite(ref).all() and np.isfinite(other).all():
        return _compare_finite_rows(ref, other, atol, rtol)
    both_nan = np.isnan(ref) & np.isnan(other)
    same_inf = np.isinf(ref) & (ref == other)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(other - ref)
        # The relative part needs a finite reference: 0·inf and r·NaN would make the bar NaN (shown as
        # 'bar None') and r·inf would let any finite value pass an infinite reference.
        allowed = atol[:, None] + np.where(np.isfinite(ref), rtol[:, None] * np.abs(ref), 0.0)
        passed = (diff <= allowed) | both_nan | same_inf
    diff = np.where(both_nan | same_inf, 0.0, diff)
    # A NaN difference (one side NaN) is the worst possible excess.
    excess = np.where(passed, -np.inf, np.nan_to_num(diff - allowed, nan=np.inf))
    n_failed = (~passed).sum(axis=1)
    nan_diff = np.isnan(diff)
    diff_no_nan = np.where(nan_diff, -np.inf, diff)   # argmax/max of it = nanargmax/nanmax
    largest = np.where(np.isfinite(diff).any(axis=1), diff_no_nan.argmax(axis=1), 0)
    worst = np.where(n_failed > 0, excess.argmax(axis=1), largest)
    # NaN on one side only has no size: max|Δ| says NaN, never the largest of the other elements.
    max_abs = np.where(nan_diff.any(axis=1), math.nan, diff_no_nan.max(axis=1))
    allowed_at = allowed[np.arange(n_rows), worst]
    return _comparisons(n_failed, max_abs, worst, allowed_at, n)


def _compare_finite_rows(ref: np.ndarray, other: np.ndarray, atol: np.ndarray, rtol: np.ndarray) -> list[Comparison]:
    """:func:`compare_rows` when every value is finite (a full frame nearly always is): the same
    rule without the NaN and infinity masks, which cost most of a frame's comparison."""
    n_rows, n = ref.shape
    with np.errstate(over="ignore"):
        diff = np.subtract(other, ref)
        np.abs(diff, out=diff)
        allowed = atol[:, None] + rtol[:, None] * np.abs(ref) if rtol.any() else atol[:, None]
        failed = diff > allowed
    n_failed = np.count_nonzero(failed, axis=1)
    worst = diff.argmax(axis=1)
    for i in np.flatnonzero(n_failed):  # the largest excess over its allowance, as compare_rows
        row_allowed = allowed[i] if allowed.shape[1] == n else allowed[i, 0]
        worst[i] = np.where(failed[i], diff[i] - row_allowed, -np.inf).argmax()
    allowed_at = allowed[np.arange(n_rows), worst] if allowed.shape[1] == n else allowed[:, 0]
    return _comparisons(n_failed, diff.max(axis=1), worst, allowed_at, n)


def _comparisons(n_failed: np.ndarray, max_abs: np.ndarray, worst: np.ndarray, allowed_at: np.ndarray,
                 n: int) -> list[Comparison]:
    return [Comparison(ok=bool(f == 0), max_abs_diff=float(d), worst=int(w), allowed=float(a), n_failed=int(f), n=n)
            for f, d, w, a in zip(n_failed.tolist(), max_abs.tolist(), worst.tolist(), allowed_at.tolist())]


class ToleranceTable:
    """Default tolerance plus per-key overrides (keyed by catalog name, any kind)."""

    def __init__(self, default: Tolerance = Tolerance(), per_key: Optional[Mapping[str, Tolerance]] = None):
        self.default = default
        self.per_key = dict(per_key or {})

    def for_key(self, name: str) -> Tolerance:
        return self.per_key.get(name, self.default)


# ---------------------------------------------------------------- alignment

VERDICT_OK = "ok"
VERDICT_DIVERGED = "diverged"
VERDICT_C_ONLY = "C only"
VERDICT_PY_ONLY = "torch only"
VERDICT_TEXT = "text differs"


@dataclass(frozen=True)
class Row:
    """One aligned (key, occurrence[, φ tic]) with its verdict."""

    kind: str
    key: str
    occurrence: int
    phi_tic: Optional[int]
    stage: str
    components: tuple[str, ...]
    c: Optional[tuple[Value, ...]]
    py: Optional[tuple[Value, ...]]
    tolerance: Tolerance
    verdict: str
    max_abs_diff: Optional[float] = None
    worst_component: Optional[int] = None
    component_filter: Optional[int] = None
    defect: Optional[str] = None
    #: How the values were made comparable (a unit conversion: compare/conventions.py).
    note: Optional[str] = None
    #: For per-source lines (kind 'source'): the source they belong to.
    source_index: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.verdict == VERDICT_OK

    @property
    def label(self) -> str:
        base = f"phi[{self.phi_tic}].{self.key}" if self.kind == "phi" else self.key
        if self.kind == "source":
            base = f"source[{self.source_index}].{self.key}"
        if self.component_filter is not None:
            base += "." + self.component_name(self.component_filter)
        return base if self.occurrence == 0 else f"{base}#{self.occurrence}"

    def component_name(self, i: Optional[int]) -> str:
        if i is None:
            return ""
        return self.components[i] if i < len(self.components) else str(i)

    def sort_key(self) -> tuple:
        stage_rank, pos = keys.rank(self.kind, self.key)
        return (stage_rank, pos, self.key, self.occurrence, self.phi_tic if self.phi_tic is not None else -1,
                self.source_index if self.source_index is not None else -1)


def _is_numeric(vals: Sequence[Value]) -> bool:
    return all(isinstance(v, (int, float)) for v in vals)


def _comparable(c: Optional[TraceRecord], py: Optional[TraceRecord]) -> bool:
    """Both sides present with the same number of numeric values: judged by :func:`compare`."""
    return (c is not None and py is not None and len(c.values) == len(py.values)
            and _is_numeric(c.values) and _is_numeric(py.values))


def _row(c: Optional[TraceRecord], py: Optional[TraceRecord], tol: Tolerance, verdict: str,
         res: Optional[Comparison] = None) -> Row:
    ref = c or py
    assert ref is not None
    comps = (c.components if c and c.components else (py.components if py else ()))
    return Row(kind=ref.kind, key=ref.key, occurrence=ref.occurrence, phi_tic=ref.phi_tic,
               source_index=ref.source_index, stage=keys.stage_of(ref.kind, ref.key), components=comps,
               c=c.values if c else None, py=py.values if py else None, tolerance=tol, verdict=verdict,
               max_abs_diff=res.max_abs_diff if res else None, worst_component=res.worst if res else None)


def _numeric_row(c: TraceRecord, py: TraceRecord, tol: Tolerance, res: Comparison) -> Row:
    return _row(c, py, tol, VERDICT_OK if res.ok else VERDICT_DIVERGED, res)


def compare_records(c: Optional[TraceRecord], py: Optional[TraceRecord], tol: Tolerance) -> Row:
    if c is None:
        return _row(c, py, tol, VERDICT_PY_ONLY)
    if py is None:
        return _row(c, py, tol, VERDICT_C_ONLY)
    if _comparable(c, py):
        return _numeric_row(c, py, tol, compare(c.values, py.values, tol))
    same = [str(v) for v in c.values] == [str(v) for v in py.values]
    return _row(c, py, tol, VERDICT_OK if same else VERDICT_TEXT)


def compare_many(pairs: Sequence[tuple[Optional[TraceRecord], Optional[TraceRecord], Tolerance]]) -> list[Row]:
    """:func:`compare_records` of each (C, torch, tolerance); numeric pairs with the same number
    of values are judged together (one :func:`compare_rows` per length)."""
    rows: list[Optional[Row]] = [None] * len(pairs)
    by_length: dict[int, list[int]] = {}
    for i, (c, py, tol) in enumerate(pairs):
        if _comparable(c, py):
            by_length.setdefault(len(c.values), []).append(i)  # type: ignore[union-attr]
        else:
            rows[i] = compare_records(c, py, tol)
    for n, idx in by_length.items():
        shape = (len(idx), n)
        ref = np.array([pairs[i][0].values for i in idx], dtype=np.float64).reshape(shape)  # type: ignore[union-attr]
        oth = np.array([pairs[i][1].values for i in idx], dtype=np.float64).reshape(shape)  # type: ignore[union-attr]
        atol = np.array([pairs[i][2].atol for i in idx], dtype=np.float64)
        rtol = np.array([pairs[i][2].rtol for i in idx], dtype=np.float64)
        for i, res in zip(idx, compare_rows(ref, oth, atol, rtol)):
            c, py, tol = pairs[i]
            rows[i] = _numeric_row(c, py, tol, res)  # type: ignore[arg-type]
    return rows  # type: ignore[return-value]


def align(c_records: Iterable[TraceRecord], py_records: Iterable[TraceRecord],
          tolerances: ToleranceTable) -> list[Row]:
    """Pair records by (kind, key, φ tic, occurrence, source index) and return rows in dataflow order."""
    with gcpause.paused():
        c_map = {r.ident: r for r in c_records}
        py_map = {r.ident: r for r in py_records}
        idents = list(c_map) + [i for i in py_map if i not in c_map]
        rows = compare_many([(c_map.get(i), py_map.get(i), tolerances.for_key(i[1])) for i in idents])
        return sorted(rows, key=Row.sort_key)


def narrow(rows: Iterable[Row], selectors: Sequence[keys.Selector]) -> list[Row]:
    """Keep the rows a ``--keys`` selection names; a component selector keeps one value."""
    out: list[Row] = []
    for row in rows:
        for sel in selectors:
            if not sel.matches(row.kind, row.key):
                continue
            if sel.component is None:
                out.append(row)
                break
            n = max(len(row.c or ()), len(row.py or ()))
            if sel.component >= n:
                continue
            c = (row.c[sel.component],) if row.c and sel.component < len(row.c) else None
            py = (row.py[sel.component],) if row.py and sel.component < len(row.py) else None
            sub = compare_records(
                _fake(row, c, "C") if c is not None else None,
                _fake(row, py, "PY") if py is not None else None, row.tolerance)
            out.append(_with(sub, components=row.components, component_filter=sel.component))
            break
    return out


def _fake(row: Row, values: tuple[Value, ...], source: str) -> TraceRecord:
    return TraceRecord(source, row.kind, row.key, values, row.occurrence, row.phi_tic,
                       source_index=row.source_index)


def _with(row: Row, **changes) -> Row:
    return replace(row, **changes)


@dataclass(frozen=True)
class Divergence:
    first: Optional[Row]
    downstream: tuple[Row, ...] = ()

    @property
    def found(self) -> bool:
        return self.first is not None


def first_divergence(rows: Sequence[Row]) -> Divergence:
    bad = [r for r in rows if not r.ok]
    if not bad:
        return Divergence(None)
    return Divergence(bad[0], tuple(bad[1:]))
