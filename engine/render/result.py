"""What a render returns (full frame or trace only)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from engine.config.c_numbers import c_ceil_int
from engine.outputs.statistics import ImageStats


@dataclass(frozen=True)
class InterpolationStop:
    """The evaluation whose tricubic stencil left the grid and switched interpolation off."""

    spixel: int
    fpixel: int
    h: float
    k: float
    l: float

    def warning_lines(self) -> tuple[str, str]:
        """The C's two warnings; the second has no newline, so the next line is glued to it."""
        h0, k0, l0 = (c_ceil_int(v - 0.5) for v in (self.h, self.k, self.l))
        return ("WARNING: out of range for three point interpolation: h,k,l,h0,k0,l0: %g,%g,%g,%d,%d,%d "
                % (self.h, self.k, self.l, h0, k0, l0),
                "WARNING: further warnings will not be printed! ")


@dataclass
class RenderResult:
    image: torch.Tensor          # (spixels, fpixels) values before the float32 cast (setup dtype)
    float_image: torch.Tensor    # (spixels, fpixels) float32, as the C stores it
    rendered: torch.Tensor       # (spixels, fpixels) bool: pixels inside ROI and mask
    trace: list[str]             # TRACE_PY lines of the traced pixel (empty when none)
    stats: ImageStats
    omega_sum: float             # Σ ω over rendered pixels × layers × sub-pixels (solid-angle line)
    thread_first_pixels: list[tuple[int, int]] = field(default_factory=list)
    interpolation_stop: Optional[InterpolationStop] = None
    #: True for ``render_trace_only``: only the traced pixel of ``image`` was computed.
    trace_only: bool = False
