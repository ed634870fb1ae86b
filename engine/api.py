"""Public run API: argv → set-up → render → float image file and C-like console output."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Optional, Sequence

import numpy as np
import torch

from engine.config import SimulationSetup
from engine.io.floatimage import write_floatimage
from engine.simulate import RenderResult, render
from engine.statistics import summary_lines


@dataclass
class EngineRun:
    image: torch.Tensor          # (spixels, fpixels), the double values before the float32 cast
    float_image: np.ndarray      # (spixels, fpixels) float32, as written to -floatfile
    stdout: str                  # console lines, TRACE_PY lines included
    trace: list[str]             # the traced pixel's TRACE_PY lines
    setup: SimulationSetup
    stats: dict = field(default_factory=dict)


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        value = getattr(torch, str(dtype).replace("torch.", ""))
    except AttributeError:
        raise ValueError(f"unknown dtype {dtype!r}") from None
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"{dtype!r} is not a floating dtype")
    return value


def _floatfile(argv: Sequence[str]) -> str:
    from engine.cli import parse_argv
    return parse_argv(list(argv)).floatfile


def console_after_render(setup: SimulationSetup, result: RenderResult, floatfile: str) -> list[str]:
    """The lines the C prints once the pixel loop is done (up to the image statistics)."""
    det = setup.detector
    steps = setup.steps
    solid = result.omega_sum / steps
    return [
        "",
        "solid angle subtended by detector = %g steradian ( %g%% sphere)" % (solid, 100 * solid / 4 / math.pi),
        "writing %s as %d %d-byte floats" % (floatfile, det.spixels * det.fpixels, 4),
        *summary_lines(result.stats),
    ]


def run(argv: Sequence[str], *, mode: str = "spec", device: str = "cpu",
        dtype: torch.dtype | str = torch.float64, c_threads: int = 1, write_outputs: bool = True,
        workdir: Optional[str | Path] = None, chunk_pixels: Optional[int] = None,
        memory_budget_bytes: Optional[int] = None,
        defects: Optional[Collection[str]] = None) -> EngineRun:
    """Run the engine on a nanoBragg argv (no program name).

    workdir: directory that a relative -floatfile is written under (default: the current one).
    defects: registered C defect ids to reproduce (default: all in c-parity, none in spec mode).
    """
    from engine.setup import build_setup

    argv = list(argv)
    t0 = time.perf_counter()
    setup = build_setup(argv, mode=mode, c_threads=c_threads, device=device, dtype=_as_dtype(dtype),
                        defects=defects)
    t1 = time.perf_counter()
    result = render(setup, chunk_pixels=chunk_pixels, memory_budget_bytes=memory_budget_bytes)
    t2 = time.perf_counter()

    floatfile = _floatfile(argv)
    float_image = result.float_image.cpu().numpy().astype("<f4")
    if write_outputs:
        path = Path(floatfile)
        if workdir is not None and not path.is_absolute():
            path = Path(workdir) / path
        write_floatimage(path, float_image)

    lines = [*setup.console, *setup.setup_trace]
    if setup.trace_pixel is not None:
        lines.append("TRACE_CONFIG: tracing pixel (spixel=%d, fpixel=%d)" % tuple(setup.trace_pixel))
    trace = list(result.trace)
    stop = result.interpolation_stop
    if stop is not None:
        # Printed when the render reaches that pixel: before or after the traced pixel's lines.
        first, glue = stop.warning_lines()
        before = setup.trace_pixel is None or (stop.spixel, stop.fpixel) <= tuple(setup.trace_pixel)
        if before and trace:
            trace = [first, glue + trace[0], *trace[1:]]
        else:
            trace = [*trace, first, glue]
    lines += trace
    lines += console_after_render(setup, result, floatfile)
    stats = {
        **result.stats.as_dict(),
        "omega_sum": result.omega_sum,
        "thread_first_pixels": result.thread_first_pixels,
        "setup_seconds": t1 - t0,
        "render_seconds": t2 - t1,
    }
    return EngineRun(image=result.image, float_image=float_image, stdout="\n".join(lines) + "\n",
                     trace=list(result.trace), setup=setup, stats=stats)
