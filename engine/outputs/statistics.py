"""The image statistics the C prints after rendering (max_I and where, mean, rms, rmsd).

The C computes them from the stored float32 values: max, sum and sum of squares over the pixels it
rendered (inside the ROI and not masked), then the rmsd in a second pass over the whole ROI, mask
ignored (masked pixels count as 0). ``max_I`` keeps the first pixel in row-major order that beats
the running maximum (which starts at 0), and reports its position as the centre of the *last*
sub-pixel of that pixel, in metres.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class ImageStats:
    max_I: float
    max_I_x: float      # m, fast-axis position of the last sub-pixel of the brightest pixel
    max_I_y: float      # m, slow-axis position
    max_pixel: tuple[int, int] | None  # (slow, fast), None when no pixel beat 0
    mean: float
    rms: float
    rmsd: float
    n_rendered: int

    def as_dict(self) -> dict:
        return asdict(self)


def image_stats(float_image: torch.Tensor, rendered: torch.Tensor, roi: tuple[int, int, int, int],
                pixel_size: float, oversample: int) -> ImageStats:
    """Statistics of ``float_image`` (the float32 values, any float dtype), as the C prints them.

    rendered: bool (spixels, fpixels), the pixels the C visited (ROI and mask).
    roi: (fmin, fmax, smin, smax) inclusive.
    """
    values = float_image.detach().to(torch.float64)
    everywhere = bool(rendered.all())       # then the masking below changes nothing: skip it
    flat = values.reshape(-1) if everywhere else torch.where(rendered, values, torch.zeros_like(values)).reshape(-1)
    n = rendered.numel() if everywhere else int(rendered.sum())
    total = float(flat.sum())
    scratch = flat * flat                   # reused below for the rmsd pass (no new image-sized buffers)
    sumsqr = float(scratch.sum())

    max_I, max_x, max_y, where = 0.0, 0.0, 0.0, None
    candidates = flat if everywhere else torch.where(rendered.reshape(-1), flat, torch.full_like(flat, -math.inf))
    if candidates.numel():
        best = float(candidates.max())
        if best > 0.0:
            idx = int(torch.nonzero(candidates == best)[0, 0])   # first in row-major order
            s, f = divmod(idx, values.shape[1])
            sub = pixel_size / oversample
            max_I = best
            max_x = sub * (f * oversample + oversample - 1) + sub / 2.0
            max_y = sub * (s * oversample + oversample - 1) + sub / 2.0
            where = (s, f)

    sumn = n if n > 0 else 1
    mean = total / sumn
    if sumn <= 1:
        sumn = 2
    rms = math.sqrt(sumsqr / (sumn - 1))

    fmin, fmax, smin, smax = roi
    roi_vals = values[max(smin, 0):smax + 1, max(fmin, 0):fmax + 1]
    if not everywhere:
        roi_vals = torch.where(rendered[max(smin, 0):smax + 1, max(fmin, 0):fmax + 1], roi_vals,
                               torch.zeros_like(roi_vals))
    m = roi_vals.numel()
    if scratch.numel() == m and not scratch.requires_grad:
        # The same element-wise values and the same contiguous (rows, cols) sum as
        # ``((roi_vals - mean) ** 2).sum()``, written into the buffer already allocated.
        dev = torch.sub(roi_vals, mean, out=scratch.view(roi_vals.shape))
    else:
        dev = roi_vals - mean
    rmsd = math.sqrt(float(dev.mul_(dev).sum()) / ((m if m > 1 else 2) - 1))
    return ImageStats(max_I, max_x, max_y, where, mean, rms, rmsd, n)


def summary_lines(stats: ImageStats) -> list[str]:
    """The two console lines the C prints after writing the float image."""
    return [
        "max_I = %g  at %g %g" % (stats.max_I, stats.max_I_x, stats.max_I_y),
        "mean= %g rms= %g rmsd= %g" % (stats.mean, stats.rms, stats.rmsd),
    ]
