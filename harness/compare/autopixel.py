"""Choosing pixels to trace when the images diverge but the traced pixel agrees (harness.autotrace traces them).

One traced pixel says nothing about a divergence elsewhere on the detector. The picks cover the
usual suspects: the worst |Δ| pixel, the worst relative Δ on a Bragg peak (bright pixels, where
a relative error is physics, not round-off), a detector-edge pixel (largest scattering angle,
where geometry errors grow) and a background pixel (where the weak terms live).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional, Sequence

import numpy as np

WORST = "worst |Δ|"
PEAK = "worst relative Δ on a Bragg peak"
EDGE = "edge"
BACKGROUND = "background"


@dataclass(frozen=True)
class ChosenPixel:
    slow: int
    fast: int
    reason: str
    c_value: float = math.nan
    torch_value: float = math.nan
    abs_diff: float = math.nan
    rel_diff: float = math.nan

    @property
    def pixel(self) -> tuple[int, int]:
        return (self.slow, self.fast)

    def describe(self) -> str:
        return (f"({self.slow}, {self.fast}) {self.reason}: C {self.c_value:.6g} torch {self.torch_value:.6g} "
                f"|Δ| {self.abs_diff:.3g} rel {self.rel_diff:.3g}")


def _pick(score: np.ndarray, mask: np.ndarray, tiebreak: Optional[np.ndarray] = None) -> Optional[int]:
    """Flat index of the best score inside mask (ties: larger tiebreak, then row-major first)."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    s = score.ravel()[idx]
    if tiebreak is None:
        return int(idx[int(np.argmax(s))])
    tb = tiebreak.ravel()[idx]
    # lexsort sorts ascending by the last key first; take the last element = best.
    order = np.lexsort((-idx, tb, s))
    return int(idx[order[-1]])


def choose_pixels(c_image: np.ndarray, torch_image: np.ndarray, *, exclude: Iterable[Sequence[int]] = (),
                  peak_fraction: float = 0.1, background_fraction: float = 1e-3) -> list[ChosenPixel]:
    """Up to four distinct pixels, in the order worst |Δ|, peak, edge, background.

    exclude: pixels already traced. peak_fraction: a Bragg-peak pixel has C ≥ this × max C.
    background_fraction: a background pixel has C ≤ this × max C. Pixels that are 0 in both
    images (masked, outside the ROI) are not traceable by the C and are avoided when others
    exist. The two Δ-driven picks are skipped when the images are identical.
    """
    c = np.asarray(c_image, dtype=np.float64)
    t = np.asarray(torch_image, dtype=np.float64)
    if c.shape != t.shape or c.ndim != 2:
        raise ValueError(f"choose_pixels needs two 2-D images of one shape, got C {c.shape} and torch {t.shape}")
    both_nan = np.isnan(c) & np.isnan(t)
    with np.errstate(invalid="ignore"):
        absd = np.abs(t - c)
    absd = np.where(both_nan, 0.0, np.where(np.isnan(absd), np.inf, absd))  # one-sided NaN is worst
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(absd == 0, 0.0, absd / np.abs(c))
    rel = np.where(np.isnan(rel), np.inf, rel)

    available = np.ones(c.shape, dtype=bool)
    for s, f in exclude:
        if 0 <= s < c.shape[0] and 0 <= f < c.shape[1]:
            available[s, f] = False
    rendered = ~((c == 0) & (t == 0)) & ~both_nan
    if not (rendered & available).any():
        rendered = np.ones_like(rendered)
    finite_c = c[np.isfinite(c)]
    cmax = float(finite_c.max()) if finite_c.size else 0.0

    out: list[ChosenPixel] = []

    def take(flat: Optional[int], reason: str) -> None:
        if flat is None:
            return
        s, f = (int(i) for i in np.unravel_index(flat, c.shape))
        available[s, f] = False
        out.append(ChosenPixel(s, f, reason, float(c[s, f]), float(t[s, f]), float(absd[s, f]), float(rel[s, f])))

    differs = bool((absd > 0).any())
    if differs:
        take(_pick(absd, available), WORST)
        peaks = available & np.isfinite(c) & (c > 0) & (c >= peak_fraction * cmax)
        take(_pick(rel, peaks, tiebreak=c), PEAK)
    edge = np.zeros(c.shape, dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    pool = edge & available & rendered
    take(_pick(absd, pool if pool.any() else edge & available, tiebreak=np.nan_to_num(c, nan=-np.inf)), EDGE)
    bg = available & rendered & np.isfinite(c) & (np.abs(c) <= background_fraction * cmax)
    if not bg.any():
        bg = available & rendered & np.isfinite(c) & (c < peak_fraction * cmax)
    if bg.any():
        if differs and (rel[bg] > 0).any():
            take(_pick(rel, bg), BACKGROUND)
        else:  # nothing differs there: a typical background pixel, the one nearest the median
            med = float(np.median(c[bg]))
            take(_pick(-np.abs(c - med), bg), BACKGROUND)
    return out


def should_autotrace(result: Any) -> bool:
    """Images diverge while the trace (at the traced pixel) agrees: the pixel was the wrong one."""
    img = getattr(result, "image", None)
    return bool(img) and not img.get("ok", True) and bool(getattr(result, "trace_compared", False)) \
        and getattr(result, "first_divergence", None) is None


# ---------------------------------------------------------------- what tracing a pick found


@dataclass(frozen=True)
class PixelTrace:
    """What tracing one chosen pixel found.

    compared: the C traced this pixel too (live binary) and the traces were compared.
    status: the run's status when compared; 'engine-only' otherwise.
    first_key / first_delta: first divergent trace key there (compared runs only).
    engine_final: the engine's final traced value of the pixel (engine-only runs), to set
    against the C image there.
    """

    chosen: ChosenPixel
    compared: bool
    status: str
    first_key: Optional[str] = None
    first_delta: Optional[float] = None
    engine_final: Optional[float] = None
    evidence_dir: Optional[str] = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["chosen"] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                       for k, v in d["chosen"].items()}
        return d
