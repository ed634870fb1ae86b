"""`nbparity calibrate`: measure the engine's error in a dtype against the recordings and store
the bars derived from it in each case file (``[profiles.<dtype>]``, see harness.registry.profiles).

Every reference of a case is run in the dtype (recordings only, no pictures, no extra traces).
What is measured is rounding, not physics: trace rows that a registered C defect explains are
left out, and a spec-mode run against the instrumented C (which differs from it by design)
contributes only the rows that agree in float64 and not its image.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import tomli_w

from harness.model.errors import HarnessError
from harness.model.result import ParityResult
from harness.pipeline import Context, RunOptions, run_case
from harness.registry import profiles
from harness.registry.cases import Case, MeasuredError
from harness.service import gate, workers



@dataclass
class Sample:
    """The error of one run (one case, one mode): per trace key (max |Δ| where |C| < 1, max
    |Δ|/|C| where |C| ≥ 1) and the image's."""

    run: str
    keys: dict[str, tuple[float, float]] = field(default_factory=dict)
    image_rel: Optional[float] = None
    image_corr: Optional[float] = None
    note: str = ""
    excluded: list[str] = field(default_factory=list)

    @property
    def abs_small(self) -> float:
        return max((a for a, _ in self.keys.values()), default=0.0)

    @property
    def rel(self) -> float:
        return max((r for _, r in self.keys.values()), default=0.0)


def _numbers(values: Optional[Sequence]) -> list[float]:
    return [float(v) for v in values or () if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _merge(into: dict[str, tuple[float, float]], key: str, small: float, rel: float) -> None:
    a, r = into.get(key, (0.0, 0.0))
    into[key] = (max(a, small), max(r, rel))


def trace_error(result: ParityResult, exclude: Iterable[str] = ()) -> dict[str, tuple[float, float]]:
    """{key: (max |Δ| where |C| < 1, max |Δ|/|C| where |C| ≥ 1)} over the rows that count."""
    skip = set(exclude)
    out: dict[str, tuple[float, float]] = {}
    for row in result.rows:
        if row.defect or row.label in skip:
            continue
        c, t = _numbers(row.c), _numbers(row.torch)
        if len(c) != len(t) or len(c) != len(row.c or ()):
            continue
        for cv, tv in zip(c, t):
            if math.isfinite(cv) and math.isfinite(tv):
                d = abs(tv - cv)
                _merge(out, row.key, d if abs(cv) < 1 else 0.0, d / abs(cv) if abs(cv) >= 1 else 0.0)
    return out


def _opts(mode: str, dtype: str) -> RunOptions:
    return RunOptions(mode=mode, source="recorded", dtype=dtype, allow_known_defects=True, pictures=False,
                      autotrace=False, command_line=f"nbparity calibrate --dtype {dtype}")


def provisional(case: Case, dtype: str) -> Case:
    """``case`` with the bars of a zero measured error in ``dtype``, so that it can be run in it."""
    zero = MeasuredError(trace_max_abs_small=0.0, trace_max_rel=0.0)
    return case.model_copy(update={"profiles": {**case.profiles, dtype: profiles.derive(case, dtype, zero)}})


def measure_item(item: gate.GateItem, dtype: str, ctx: Context) -> Sample:
    """Run one (case, mode) in ``dtype`` and measure its error."""
    case, mode = provisional(item.case, dtype), item.mode
    ref = case.references[mode]  # type: ignore[index]
    sample = Sample(run=f"{mode}: {ref.recording or 'live'}")
    by_design = mode == "spec" and ref.kind == "instrumented-c"
    try:
        res = run_case(case, _opts(mode, dtype), ctx)
        if by_design:  # only the rows that agree in float64 measure rounding
            base = run_case(case, _opts(mode, profiles.BASE_DTYPE), ctx)
            sample.excluded = [r.label for r in base.rows if r.verdict != "ok"]
    except HarnessError as e:
        sample.note = f"not measured: {e.message}"
        return sample
    if res.status not in ("parity", "divergence"):
        sample.note = f"not measured: {res.status}: {res.failure}"
        return sample
    sample.keys = trace_error(res, sample.excluded)
    if res.image and not by_design:
        sample.image_rel, sample.image_corr = res.image.get("rel_to_max"), res.image.get("correlation")
    return sample


def combine(samples: Sequence[Sample]) -> MeasuredError:
    """One case's measured error: the worst over its runs, per key and for the image."""
    good = [s for s in samples if not s.note]
    per_key: dict[str, tuple[float, float]] = {}
    for s in good:
        for key, (a, r) in s.keys.items():
            _merge(per_key, key, a, r)
    rels = [s.image_rel for s in good if isinstance(s.image_rel, float)]
    corrs = [s.image_corr for s in good if isinstance(s.image_corr, float)]
    return profiles.split_keys(per_key).model_copy(update=dict(
        image_rel_to_max=max(rels) if rels else None, image_correlation=min(corrs) if corrs else None,
        runs=[s.run for s in good]))


def profile_text(case: Case, dtype: str, measured: MeasuredError) -> str:
    """The ``[profiles.<dtype>]`` tables for a case file (TOML)."""
    prof = profiles.derive(case, dtype, measured)
    data = prof.model_dump(mode="json", exclude_none=True)
    if not data["tolerance"].get("keys"):
        data["tolerance"].pop("keys", None)
    return tomli_w.dumps({"profiles": {dtype: data}})


def store(path: Path, case: Case, dtype: str, measured: MeasuredError) -> str:
    """The case file's text with its ``[profiles.<dtype>]`` replaced (written atomically)."""
    text = path.read_text(encoding="utf-8")
    note = profiles.file_note(dtype)
    cut = text.find("\n" + note)
    if cut < 0:
        cut = text.find(f"\n[profiles.{dtype}]")
    head = (text if cut < 0 else text[:cut]).rstrip("\n") + "\n"
    new = head + "\n" + note + profile_text(case, dtype, measured)
    Case.model_validate(tomllib.loads(new))  # never write a case file that no longer loads
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
    return new


def calibrate(cases: Sequence[Case], dtype: str, ctx: Context, jobs: int = 1,
              on_done: Callable[[int, Sample], None] = lambda i, s: None) -> dict[str, MeasuredError]:
    """Measure every reference of every case; return each case's combined error."""
    items = gate.plan(cases)
    if jobs > 1 and len(items) > 1:
        samples = workers.run_parallel(items, lambda it: measure_item(it, dtype, ctx), on_done, jobs)
    else:
        samples = []
        for i, it in enumerate(items):
            samples.append(measure_item(it, dtype, ctx))
            on_done(i, samples[-1])
    per_case: dict[str, list[Sample]] = {}
    for it, s in zip(items, samples):
        per_case.setdefault(it.case.name, []).append(s)
    return {name: combine(ss) for name, ss in per_case.items()}


__all__ = ["Sample", "calibrate", "combine", "measure_item", "profile_text", "provisional", "store",
           "trace_error"]
