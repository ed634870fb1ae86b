"""The C's -pgmfile output: an 8-bit binary PGM (P5) preview of the float image.

Pixel = (unsigned char) min(v·scale, 255), truncated toward zero; pixels outside the ROI are 0.
Scale ≤ 0 selects the C's automatic scale: 250/(5·rmsd) when the image has a spread, else the
int-image scale. rmsd is the C's (deviation from the mean of the rendered pixels, summed over the
whole ROI, masked pixels counted as 0; see engine.outputs.statistics).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch

from engine.io.pixels import as_float32, roi_mask, row_blocks

__all__ = ["pgm_scale", "pgm_bytes", "write_pgm", "c_rmsd"]


def _running_sum(blocks: Iterable[np.ndarray]) -> float:
    """x0 + x1 + ... in order, one double at a time like the C's loop (not numpy's pairwise sum):
    each block's cumulative sum starts from the total so far."""
    total = None
    for block in blocks:
        if block.size == 0:
            continue
        if total is not None:
            block[0] = total + block[0]
        total = float(np.cumsum(block)[-1])
    return 0.0 if total is None else total


def c_rmsd(float_image: torch.Tensor | np.ndarray, *, roi: Optional[tuple[int, int, int, int]] = None,
           rendered: Optional[np.ndarray | torch.Tensor] = None) -> float:
    """The rmsd the C prints, with its single-thread summation order (row-major running sums).

    rendered: bool (spixels, fpixels) of the pixels the C rendered (ROI and mask); default: the ROI.
    """
    values = as_float32(float_image)
    inside = roi_mask(values.shape, roi)
    if rendered is None:
        rendered_np = inside
    else:
        rendered_np = np.asarray(rendered.cpu().numpy() if isinstance(rendered, torch.Tensor)
                                 else rendered, dtype=bool) & inside
    spans = row_blocks(values.shape)
    picked = sum(int(np.count_nonzero(rendered_np[sl])) for sl in spans)
    n = picked if picked > 0 else 1
    mean = _running_sum(values[sl][rendered_np[sl]].astype(np.float64) for sl in spans) / n
    m = int(np.count_nonzero(inside))
    m = m if m > 1 else 2

    def squares(sl: slice) -> np.ndarray:
        dev = values[sl][inside[sl]].astype(np.float64) - mean
        return np.multiply(dev, dev, out=dev)

    return math.sqrt(_running_sum(squares(sl) for sl in spans) / (m - 1))


def pgm_scale(pgmscale: float, intfile_scale: float, rmsd: float) -> float:
    """The scale the C uses: the given one if positive, else 250/(5·rmsd), or the int-image scale
    when rmsd is 0."""
    if pgmscale > 0.0:
        return float(pgmscale)
    return 250.0 / (5.0 * rmsd) if rmsd > 0.0 else float(intfile_scale)


def pgm_bytes(float_image: torch.Tensor | np.ndarray, scale: float, *,
              roi: Optional[tuple[int, int, int, int]] = None) -> bytes:
    """The complete PGM file for an already-resolved scale."""
    values = as_float32(float_image)
    spixels, fpixels = values.shape
    pix = np.empty(values.shape, dtype=np.uint8)
    for sl in row_blocks(values.shape):
        test = values[sl].astype(np.float64)
        test *= scale
        np.minimum(test, 255.0, out=test)           # NaN stays NaN
        # The C's (unsigned char)(test) on x86-64 truncates to a 32-bit int and keeps its low byte:
        # a negative pixel (-18.8 → -18) writes 238, not 0; NaN and anything past the int range
        # become INT_MIN, whose low byte is 0.
        test[~(np.abs(test) < 2.0 ** 31)] = 0.0
        pix[sl] = (np.trunc(test).astype(np.int64) & 0xFF).astype(np.uint8)
    pix[~roi_mask(values.shape, roi)] = 0
    head = "P5\n%d %d\n# pixels scaled by %g\n255\n" % (fpixels, spixels, scale)
    return head.encode("ascii") + pix.tobytes()


def write_pgm(path: str | Path, float_image: torch.Tensor | np.ndarray, pgmscale: float, *,
              roi: Optional[tuple[int, int, int, int]] = None,
              intfile_scale: Optional[float] = None, rmsd: Optional[float] = None,
              rendered: Optional[np.ndarray | torch.Tensor] = None) -> float:
    """Write the PGM as the C does; returns the scale used (the C prints it as 'pgm_scale = %g').

    pgmscale ≤ 0 selects the automatic scale, from ``rmsd`` (computed as the C does if not given)
    and ``intfile_scale`` (default: 55000/max, the C's automatic int scale).
    """
    if pgmscale <= 0.0:
        if rmsd is None:
            rmsd = c_rmsd(float_image, roi=roi, rendered=rendered)
        if intfile_scale is None:
            values = as_float32(float_image)
            cand = values[roi_mask(values.shape, roi) & ~np.isnan(values)]
            max_I = max(float(cand.max()), 0.0) if cand.size else 0.0
            intfile_scale = 55000.0 / max_I if max_I > 0.0 else 1.0
    scale = pgm_scale(pgmscale, intfile_scale or 1.0, rmsd or 0.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pgm_bytes(float_image, scale, roi=roi))
    return scale
