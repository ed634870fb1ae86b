"""argv → ``SimulationSetup``: the C's set-up stage, one named step per precedence rule.

The steps run in the C's order (the C program order): SMV headers, argv,
pixel counts, fluence, near-point defaults, convention, unitized vectors, automatic step counts,
detector rotation and pix0, interpolation choice, crystal vectors, N and oversampling, structure
factors, sources, mosaic domains. File paths are relative to the current working directory.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

import torch

from engine.sample import beam as beam_mod
from engine.sample import crystal as xtal
from engine.config import defects as defects_mod
from engine.config.argv import find_smv_inputs, parse_argv, split_long_options
from engine.config.model import (BeamConfig, CrystalConfig, DetectorConfig, Mode, SamplingConfig, Shape,
                           SimulationSetup, StructureFactors)
from engine.config.device import check_device
from engine.geometry.conventions import BeamCentreInput, ConventionFrame, resolve
from engine.geometry.rotations import magnitude
from engine.geometry.detector import (Basis, DetectorGeometry, clean_basis, detector_geometry, pixel_counts,
                             thickness_layers)
from engine.io.errors import InputFileError
from engine.io.matrix import read_mosflm_matrix
from engine.io.smv import read_header, read_image
from engine.config.options import Options, UsageError
from engine.sample.rng import mosaic_umats, random_misset_angles, uniform_random_rotation
from engine.sample.sources import (generate_sources, incident_directions, read_sourcefile, resolve_steps,
                                   source_lines)
from engine.sample.structure_factors import choose_interpolation, read_hkl
from engine.outputs.trace import TraceRecorder, format_number

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _smv_input(flag: str, read: Callable[..., Any], path: str, **kw: Any) -> Any:
    """Read an -img/-mask file; an ``InputFileError`` names the flag as well as the file."""
    try:
        return read(path, **kw)
    except InputFileError as exc:
        raise InputFileError(f"{flag} {exc}") from None


def _read_headers(opts_argv: Sequence[str]) -> list[tuple[str, dict]]:
    img, mask = find_smv_inputs(opts_argv)
    headers = []
    # The C reads the mask header first and the img header second, so the img header wins.
    if mask is not None:
        headers.append(("mask", _smv_input("-mask", read_header, mask)))
    if img is not None:
        headers.append(("img", _smv_input("-img", read_header, img)))
        # Only the header is used, but the C reads the pixels too: refuse a truncated file.
        _smv_input("-img", read_image, img)
    return headers


def _check_inputs(o: Options, mode: Mode) -> None:
    if o.mat_file is None and (o.cell is None or o.cell[0] == 0.0):
        raise UsageError("no crystal: give -cell a b c alpha beta gamma (Å, deg) or -mat FILE (MOSFLM A matrix)")
    if o.hkl_file is None and o.default_F == 0.0:
        raise UsageError("no structure factors: give -hkl FILE or a non-zero -default_F "
                         "(the engine never reads a Fdump.bin cache)")
    # Values that would only end in a division by zero (a traceback, or a NaN image in the C).
    if not (o.pixel_size > 0.0 and math.isfinite(o.pixel_size)):
        raise UsageError(f"-pixel must be a positive size in mm, got {o.pixel_size * 1e3:g}")
    if mode is not Mode.C_PARITY:
        # c-parity runs these as the C does (a zero distance: an all-zero image; λ = 0: all NaN).
        if not (o.lambda0 > 0.0 and math.isfinite(o.lambda0)):
            raise UsageError(f"the wavelength must be positive: -lambda {o.lambda0 * 1e10:g} Å "
                             f"(or -energy eV) is not")
        if o.distance == 0.0 or not math.isfinite(o.distance):
            raise UsageError(f"-distance must be a non-zero length in mm, got {o.distance * 1e3:g}")
        if o.close_distance is not None and (o.close_distance == 0.0 or not math.isfinite(o.close_distance)):
            raise UsageError(f"-close_distance must be a non-zero length in mm, got {o.close_distance * 1e3:g}")
    if not math.isfinite(o.mosaic_spread):
        raise UsageError("-mosaic: the mosaic spread must be a finite angle (degrees)")


def near_point_defaults(o: Options, detsize_f: float, detsize_s: float) -> tuple[float, float, float, float]:
    """(Fclose, Sclose, Xclose, Yclose): from -ORGX/-ORGY (pixel centres, hence −½), else the
    detector centre; Xclose/Yclose default to them."""
    Fclose = (o.ORGX - 0.5) * o.pixel_size if o.ORGX is not None else detsize_f / 2.0
    Sclose = (o.ORGY - 0.5) * o.pixel_size if o.ORGY is not None else detsize_s / 2.0
    Xclose = Fclose if o.Xclose is None else o.Xclose
    Yclose = Sclose if o.Yclose is None else o.Yclose
    return Fclose, Sclose, Xclose, Yclose


def roi_limits(roi: tuple[int, int, int, int], fpixels: int, spixels: int) -> tuple[int, int, int, int]:
    """Inclusive (fmin, fmax, smin, smax); a negative value means 'detector edge', as in the C."""
    xmin, xmax, ymin, ymax = roi
    xmin = 0 if xmin < 0 else xmin
    xmax = fpixels if xmax < 0 else xmax
    ymin = 0 if ymin < 0 else ymin
    ymax = spixels if ymax < 0 else ymax
    return xmin, min(xmax, fpixels - 1), ymin, min(ymax, spixels - 1)


def _vec_line(name: str, v: torch.Tensor) -> str:
    return name + " " + " ".join(format_number(float(x)) for x in v.detach().tolist())


def _crystal_vectors(o: Options, mode: Mode, defects: frozenset[str], console: list[str]) -> xtal.CellVectors:
    """a, b, c (Å) and the regenerated a*, b*, c* after -cell/-mat and the misset."""
    cell_lengths = cell_V = None
    a_star = b_star = c_star = None
    if o.cell is not None:
        a, b, c, al, be, ga = xtal.complete_cell(o.cell)
        try:
            a_star, b_star, c_star, cell_V = xtal.reciprocal_from_cell(
                a, b, c, al, be, ga, impossible_as_c=mode is Mode.C_PARITY)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        cell_lengths = (a, b, c)
    if o.mat_file is not None:
        a_star, b_star, c_star = xtal.scale_matrix_vectors(*read_mosflm_matrix(o.mat_file), o.lambda0)
        console.append(f"reading {o.mat_file}")
    vecs = [a_star, b_star, c_star]
    if o.misset_random:
        seed = o.misset_seed
        if seed is None:
            # The C seeds -misset random from the wall clock; say so, as the run is not repeatable.
            seed = -int(time.time())
            console.append("note: -misset random without -misset_seed uses the clock as seed")
        if "misset-random-radian-cap" in defects:
            angles = random_misset_angles(-seed)
            console.append("random orientation misset angles: %f %f %f deg" % tuple(x * 180 / math.pi for x in angles))
            vecs = xtal.misset_rotate(vecs, angles)
        else:
            U = uniform_random_rotation(-seed).to(torch.float64)
            vecs = [U @ v for v in vecs]
    elif o.misset is not None:
        vecs = xtal.misset_rotate(vecs, o.misset)
    return xtal.real_space(*vecs, cell_lengths=cell_lengths,
                           cell_V=cell_V)


def _sources(o: Options, basis: Basis, defects: frozenset[str]):
    """(positions, wavelengths, weights) from -sourcefile or the divergence × dispersion grid."""
    if o.sourcefile is not None:
        try:
            return read_sourcefile(o.sourcefile, basis.beam, o.lambda0, c_parity=("sourcefile-last-line-zero" in defects))
        except InputFileError as exc:
            raise InputFileError(f"-sourcefile {exc}") from None
    grid_given = ((o.hdivrange, o.hdivstep, o.hdivsteps, o.vdivrange, o.vdivstep, o.vdivsteps,
                   o.dispersion, o.dispstep, o.dispsteps) != (-1.0, -1.0, -1, -1.0, -1.0, -1, 0.0, -1.0, -1))
    if not grid_given:
        return beam_mod.default_source(basis.beam, o.lambda0)
    h = resolve_steps(o.hdivrange, o.hdivstep, o.hdivsteps)
    v = resolve_steps(o.vdivrange, o.vdivstep, o.vdivsteps)
    d = resolve_steps(o.dispersion, o.dispstep, o.dispsteps)
    return generate_sources(basis.beam, basis.polar, o.lambda0, *h, *v, o.round_div, *d)


def _sampling_lines(cell: xtal.CellVectors, thickstep: float, thicksteps: int, phi0: float,
                    phistep: float, phisteps: int) -> list[str]:
    """The C's console listing of the cell, the sensor layers and the φ steps (same formats)."""
    def angle(u, v):
        return math.degrees(math.acos(max(-1.0, min(1.0, float((u @ v) / (u.norm() * v.norm()))))))
    a, b, c = cell.a, cell.b, cell.c
    lines = ["Unit Cell: %g %g %g %g %g %g" % (float(a.norm()), float(b.norm()), float(c.norm()),
                                              angle(b, c), angle(a, c), angle(a, b))]
    lines += ["thick%d = %g um" % (i, thickstep * i * 1e6) for i in range(thicksteps)]
    lines += ["phi%d = %g" % (i, math.degrees(phi0 + phistep * i)) for i in range(phisteps)]
    return lines


