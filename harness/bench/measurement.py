"""One benched configuration's numbers: its timings, peak RSS and image parity, and the
statistics over them."""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional, Sequence

ENGINE = "engine"
C = "c"
#: In-process render seconds and the floor (harness.bench.per_case.measure_probe).
PROBE = "probe"
#: Harness overhead of `nbparity run` (harness.bench.per_case.measure_overhead).
HARNESS = "harness"


def summarize(values: Sequence[float]) -> Optional[dict[str, Any]]:
    """min, median, max, mean of the steady-state runs (None when there are none)."""
    vals = [float(v) for v in values]
    if not vals:
        return None
    return {"n": len(vals), "min": min(vals), "median": statistics.median(vals), "max": max(vals),
            "mean": statistics.fmean(vals)}


def ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
    if num is None or den is None or not math.isfinite(num) or not math.isfinite(den) or den <= 0:
        return None
    return num / den


@dataclass
class Measurement:
    """One configuration (case × runner × device × dtype × threads): warm-up and steady runs."""

    case: str
    runner: str                      # ENGINE, C, PROBE (render s), HARNESS (overhead s), or an impl's name
    device: str
    dtype: str
    threads: int
    command: str = ""
    warmup_s: list[float] = field(default_factory=list)
    runs_s: list[float] = field(default_factory=list)
    peak_rss_bytes: Optional[int] = None
    wall: Optional[dict[str, Any]] = None
    parity_ok: Optional[bool] = None  # every image (warm-up included) within the bar
    parity_bar: Optional[dict[str, Any]] = None
    parity: Optional[dict[str, Any]] = None   # metrics of the worst image
    exit_codes: list[Optional[int]] = field(default_factory=list)
    error: Optional[str] = None
    floor: Optional[dict[str, Any]] = None      # PROBE: the floor's seconds (summarize)
    evaluations: Optional[int] = None           # PROBE: evaluations the render (and the floor) did
    process_s: list[float] = field(default_factory=list)  # HARNESS: the run's whole-process walls
    load_s: list[float] = field(default_factory=list)     # HARNESS: the engine's load in each run

    @property
    def counts(self) -> bool:
        """The timing counts: it ran, and (for the engine) every image passed its bar."""
        if self.error is not None or self.wall is None:
            return False
        return self.runner != ENGINE or bool(self.parity_ok)

    @property
    def median(self) -> Optional[float]:
        return self.wall["median"] if self.wall else None

    @property
    def min(self) -> Optional[float]:
        return self.wall["min"] if self.wall else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts
        return d


def badness(met: dict[str, Any]) -> tuple[bool, float]:
    """Order image metrics worst last: a failed bar first, then the larger max|Δ| (NaN worst)."""
    d = met.get("max_abs_diff")
    return (not met["ok"], math.inf if d is None else float(d))


def parity_summary(met: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    if met is None:
        return None
    keep = ("ok", "max_abs_diff", "max_abs_c", "rel_to_max", "allowed", "n_failed", "correlation",
            "sum_ratio", "worst_pixel", "reason")
    return {k: met.get(k) for k in keep}


def by(ms: Iterable[Measurement], **kw) -> Optional[Measurement]:
    for m in ms:
        if all(getattr(m, k) == v for k, v in kw.items()):
            return m
    return None
