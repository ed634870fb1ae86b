"""Pixel-array helpers shared by the image writers (SMV, PGM)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch


def as_float32(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """The image as float32 values, for reading only (a float32 array comes back as it is)."""
    if isinstance(image, np.ndarray) and image.dtype == np.float32:
        return image                     # float32 → float64 → float32 would change nothing
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().to(torch.float64).numpy()
    return np.asarray(image, dtype=np.float64).astype(np.float32)


def roi_mask(shape: tuple[int, int], roi: Optional[tuple[int, int, int, int]]) -> np.ndarray:
    """bool (slow, fast): inside the inclusive ROI (fmin, fmax, smin, smax); None: everywhere."""
    inside = np.zeros(shape, dtype=bool)
    if roi is None:
        inside[:] = True
        return inside
    fmin, fmax, smin, smax = roi
    inside[max(smin, 0):smax + 1, max(fmin, 0):fmax + 1] = True
    return inside


#: Pixels per block of the writers' element-wise passes: the temporaries stay in cache (image-sized
#: ones cost several times more on a full frame, in page faults and memory traffic).
BLOCK_PIXELS = 1 << 16


def row_blocks(shape: tuple[int, int]) -> list[slice]:
    """Row slices of about ``BLOCK_PIXELS`` pixels each, in row-major order."""
    rows = max(1, BLOCK_PIXELS // max(1, shape[1]))
    return [slice(r, r + rows) for r in range(0, shape[0], rows)]