@dataclass(frozen=True)
class _RunSettings:
    """Our long options in argv over the keyword arguments (the first precedence rule)."""

    c_argv: list[str]
    mode: Mode
    device: str
    dtype: torch.dtype
    c_threads: int
    defects: frozenset[str]


def _run_settings(argv: Sequence[str], mode: str | Mode, c_threads: int, device: str | torch.device,
                  dtype: torch.dtype, defects: Optional[Iterable[str]]) -> _RunSettings:
    c_argv, long_opts = split_long_options(argv)
    mode = Mode(long_opts.get("mode", mode.value if isinstance(mode, Mode) else mode))
    device = long_opts["device"] if "device" in long_opts else check_device(device, flag="device")
    dtype = _DTYPES[long_opts["dtype"]] if "dtype" in long_opts else dtype
    if "defects" in long_opts:
        defects = long_opts["defects"]
    defects = defects_mod.for_mode(mode) if defects is None else defects_mod.parse_ids(defects)
    return _RunSettings(c_argv, mode, device, dtype, int(long_opts.get("c_threads", c_threads)), defects)


@dataclass(frozen=True)
class _Detector:
    """The detector as resolved before the crystal: counts, convention frame, geometry, layers."""

    fpixels: int
    spixels: int
    frame: ConventionFrame
    basis: Basis
    pivot: str
    geom: DetectorGeometry
    thick: float
    thickstep: float
    thicksteps: int
    mu: float


