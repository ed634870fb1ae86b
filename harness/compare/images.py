"""Frame comparison: two detector images judged by the one comparison primitive
(:func:`harness.compare.primitive.compare`, bar atol + rtol_of_max·max|C|) and measured (sums,
correlation, NaN counts, bit-equal float32 fraction), block by block."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from harness.compare.primitive import Comparison, Tolerance, compare


@dataclass(frozen=True)
class ImageThreshold:
    """max|Δ| ≤ atol + rtol_of_max·max|C|, and optionally a floor on the correlation."""

    rtol_of_max: float = 1e-6
    atol: float = 0.0
    min_correlation: Optional[float] = None


@dataclass(frozen=True)
class ImageMetrics:
    shape_c: tuple[int, ...]
    shape_py: tuple[int, ...]
    ok: bool
    max_abs_diff: float = math.nan
    max_abs_c: float = math.nan
    rel_to_max: float = math.nan
    correlation: float = math.nan
    sum_c: float = math.nan
    sum_py: float = math.nan
    sum_ratio: float = math.nan
    frac_equal_f32: float = math.nan
    n_failed: int = 0
    worst_pixel: Optional[tuple[int, int]] = None
    c_at_worst: float = math.nan
    py_at_worst: float = math.nan
    allowed: float = math.nan
    nan_c: int = 0
    nan_py: int = 0
    reason: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


#: Pixels per block of the image comparison: a frame is read block by block, each block's float64
#: copies reused from the heap (a 6-Mpixel frame's whole-frame float64 copies and masks cost more
#: than the arithmetic: most of a second, against about a tenth in blocks).
IMAGE_BLOCK = 1 << 18


@dataclass
class _Moments:
    """Count, means and centred second moments of the finite (C, other) pairs, merged block by
    block (Chan, Golub and LeVeque's pairwise update: as accurate as two passes)."""

    n: int = 0
    mean_c: float = 0.0
    mean_p: float = 0.0
    m2_c: float = 0.0
    m2_p: float = 0.0
    co: float = 0.0

    def add(self, c: np.ndarray, p: np.ndarray) -> None:
        nb = c.size
        if nb == 0:
            return
        mc, mp = float(np.mean(c)), float(np.mean(p))
        dc, dp = c - mc, p - mp
        m2c, m2p, co = float(np.dot(dc, dc)), float(np.dot(dp, dp)), float(np.dot(dc, dp))
        if self.n == 0:
            self.n, self.mean_c, self.mean_p, self.m2_c, self.m2_p, self.co = nb, mc, mp, m2c, m2p, co
            return
        n = self.n + nb
        delta_c, delta_p = mc - self.mean_c, mp - self.mean_p
        w = self.n * nb / n
        self.m2_c += m2c + delta_c * delta_c * w
        self.m2_p += m2p + delta_p * delta_p * w
        self.co += co + delta_c * delta_p * w
        self.mean_c += delta_c * nb / n
        self.mean_p += delta_p * nb / n
        self.n = n

    def correlation(self, identical: bool) -> float:
        """Pearson's r, clipped to [-1, 1] like numpy's corrcoef; 1 for identical images that do
        not vary, NaN when either side does not vary (or no finite pair)."""
        if self.n > 1 and self.m2_c > 0.0 and self.m2_p > 0.0:
            return max(-1.0, min(1.0, self.co / math.sqrt(self.m2_c * self.m2_p)))
        return 1.0 if self.n > 0 and identical else math.nan


@dataclass
class _ImageTally:
    """What image_metrics adds up over the blocks of a frame."""

    nan_c: int = 0
    nan_py: int = 0
    one_sided: int = 0
    sum_c: float = 0.0
    sum_py: float = 0.0
    equal_f32: int = 0
    n_failed: int = 0
    max_abs_diff: float = 0.0
    worst: int = 0
    worst_key: float = -math.inf
    allowed: float = math.nan
    identical: bool = True
    moments: _Moments = field(default_factory=_Moments)

    def add_comparison(self, res: Comparison, start: int, c: np.ndarray, p: np.ndarray) -> None:
        """Merge one block's :func:`compare`: the worst element is the one with the largest excess
        over its allowance once anything fails (one-sided NaN: infinite), else the largest |Δ|;
        the first such in the frame, as one comparison of the whole frame picks it."""
        if res.n_failed:
            d = abs(float(p[res.worst]) - float(c[res.worst]))
            key = math.inf if math.isnan(d) else d - res.allowed
            take = not self.n_failed or key > self.worst_key    # failures outrank every passing block
        else:
            key = res.max_abs_diff
            take = not self.n_failed and key > self.worst_key
        if take:
            self.worst_key, self.worst, self.allowed = key, start + res.worst, res.allowed
        self.n_failed += res.n_failed
        if math.isnan(res.max_abs_diff) or math.isnan(self.max_abs_diff):
            self.max_abs_diff = math.nan
        else:
            self.max_abs_diff = max(self.max_abs_diff, res.max_abs_diff)


def _max_abs(c: np.ndarray) -> float:
    """max|C| as the larger of |max| and |min| (no frame-sized |C|), NaN ignored; NaN when every
    value is NaN. Widening to float64 is exact, so these are the float64 values too."""
    if c.size == 0:
        return math.nan
    hi, lo = float(np.max(c)), float(np.min(c))
    if math.isnan(hi) or math.isnan(lo):          # max/min propagate NaN: only then mask it
        finite_or_inf = c[~np.isnan(c)]
        if finite_or_inf.size == 0:
            return math.nan
        hi, lo = float(np.max(finite_or_inf)), float(np.min(finite_or_inf))
    return max(abs(hi), abs(lo))


def image_metrics(c_img: np.ndarray, py_img: np.ndarray, threshold: ImageThreshold = ImageThreshold(),
                  block: int = IMAGE_BLOCK) -> ImageMetrics:
    """Compare two frames under ``threshold`` with :func:`compare` (the bar: atol + rtol_of_max ·
    max|C|), and measure them (sums, correlation, NaN counts, bit-equal float32 fraction).
    ``block``: pixels read at a time (the result does not depend on it)."""
    c = np.asarray(c_img)
    py = np.asarray(py_img)
    if c.shape != py.shape:
        return ImageMetrics(tuple(c.shape), tuple(py.shape), ok=False,
                            reason=f"image shapes differ: C {c.shape} vs torch {py.shape}")
    max_abs_c = _max_abs(c)
    tol = Tolerance(atol=threshold.atol + threshold.rtol_of_max * (max_abs_c if math.isfinite(max_abs_c) else 0.0),
                    rtol=0.0)
    c_flat, py_flat = c.reshape(-1), py.reshape(-1)
    t = _ImageTally()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for start in range(0, c_flat.size, max(1, block)):
            cb = c_flat[start:start + block].astype(np.float64)
            pb = py_flat[start:start + block].astype(np.float64)
            t.add_comparison(compare(cb, pb, tol), start, cb, pb)
            nan_c, nan_p = np.isnan(cb), np.isnan(pb)
            t.nan_c += int(nan_c.sum())
            t.nan_py += int(nan_p.sum())
            t.one_sided += int((nan_c != nan_p).sum())
            t.sum_c += float(np.nansum(cb))
            t.sum_py += float(np.nansum(pb))
            t.equal_f32 += int(np.count_nonzero(pb.astype(np.float32) == cb.astype(np.float32)))
            finite = np.isfinite(cb) & np.isfinite(pb)
            cf, pf = (cb, pb) if finite.all() else (cb[finite], pb[finite])
            t.identical = t.identical and bool(np.array_equal(cf, pf))
            t.moments.add(cf, pf)
    max_abs_diff = t.max_abs_diff if c.size else 0.0
    corr = t.moments.correlation(t.identical)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = t.sum_py / t.sum_c if t.sum_c != 0 else (1.0 if t.sum_py == 0 else math.inf)
    frac_eq = t.equal_f32 / c.size if c.size else 1.0
    worst = tuple(int(i) for i in np.unravel_index(t.worst, c.shape)) if c.size else None
    ok = t.n_failed == 0
    reason = "" if ok else f"{t.n_failed} pixels over tolerance"
    if t.one_sided:
        reason += f" ({t.one_sided} NaN on one side only: C {t.nan_c}, torch {t.nan_py} NaN)"
    if threshold.min_correlation is not None and not (corr >= threshold.min_correlation):
        ok = False
        reason = (reason + "; " if reason else "") + f"correlation {corr:.9g} < {threshold.min_correlation:g}"
    return ImageMetrics(
        shape_c=tuple(c.shape), shape_py=tuple(py.shape), ok=ok, max_abs_diff=max_abs_diff,
        max_abs_c=max_abs_c,
        rel_to_max=max_abs_diff / max_abs_c if max_abs_c and math.isfinite(max_abs_c) else math.nan,
        correlation=corr, sum_c=t.sum_c, sum_py=t.sum_py, sum_ratio=ratio, frac_equal_f32=frac_eq,
        n_failed=t.n_failed, worst_pixel=worst,
        c_at_worst=float(c_flat[t.worst]) if c.size else math.nan,
        py_at_worst=float(py_flat[t.worst]) if c.size else math.nan,
        allowed=t.allowed if c.size else tol.atol, nan_c=t.nan_c, nan_py=t.nan_py,
        reason=reason,
    )
