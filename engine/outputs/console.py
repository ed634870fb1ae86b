"""The C-like console text of a run: what the C prints around its pixel loop, in its order."""
from __future__ import annotations

import math
import time

from engine.config.c_numbers import c_div
from engine.config.model import SimulationSetup
from engine.config.options import Options
from engine.outputs.statistics import summary_lines
from engine.render.result import RenderResult


def noise_seed(options: Options) -> int:
    """The seed word the C keeps for -noisefile: the negated -seed value, else −time() (clock)."""
    seed = getattr(options, "seed", None)
    return int(seed) if seed is not None else -int(time.time())


def noise_parameter_lines(seed_word: int, water_size: float, from_clock: bool) -> list[str]:
    """The C's pre-render noise block (printed only when noise is on), and how to repeat a run."""
    lines = ["", "  noise image paramters:", "  seed: %d" % seed_word,
             "  water droplet size: %g m" % water_size]
    if from_clock:
        lines.append("note: no -seed given, so the noise is seeded from the clock; "
                     "add -seed %d to repeat this run" % -seed_word)
    return lines


def console_after_render(setup: SimulationSetup, result: RenderResult, floatfile: str) -> list[str]:
    """The lines the C prints once the pixel loop is done (up to the image statistics)."""
    det = setup.detector
    solid = c_div(result.omega_sum, setup.steps)   # steps 0 (no source): inf, as the C prints
    return [
        "",
        "solid angle subtended by detector = %g steradian ( %g%% sphere)" % (solid, 100 * solid / 4 / math.pi),
        "writing %s as %d %d-byte floats" % (floatfile, det.spixels * det.fpixels, 4),
        *summary_lines(result.stats),
    ]


def _trace_with_interpolation_stop(setup: SimulationSetup, result: RenderResult) -> list[str]:
    """The traced pixel's lines, with the C's interpolation warning where the render printed it:
    when it reached the failing pixel, before or after the traced one."""
    trace = list(result.trace)
    stop = result.interpolation_stop
    if stop is None:
        return trace
    first, glue = stop.warning_lines()
    before = setup.trace_pixel is None or (stop.spixel, stop.fpixel) <= tuple(setup.trace_pixel)
    if before and trace:
        return [first, glue + trace[0], *trace[1:]]
    return [*trace, first, glue]


def run_console(setup: SimulationSetup, result: RenderResult, seed_word: int) -> list[str]:
    """Every console line up to the image statistics: set-up, noise block, trace, statistics."""
    o = setup.options
    lines = [*setup.console, *setup.setup_trace]
    if o.calculate_noise:
        lines += noise_parameter_lines(seed_word, o.water_size, o.seed is None)
    if setup.trace_pixel is not None:
        lines.append("TRACE_CONFIG: tracing pixel (spixel=%d, fpixel=%d)" % tuple(setup.trace_pixel))
    lines += _trace_with_interpolation_stop(setup, result)
    lines += console_after_render(setup, result, o.floatfile)
    return lines