def _resolve_detector(o: Options, defects: frozenset[str], console: list[str],
                      rec: TraceRecorder) -> _Detector:
    """Pixel counts, near point, convention and unitized basis, sensor layers, then rotation and
    pix0, with their console lines in the C's order (the mosaic line sits between, as in the C)."""
    fpixels, spixels, detsize_f, detsize_s = pixel_counts(o.pixel_size, o.fpixels, o.spixels,
                                                          o.detsize_f, o.detsize_s)
    if fpixels <= 0 or spixels <= 0:
        raise UsageError(f"detector has {fpixels}x{spixels} pixels; give -detpixels N or -detsize MM")
    console += beam_mod.clip_sample_to_beam(o.sample_y, o.sample_z, o.beamsize)[2]
    Fclose, Sclose, Xclose, Yclose = near_point_defaults(o, detsize_f, detsize_s)
    bc = BeamCentreInput(Xbeam=o.Xbeam, Ybeam=o.Ybeam, Xclose=Xclose, Yclose=Yclose, Fclose=Fclose,
                         Sclose=Sclose, detsize_f=detsize_f, detsize_s=detsize_s, pixel_size=o.pixel_size)
    custom = dict(beam=o.beam_vector, fdet=o.fdet_vector, sdet=o.sdet_vector, odet=o.odet_vector,
                  twotheta_axis=o.twotheta_axis, polar=o.polar_vector, spindle=o.spindle_axis)
    frame = resolve(o.convention, bc, custom)
    basis = clean_basis(frame)
    if basis.odet_regenerated:
        console.append("note: -odet_vector is not of unit length; using unit(fdet x sdet) instead")
    thick, thickstep, thicksteps, mu, lines = thickness_layers(o.detector_thick, o.detector_thickstep,
                                                               o.detector_thicksteps, o.detector_mu)
    console += lines
    console += xtal.mosaic_domain_count(o.mosaic_spread, o.mosaic_domains)[2]
    console.append(f"{frame.name.lower()} convention selected.")
    pix0_ignored = "pix0-vector-ignored" in defects
    if o.pix0_vector is not None and pix0_ignored:
        console.append("note: -pix0_vector values ignored, as the C does (C defect pix0-vector-ignored)")
    pivot = frame.pivot or o.pivot
    geom = detector_geometry(
        frame, basis, pivot=pivot, rotx=o.detector_rotx, roty=o.detector_roty, rotz=o.detector_rotz,
        twotheta=o.twotheta, distance=o.distance, close_distance=o.close_distance,
        pixel_size=o.pixel_size, Xclose=Xclose, Yclose=Yclose,
        pix0_override=None if pix0_ignored else o.pix0_vector, recorder=rec)
    console += [_vec_line("DETECTOR_FAST_AXIS", geom.fdet), _vec_line("DETECTOR_SLOW_AXIS", geom.sdet),
                _vec_line("DETECTOR_NORMAL_AXIS", geom.odet), _vec_line("DETECTOR_PIX0_VECTOR", geom.pix0)]
    return _Detector(fpixels, spixels, frame, basis, pivot, geom, thick, thickstep, thicksteps, mu)


