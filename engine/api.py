"""Public run API: argv → set-up → render → the C's output files and C-like console output.

The steps live where their job is: ``engine.config.setup`` (argv → set-up), ``engine.render``
(the image), ``engine.outputs.console`` (the console text) and ``engine.outputs.files`` (the
float, int, PGM and noise images, relative to ``workdir``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Optional, Sequence

import numpy as np
import torch

from engine.config.model import SimulationSetup
from engine.config.setup import build_setup
from engine.outputs.console import noise_seed, run_console
from engine.outputs.files import write_run_outputs
from engine.render.frame import render
from engine.render.trace_only import render_trace_only


@dataclass
class EngineRun:
    image: torch.Tensor          # (spixels, fpixels), the double values before the float32 cast
    float_image: np.ndarray      # (spixels, fpixels) float32, as written to -floatfile
    stdout: str                  # console lines, TRACE_PY lines included
    trace: list[str]             # the traced pixel's TRACE_PY lines
    setup: SimulationSetup
    stats: dict = field(default_factory=dict)


class NonFiniteImageError(ValueError):
    """The render produced NaN or infinite pixels (raised by ``run(check_finite=True)``).

    ``count``: how many pixels; ``first``: (slow, fast) of the first in row-major order and
    ``value`` its value; ``stdout``: the console lines up to that point. No file was written.
    """

    def __init__(self, count: int, first: tuple[int, int], value: float, stdout: str) -> None:
        self.count, self.first, self.value, self.stdout = count, first, value, stdout
        super().__init__(f"the image has {count} non-finite pixel{'s' if count != 1 else ''} "
                         f"(NaN or inf); the first is (slow {first[0]}, fast {first[1]}) = {value}; "
                         f"no output files were written")


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


def _first_non_finite(float_image: np.ndarray) -> Optional[tuple[int, tuple[int, int], float]]:
    bad = ~np.isfinite(float_image)
    count = int(bad.sum())
    if not count:
        return None
    idx = int(np.flatnonzero(bad)[0])
    s, f = divmod(idx, float_image.shape[1])
    return count, (s, f), float(float_image[s, f])


def run(argv: Sequence[str], *, mode: str = "spec", device: str = "cpu",
        dtype: torch.dtype | str = torch.float64, c_threads: int = 1, write_outputs: bool = True,
        workdir: Optional[str | Path] = None, chunk_pixels: Optional[int] = None,
        memory_budget_bytes: Optional[int] = None,
        defects: Optional[Collection[str]] = None, trace_only: bool = False,
        check_finite: bool = False, setup: Optional[SimulationSetup] = None) -> EngineRun:
    """Run the engine on a nanoBragg argv (no program name).

    Outputs, as the C: -floatfile (floatimage.bin), -intfile (intimage.img, always), -pgmfile
    (image.pgm, unless -nopgm) and -noisefile (noiseimage.img, unless -nonoise); of -nonoise /
    -noisefile and of -nopgm / -pgmfile the last one given wins. Relative names are written
    under ``workdir`` (default: the current directory).
    write_outputs: False writes no file, and skips the Poisson draw (its two console lines are
    then missing); the other console lines are the same.
    defects: registered C defect ids to reproduce (default: all in c-parity, none in spec mode).
    trace_only: compute only the traced pixel (``engine.render.trace_only``); the rest of the
    image is then not meaningful, so no file is written.
    check_finite: raise ``NonFiniteImageError`` before writing anything if any pixel is NaN/inf.
    setup: the set-up ``build_setup`` made from this argv and these settings, when the caller
    already built one (the harness does, to check the argv before any run): not built again.
    Raises ``UsageError`` (bad argv or device, or a size that cannot fit in memory) and
    ``InputFileError`` before anything is rendered.
    """
    t0 = time.perf_counter()
    if setup is None:
        setup = build_setup(list(argv), mode=mode, c_threads=c_threads, device=device, dtype=_as_dtype(dtype),
                            defects=defects)
    seed_word = noise_seed(setup.options)
    t1 = time.perf_counter()
    if trace_only:
        result = render_trace_only(setup)
    else:
        result = render(setup, chunk_pixels=chunk_pixels, memory_budget_bytes=memory_budget_bytes)
    t2 = time.perf_counter()

    float_image = result.float_image.cpu().numpy().astype("<f4")
    lines = run_console(setup, result, seed_word)
    if check_finite:
        bad = _first_non_finite(float_image)
        if bad is not None:
            raise NonFiniteImageError(*bad, stdout="\n".join(lines) + "\n")
    # A partial (trace-only) image must not land under the C's file names.
    written = write_run_outputs(setup, result, float_image, seed_word, lines, workdir=workdir,
                                enabled=write_outputs and not trace_only)
    stats = {
        **result.stats.as_dict(),
        "omega_sum": result.omega_sum,
        "thread_first_pixels": result.thread_first_pixels,
        "setup_seconds": t1 - t0,
        "render_seconds": t2 - t1,
        **written,
        "output_seconds": time.perf_counter() - t2,
    }
    return EngineRun(image=result.image, float_image=float_image, stdout="\n".join(lines) + "\n",
                     trace=list(result.trace), setup=setup, stats=stats)
