"""The C's four output files of a run, and their console lines.

Like the C, a run writes the float image (-floatfile), the SMV int image (-intfile, always), the
PGM preview (-pgmfile, unless -nopgm) and the Poisson noise image (-noisefile, unless -nonoise),
each under its default name when not given, relative to ``workdir``. With file writing off the
console lines are the same, except the noise image's two (no Poisson draw is made).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from engine.config.model import SimulationSetup
from engine.geometry.detector import pixel_counts
from engine.io.errors import OutputFileError
from engine.io.floatimage import write_floatimage
from engine.io.pgm import c_rmsd, pgm_bytes, pgm_scale
from engine.io.smv_write import SMVHeaderFields, int_image, int_scale, noise_int_image, write_smv
from engine.render.result import RenderResult
from engine.sample.crystal import phi_sampling
from engine.sample.rng import poisson_noise


def _vec(t) -> list[float]:
    return [float(x) for x in t.detach().to("cpu").double().reshape(-1).tolist()]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def smv_header_fields(setup: SimulationSetup) -> SMVHeaderFields:
    """What the C writes into the -intfile / -noisefile headers, from the resolved set-up."""
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


@dataclass
class _Writer:
    """Writes named files under ``workdir`` (or nothing, when ``enabled`` is off), and lists them."""

    workdir: Optional[Path]
    enabled: bool
    written: list[str] = field(default_factory=list)

    def __call__(self, name: str, write: Callable[[Path], object]) -> None:
        if not self.enabled:
            return
        path = Path(name)
        if self.workdir is not None and not path.is_absolute():
            path = Path(self.workdir) / path
        try:
            write(path)
        except OSError as exc:
            raise OutputFileError(f"{path}: cannot write ({exc.strerror or exc})") from None
        self.written.append(name)


def _write_pgm(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)


def _pgm(setup: SimulationSetup, result: RenderResult, float_image: np.ndarray, iscale: float,
         writer: _Writer, lines: list[str]) -> Optional[float]:
    o, roi = setup.options, tuple(setup.detector.roi)
    if not o.write_pgm:
        return None
    rmsd = c_rmsd(float_image, roi=roi, rendered=result.rendered) if o.pgm_scale <= 0.0 else 0.0
    pscale = pgm_scale(o.pgm_scale, iscale, rmsd)
    lines.append("pgm_scale = %g" % pscale)
    lines.append("writing %s as 1-byte integers" % o.pgmfile)
    if writer.enabled:
        blob = pgm_bytes(float_image, pscale, roi=roi)
        writer(o.pgmfile, lambda p: _write_pgm(p, blob))
    return pscale


def _noise(setup: SimulationSetup, float_image: np.ndarray, ints: np.ndarray, seed_word: int,
           fields: Optional[SMVHeaderFields], writer: _Writer, lines: list[str]) -> dict:
    o, roi = setup.options, tuple(setup.detector.roi)
    if not (o.calculate_noise and writer.enabled):
        return {}
    deviates = poisson_noise(float_image, -seed_word, roi=roi)
    pixels, photons, overloads = noise_int_image(deviates, o.adc_offset, roi=roi, int_pixels=ints)
    lines.append("%.0f photons on noise image (%d overloads)" % (photons, overloads))
    lines.append("writing %s as 2-byte integers" % o.noisefile)
    c_overflow = setup.reproduces("smv-header-overflow")
    writer(o.noisefile, lambda p: write_smv(p, pixels, fields, kind="noise", c_overflow=c_overflow))
    return {"noise_photons": photons, "noise_overloads": overloads}


def write_run_outputs(setup: SimulationSetup, result: RenderResult, float_image: np.ndarray,
                      seed_word: int, lines: list[str], *, workdir: Optional[str | Path],
                      enabled: bool) -> dict:
    """Write the run's files in the C's order, appending their console lines to ``lines``.

    Returns the statistics they add (scales, noise counts, the names ``written``). Raises
    ``OutputFileError`` naming the file that cannot be written.
    """
    o, roi = setup.options, tuple(setup.detector.roi)
    writer = _Writer(None if workdir is None else Path(workdir), enabled)
    writer(o.floatfile, lambda p: write_floatimage(p, float_image))
    # Int image: always written, as by the C.
    iscale = int_scale(o.intfile_scale, result.stats.max_I)
    ints = int_image(float_image, iscale, o.adc_offset, roi=roi)
    lines.append("intfile_scale = %g" % iscale)
    lines.append("writing %s as 2-byte integers" % o.intfile)
    fields = smv_header_fields(setup) if enabled else None
    c_overflow = setup.reproduces("smv-header-overflow")
    writer(o.intfile, lambda p: write_smv(p, ints, fields, kind="int", c_overflow=c_overflow))
    pscale = _pgm(setup, result, float_image, iscale, writer, lines)
    noise = _noise(setup, float_image, ints, seed_word, fields, writer, lines)
    return {"intfile_scale": iscale, "pgm_scale": pscale,
            "seed": seed_word if o.calculate_noise else None, **noise, "written": writer.written}