def _oversample(o: Options, cell: xtal.CellVectors, distance: float, console: list[str]) -> tuple[int, int, int, int]:
    """(Na, Nb, Nc, oversample): -xtalsize turns into N; -oversample 0 means the recommended one."""
    lengths_m = [float(magnitude(v * 1e-10)) for v in (cell.a, cell.b, cell.c)]
    sample_y, sample_z, _ = beam_mod.clip_sample_to_beam(o.sample_y, o.sample_z, o.beamsize)
    Na, Nb, Nc = xtal.cell_counts((o.Na, o.Nb, o.Nc), (o.sample_x, sample_y, sample_z), lengths_m)
    xtal_max = xtal.largest_size((lengths_m[0] * Na, lengths_m[1] * Nb, lengths_m[2] * Nc))
    recommended = xtal.recommended_oversample(xtal_max, o.lambda0, distance, o.pixel_size)
    oversample = o.oversample
    if oversample <= 0:
        oversample = recommended
        console.append("auto-selected %d-fold oversampling" % oversample)
    if oversample < recommended:
        console.append(f"note: crystal ({xtal_max * 1e10:g} Å) is large for the pixel; "
                       f"-oversample {recommended} is recommended")
    return Na, Nb, Nc, oversample


def _structure_factors(o: Options, interpolate: bool) -> StructureFactors:
    if o.hkl_file is None:
        return StructureFactors(default_F=o.default_F, interpolate=False)
    sf = read_hkl(o.hkl_file, o.default_F)
    return StructureFactors(default_F=sf.default_F, grid=sf.grid, h_min=sf.h_min, k_min=sf.k_min,
                            l_min=sf.l_min, interpolate=interpolate)


def _mask(o: Options, det: _Detector, defects: frozenset[str]) -> Optional[torch.Tensor]:
    """Pixels an -mask file leaves on (nonzero), or None."""
    if o.mask_file is None:
        return None
    img = _smv_input("-mask", read_image, o.mask_file, c_parity=("smv-no-byteswap" in defects))
    if tuple(img.shape) != (det.spixels, det.fpixels):
        raise UsageError(f"-mask {o.mask_file}: image is {tuple(img.shape)} (slow, fast) but the "
                         f"detector is ({det.spixels}, {det.fpixels}); drop the -detpixels override")
    return img != 0


def _detector_config(o: Options, det: _Detector, oversample: int, mask) -> DetectorConfig:
    geom = det.geom
    return DetectorConfig(
        spixels=det.spixels, fpixels=det.fpixels, pixel_size=o.pixel_size, pix0=geom.pix0, fdet=geom.fdet,
        sdet=geom.sdet, odet=geom.odet, distance=float(geom.distance), close_distance=float(geom.close_distance),
        roi=roi_limits(o.roi, det.fpixels, det.spixels), mask=mask, oversample=oversample, thickness=det.thick,
        thicksteps=det.thicksteps, thickstep=det.thickstep, mu=det.mu, curved=o.curved_det,
        point_pixel=o.point_pixel, convention=det.frame.name, pivot=det.pivot, Xbeam=float(det.frame.Xbeam),
        Ybeam=float(det.frame.Ybeam), Fbeam=float(geom.Fbeam), Sbeam=float(geom.Sbeam))


