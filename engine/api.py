"""Public run API: argv → set-up → render → the C's output files and C-like console output.

Like the C, a run writes the float image (-floatfile), the SMV int image (-intfile, always), the
PGM preview (-pgmfile, unless -nopgm) and the Poisson noise image (-noisefile, unless -nonoise),
each under its default name when not given, relative to ``workdir``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Optional, Sequence

import numpy as np
import torch

from engine.config.model import SimulationSetup
from engine.io.errors import OutputFileError
from engine.io.floatimage import write_floatimage
from engine.io.pgm import c_rmsd, pgm_bytes, pgm_scale
from engine.io.smv import SMVHeaderFields, int_image, int_scale, noise_int_image, write_smv
from engine.render.simulate import RenderResult, render
from engine.outputs.statistics import summary_lines


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


def noise_seed(options) -> int:
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


def _vec(t: torch.Tensor) -> list[float]:
    return [float(x) for x in t.detach().to("cpu", torch.float64).reshape(-1).tolist()]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def smv_header_fields(setup: SimulationSetup) -> SMVHeaderFields:
    """What the C writes into the -intfile / -noisefile headers, from the resolved set-up."""
    from engine.sample.crystal import phi_sampling
    from engine.geometry.detector import pixel_counts

    det, o = setup.detector, setup.options
    pix0, fdet, sdet = _vec(det.pix0), _vec(det.fdet), _vec(det.sdet)
    # Near point and origins as the C derives them from the final pix0.
    Fclose, Sclose = -_dot(pix0, fdet), -_dot(pix0, sdet)
    dials = (1000.0 * _dot(pix0, (0.0, 0.0, 1.0)), 1000.0 * _dot(pix0, (0.0, 1.0, 0.0)),
             1000.0 * _dot(pix0, (-1.0, 0.0, 0.0)))
    detsize_s = pixel_counts(o.pixel_size, o.fpixels, o.spixels, o.detsize_f, o.detsize_s)[3]
    osc = phi_sampling(o.osc, o.phistep, o.phisteps)[0]
    return SMVHeaderFields(
        fpixels=det.fpixels, spixels=det.spixels, pixel_size=float(det.pixel_size),
        distance=float(det.distance), wavelength=float(setup.beam.lambda0), Xbeam=float(det.Xbeam),
        Ybeam=float(det.Ybeam), Fbeam=float(det.Fbeam), Sbeam=float(det.Sbeam), detsize_s=detsize_s,
        dials_origin=dials, ORGX=Fclose / det.pixel_size + 0.5, ORGY=Sclose / det.pixel_size + 0.5,
        close_distance=float(det.close_distance), phi0=float(setup.crystal.phi0), osc=float(osc),
        twotheta=float(o.twotheta))


def _first_non_finite(float_image: np.ndarray) -> Optional[tuple[int, tuple[int, int], float]]:
    bad = ~np.isfinite(float_image)
    count = int(bad.sum())
    if not count:
        return None
    idx = int(np.flatnonzero(bad)[0])
    s, f = divmod(idx, float_image.shape[1])
    return count, (s, f), float(float_image[s, f])


def _render(setup: SimulationSetup, trace_only: bool, chunk_pixels, memory_budget_bytes) -> RenderResult:
    if trace_only:
        import engine.render.simulate as simulate
        fast = getattr(simulate, "render_trace_only", None)
        if fast is not None:
            return fast(setup)
    return render(setup, chunk_pixels=chunk_pixels, memory_budget_bytes=memory_budget_bytes)


def run(argv: Sequence[str], *, mode: str = "spec", device: str = "cpu",
        dtype: torch.dtype | str = torch.float64, c_threads: int = 1, write_outputs: bool = True,
        workdir: Optional[str | Path] = None, chunk_pixels: Optional[int] = None,
        memory_budget_bytes: Optional[int] = None,
        defects: Optional[Collection[str]] = None, trace_only: bool = False,
        check_finite: bool = False) -> EngineRun:
    """Run the engine on a nanoBragg argv (no program name).

    Outputs, as the C: -floatfile (floatimage.bin), -intfile (intimage.img, always), -pgmfile
    (image.pgm, unless -nopgm) and -noisefile (noiseimage.img, unless -nonoise); of -nonoise /
    -noisefile and of -nopgm / -pgmfile the last one given wins. Relative names are written
    under ``workdir`` (default: the current directory).
    write_outputs: False writes no file, and skips the Poisson draw (its two console lines are
    then missing); the other console lines are the same.
    defects: registered C defect ids to reproduce (default: all in c-parity, none in spec mode).
    trace_only: compute only the traced pixel when ``engine.render.simulate.render_trace_only`` exists
    (else the full frame); the rest of the image is then not meaningful, so no file is written.
    check_finite: raise ``NonFiniteImageError`` before writing anything if any pixel is NaN/inf.
    """
    from engine.config.setup import build_setup

    argv = list(argv)
    if trace_only:
        write_outputs = False     # a partial image must not land under the C's file names
    t0 = time.perf_counter()
    setup = build_setup(argv, mode=mode, c_threads=c_threads, device=device, dtype=_as_dtype(dtype),
                        defects=defects)
    o = setup.options
    seed_word = noise_seed(o)
    t1 = time.perf_counter()
    result = _render(setup, trace_only, chunk_pixels, memory_budget_bytes)
    t2 = time.perf_counter()

    float_image = result.float_image.cpu().numpy().astype("<f4")
    det = setup.detector
    roi = tuple(det.roi)

    lines = [*setup.console, *setup.setup_trace]
    if o.calculate_noise:
        lines += noise_parameter_lines(seed_word, o.water_size, o.seed is None)
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
    lines += console_after_render(setup, result, o.floatfile)

    if check_finite:
        bad = _first_non_finite(float_image)
        if bad is not None:
            raise NonFiniteImageError(*bad, stdout="\n".join(lines) + "\n")

    def out_path(name: str) -> Path:
        path = Path(name)
        return Path(workdir) / path if workdir is not None and not path.is_absolute() else path

    def write(name: str, writer) -> None:
        path = out_path(name)
        try:
            writer(path)
        except OSError as exc:
            raise OutputFileError(f"{path}: cannot write ({exc.strerror or exc})") from None
        written.append(name)

    written: list[str] = []
    if write_outputs:
        write(o.floatfile, lambda p: write_floatimage(p, float_image))

    # Int image: always written, as by the C.
    iscale = int_scale(o.intfile_scale, result.stats.max_I)
    ints = int_image(float_image, iscale, o.adc_offset, roi=roi)
    lines.append("intfile_scale = %g" % iscale)
    lines.append("writing %s as 2-byte integers" % o.intfile)
    fields = smv_header_fields(setup) if write_outputs else None
    if write_outputs:
        write(o.intfile, lambda p: write_smv(p, ints, fields, kind="int", c_overflow=setup.reproduces("smv-header-overflow")))

    pscale = None
    if o.write_pgm:
        rmsd = c_rmsd(float_image, roi=roi, rendered=result.rendered) if o.pgm_scale <= 0.0 else 0.0
        pscale = pgm_scale(o.pgm_scale, iscale, rmsd)
        lines.append("pgm_scale = %g" % pscale)
        lines.append("writing %s as 1-byte integers" % o.pgmfile)
        if write_outputs:
            blob = pgm_bytes(float_image, pscale, roi=roi)
            write(o.pgmfile, lambda p: (p.parent.mkdir(parents=True, exist_ok=True), p.write_bytes(blob)))

    noise = {}
    if o.calculate_noise and write_outputs:
        from engine.sample.rng import poisson_noise

        deviates = poisson_noise(float_image, -seed_word, roi=roi)
        pixels, photons, overloads = noise_int_image(deviates, o.adc_offset, roi=roi, int_pixels=ints)
        lines.append("%.0f photons on noise image (%d overloads)" % (photons, overloads))
        lines.append("writing %s as 2-byte integers" % o.noisefile)
        write(o.noisefile, lambda p: write_smv(p, pixels, fields, kind="noise", c_overflow=setup.reproduces("smv-header-overflow")))
        noise = {"noise_photons": photons, "noise_overloads": overloads}

    stats = {
        **result.stats.as_dict(),
        "omega_sum": result.omega_sum,
        "thread_first_pixels": result.thread_first_pixels,
        "setup_seconds": t1 - t0,
        "render_seconds": t2 - t1,
        "intfile_scale": iscale,
        "pgm_scale": pscale,
        "seed": seed_word if o.calculate_noise else None,
        **noise,
        "written": written,
        "output_seconds": time.perf_counter() - t2,
    }
    return EngineRun(image=result.image, float_image=float_image, stdout="\n".join(lines) + "\n",
                     trace=list(result.trace), setup=setup, stats=stats)