def _beam_config(o: Options, basis: Basis, positions, wavelengths, weights) -> BeamConfig:
    fluence = beam_mod.resolve_fluence(o.fluence, o.flux, o.exposure, o.beamsize)
    return BeamConfig(
        incident=incident_directions(positions), wavelengths=wavelengths.to(torch.float64),
        weights=weights.to(torch.float64), lambda0=o.lambda0, fluence=fluence, polarization_axis=basis.polar,
        kahn_factor=o.polarization, nopolar=o.nopolar, dmin=o.dmin, source_positions=positions,
        beam_vector=basis.beam)


def _crystal_config(o: Options, cell: xtal.CellVectors, counts: tuple[int, int, int],
                    spindle: torch.Tensor) -> CrystalConfig:
    osc, phistep, phisteps = xtal.phi_sampling(o.osc, o.phistep, o.phisteps)
    mosaic_spread, mosaic_domains, _ = xtal.mosaic_domain_count(o.mosaic_spread, o.mosaic_domains)
    umats = mosaic_umats(mosaic_spread, mosaic_domains, -o.mosaic_seed) if mosaic_domains > 1 else None
    return CrystalConfig(
        a0=cell.a * 1e-10, b0=cell.b * 1e-10, c0=cell.c * 1e-10, a_star=cell.a_star, b_star=cell.b_star,
        c_star=cell.c_star, Na=counts[0], Nb=counts[1], Nc=counts[2], shape=Shape(o.xtal_shape), fudge=o.fudge,
        spindle_axis=spindle, phi0=o.phi0, phistep=phistep, phisteps=phisteps, mosaic_spread=mosaic_spread,
        mosaic_umats=umats)


def build_setup(argv: Sequence[str], *, mode: str | Mode = "spec", c_threads: int = 1,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
                defects: Optional[Iterable[str]] = None) -> SimulationSetup:
    """Resolve a nanoBragg argv (no program name) into a ``SimulationSetup``.

    Our long options in argv (``--mode``, ``--c-defects``, ``--device``, ``--dtype``,
    ``--c-threads``) override the keyword arguments. ``defects`` names the registered C defects
    to reproduce (default: all in c-parity mode, none in spec mode). Raises ``UsageError`` for a
    bad command line or device, ``InputFileError`` for an unreadable or malformed input file.
    """
    run = _run_settings(argv, mode, c_threads, device, dtype, defects)
    o = parse_argv(run.c_argv, headers=_read_headers(run.c_argv))
    _check_inputs(o, run.mode)
    console: list[str] = list(o.notes)
    rec = TraceRecorder()
    det = _resolve_detector(o, run.defects, console, rec)
    # Interpolation choice: made on N as given, before -xtalsize turns into N (as the C does).
    interpolate, line = choose_interpolation(o.interpolate, (o.Na, o.Nb, o.Nc), o.hkl_file is not None)
    if line:
        console.append(line)
    cell = _crystal_vectors(o, run.mode, run.defects, console)
    Na, Nb, Nc, oversample = _oversample(o, cell, float(det.geom.distance), console)
    sf = _structure_factors(o, interpolate)
    positions, wavelengths, weights = _sources(o, det.basis, run.defects)
    positions = positions.to(torch.float64)
    console += _sampling_lines(cell, det.thickstep, det.thicksteps, o.phi0, *xtal.phi_sampling(o.osc, o.phistep, o.phisteps)[1:])
    console += source_lines(positions, wavelengths, weights)
    beam = _beam_config(o, det.basis, positions, wavelengths, weights)
    crystal = _crystal_config(o, cell, (Na, Nb, Nc), det.basis.spindle)
    detector = _detector_config(o, det, oversample, _mask(o, det, run.defects))
    sampling = SamplingConfig(oversample_thick=o.oversample_thick, oversample_polar=o.oversample_polar,
                              oversample_omega=o.oversample_omega,
                              water_I_bg=beam_mod.water_background(o.water_size, beam.fluence))
    setup = SimulationSetup(detector=detector, beam=beam, crystal=crystal, structure_factors=sf,
                            sampling=sampling, mode=run.mode, defects=run.defects, c_threads=run.c_threads,
                            trace_pixel=o.trace_pixel, setup_trace=tuple(rec.lines), console=tuple(console),
                            options=o)
    return setup.to(device=run.device, dtype=run.dtype)
