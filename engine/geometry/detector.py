"""Detector geometry: basis clean-up, rotations, pix0 for both pivots, derived near point.

All functions are pure torch functions of their inputs, so gradients flow from pix0 and the
basis back to distance, beam centre and the rotation angles. The optional ``TraceRecorder``
receives the C's ``TRACE_C:key=value`` set-up lines (as ``TRACE_PY``), in the C's order and with
the C's label quirks (the BEAM branch prints MOSFLM names and initial vectors whatever the
convention, re-prints ``*_after_rotz`` with the final vectors, and both branches divide the beam
centre by 1000 a second time); the values themselves are the physics values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from engine.geometry.conventions import ConventionFrame
from engine.outputs.trace import TraceRecorder, format_number

Scalar = Union[float, torch.Tensor]

#: The fixed text the C prints for its BEAM branch (a label, mirrored verbatim for alignment).
BEAM_MAPPING_TEXT = "Fbeam←Ybeam_mm(+0.5px),Sbeam←Xbeam_mm(+0.5px),beam_vec=[1 0 0]"
_MOSFLM_INITIAL = ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0))


def as_tensor(x, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """A tensor for ``x``; an existing tensor is only cast/moved (its graph is kept)."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype, device=device)
    return torch.tensor(x, dtype=dtype, device=device)


def unitize(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit vector, original magnitude); a zero vector stays zero, as in the C."""
    mag = torch.linalg.vector_norm(v)
    safe = torch.where(mag != 0, mag, torch.ones_like(mag))
    return torch.where(mag != 0, v / safe, torch.zeros_like(v)), mag


def rotation_matrices(rotx: Scalar, roty: Scalar, rotz: Scalar, *, dtype=torch.float64, device="cpu"):
    """(Rx, Ry, Rz, R) with R = Rz·Ry·Rx: the detector rotations are applied about x, then y, then z."""
    x, y, z = (as_tensor(a, dtype, device) for a in (rotx, roty, rotz))
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    cx, sx, cy, sy, cz, sz = torch.cos(x), torch.sin(x), torch.cos(y), torch.sin(y), torch.cos(z), torch.sin(z)
    Rx = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, cx, -sx]), torch.stack([zero, sx, cx])])
    Ry = torch.stack([torch.stack([cy, zero, sy]), torch.stack([zero, one, zero]), torch.stack([-sy, zero, cy])])
    Rz = torch.stack([torch.stack([cz, -sz, zero]), torch.stack([sz, cz, zero]), torch.stack([zero, zero, one])])
    return Rx, Ry, Rz, Rz @ (Ry @ Rx)


def rotate_xyz(v: torch.Tensor, rotx: Scalar, roty: Scalar, rotz: Scalar) -> torch.Tensor:
    """Rotate ``v`` (..., 3) about x, then y, then z (angles in rad)."""
    R = rotation_matrices(rotx, roty, rotz, dtype=v.dtype, device=v.device)[3]
    return v @ R.T


def rotate_about_axis(v: torch.Tensor, axis: torch.Tensor, angle: Scalar) -> torch.Tensor:
    """Rodrigues rotation of ``v`` (..., 3) by ``angle`` about ``axis``.

    ``axis`` is used as given, not normalized: the C never unitizes the two-theta axis, and a
    non-unit axis really does give a non-orthonormal detector there.
    """
    angle = as_tensor(angle, v.dtype, v.device)
    c, s = torch.cos(angle), torch.sin(angle)
    along = (v * axis).sum(-1, keepdim=True) * (1.0 - c)
    return axis * along + v * c + torch.linalg.cross(axis.expand_as(v), v) * s


@dataclass(frozen=True)
class Basis:
    """Unitized lab-frame vectors after the convention (the C's 'straighten up vectors')."""

    beam: torch.Tensor
    fdet: torch.Tensor
    sdet: torch.Tensor
    odet: torch.Tensor
    twotheta_axis: torch.Tensor   # not unitized
    polar: torch.Tensor
    spindle: torch.Tensor
    odet_regenerated: bool


def clean_basis(frame: ConventionFrame, *, dtype=torch.float64, device="cpu") -> Basis:
    """Unitize the convention's vectors; an odet whose length is not exactly 1 becomes f × s."""
    t = lambda v: as_tensor(v, dtype, device)
    beam, _ = unitize(t(frame.beam))
    fdet, _ = unitize(t(frame.fdet))
    sdet, _ = unitize(t(frame.sdet))
    odet, omag = unitize(t(frame.odet))
    regenerated = bool(omag.item() != 1.0)
    if regenerated:
        odet, _ = unitize(torch.linalg.cross(fdet, sdet))
    polar, _ = unitize(t(frame.polar))
    spindle, _ = unitize(t(frame.spindle))
    return Basis(beam, fdet, sdet, odet, t(frame.twotheta_axis), polar, spindle, regenerated)


@dataclass(frozen=True)
class DetectorGeometry:
    """The resolved detector, as the C has it just before the pixel loop."""

    pix0: torch.Tensor
    fdet: torch.Tensor
    sdet: torch.Tensor
    odet: torch.Tensor
    distance: torch.Tensor        # close_distance / ratio
    close_distance: torch.Tensor
    ratio: torch.Tensor           # beam · odet rotated by x, y, z only (two-theta ignored, as the C)
    Fclose: torch.Tensor
    Sclose: torch.Tensor
    Fbeam: torch.Tensor
    Sbeam: torch.Tensor
    ORGX: torch.Tensor
    ORGY: torch.Tensor
    dials_origin: torch.Tensor    # mm


def _vals(v: torch.Tensor) -> list[float]:
    return [float(x) for x in v.detach().reshape(-1).tolist()]


def _mat(M: torch.Tensor) -> str:
    rows = [" ".join(format_number(float(x)) for x in row) for row in M.detach().tolist()]
    return "[" + "; ".join(rows) + "]"


def _angles_text(rotx, roty, rotz, twotheta) -> str:
    v = [float(as_tensor(a).detach()) for a in (rotx, roty, rotz, twotheta)]
    return "rotx:{} roty:{} rotz:{} twotheta:{}".format(*(format_number(x) for x in v))


def detector_geometry(frame: ConventionFrame, basis: Basis, *, pivot: str,
                      rotx: Scalar = 0.0, roty: Scalar = 0.0, rotz: Scalar = 0.0, twotheta: Scalar = 0.0,
                      distance: Scalar, close_distance: Optional[Scalar], pixel_size: float,
                      Xclose: Scalar, Yclose: Scalar,
                      pix0_override: Optional[Union[Sequence[float], torch.Tensor]] = None,
                      recorder: Optional[TraceRecorder] = None) -> DetectorGeometry:
    """Rotate the detector and place pix0 (the C's set-up, lines ~1722-1937).

    ``pivot`` 'SAMPLE' swings the near point (Fclose, Sclose, close_distance) with the detector;
    'BEAM' keeps the direct-beam spot (Fbeam, Sbeam) fixed. ``pix0_override`` (spec mode only)
    replaces pix0 before the near point and beam spot are derived from it.
    """
    dtype, device = basis.fdet.dtype, basis.fdet.device
    t = lambda x: as_tensor(x, dtype, device)
    rec = recorder
    f0, s0, o0, b, axis = basis.fdet, basis.sdet, basis.odet, basis.beam, basis.twotheta_axis
    twotheta = t(twotheta)

    ratio = (b * rotate_xyz(o0, rotx, roty, rotz)).sum()
    ratio = torch.where(ratio == 0, torch.full_like(ratio, torch.finfo(dtype).tiny), ratio)
    distance = t(distance)
    close = (ratio * distance).abs() if close_distance is None else t(close_distance)
    distance = close / ratio

    pix0 = None
    if pivot == "SAMPLE":
        Fclose, Sclose = t(frame.Fclose), t(frame.Sclose)
        if rec is not None:
            rec.setup("detector_convention", frame.name)
            rec.setup("angles_rad", _angles_text(rotx, roty, rotz, twotheta))
            rec.setup("beam_center_m", "Xclose:{} Yclose:{} pixel_mm:{}".format(
                format_number(float(t(Xclose).detach()) / 1000.0),
                format_number(float(t(Yclose).detach()) / 1000.0), format_number(pixel_size * 1000.0)))
            rec.setup_vec("initial_fdet", _vals(f0))
            rec.setup_vec("initial_sdet", _vals(s0))
            rec.setup_vec("initial_odet", _vals(o0))
            for key, v in (("Fclose_m", Fclose), ("Sclose_m", Sclose), ("close_distance_m", close),
                           ("ratio", ratio), ("distance_m", distance)):
                rec.setup(key, format_number(float(v.detach())))
            rec.setup_vec("term_fast_before_rot", _vals(-Fclose * f0))
            rec.setup_vec("term_slow_before_rot", _vals(-Sclose * s0))
            rec.setup_vec("term_close_before_rot", _vals(close * o0))
        pix0 = -Fclose * f0 - Sclose * s0 + close * o0
        if rec is not None:
            rec.setup_vec("pix0_before_rotation", _vals(pix0))
        pix0 = rotate_xyz(pix0, rotx, roty, rotz)
        if rec is not None:
            rec.setup_vec("pix0_after_rotz", _vals(pix0))
        pix0 = rotate_about_axis(pix0, axis, twotheta)
        if rec is not None:
            rec.setup_vec("pix0_after_twotheta", _vals(pix0))

    f, s, o = (rotate_xyz(v, rotx, roty, rotz) for v in (f0, s0, o0))
    if rec is not None:
        for key, v in (("fdet_after_rotz", f), ("sdet_after_rotz", s), ("odet_after_rotz", o)):
            rec.setup_vec(key, _vals(v))
    f, s, o = (rotate_about_axis(v, axis, twotheta) for v in (f, s, o))
    if rec is not None:
        rec.setup_vec("twotheta_axis", _vals(axis))
        for key, v in (("fdet_after_twotheta", f), ("sdet_after_twotheta", s), ("odet_after_twotheta", o)):
            rec.setup_vec(key, _vals(v))

    if pivot == "BEAM":
        Fbeam, Sbeam = t(frame.Fbeam), t(frame.Sbeam)
        if rec is not None:
            rec.setup("detector_convention", "MOSFLM")
            rec.setup("angles_rad", _angles_text(rotx, roty, rotz, twotheta))
            rec.setup("beam_center_m", "X:{} Y:{} pixel_mm:{}".format(
                format_number(float(t(frame.Xbeam).detach()) / 1000.0),
                format_number(float(t(frame.Ybeam).detach()) / 1000.0), format_number(pixel_size * 1000.0)))
            for key, v in zip(("initial_fdet", "initial_sdet", "initial_odet"), _MOSFLM_INITIAL):
                rec.setup_vec(key, v)
            Rx, Ry, Rz, R = rotation_matrices(rotx, roty, rotz, dtype=dtype, device=device)
            for key, M in (("Rx", Rx), ("Ry", Ry), ("Rz", Rz), ("R_total", R)):
                rec.setup(key, _mat(M))
            for key, v in (("fdet_after_rotz", f), ("sdet_after_rotz", s), ("odet_after_rotz", o)):
                rec.setup_vec(key, _vals(v))
            rec.setup_vec("twotheta_axis", _vals(axis))
            for key, v in (("fdet_after_twotheta", f), ("sdet_after_twotheta", s), ("odet_after_twotheta", o)):
                rec.setup_vec(key, _vals(v))
            rec.setup("convention_mapping", BEAM_MAPPING_TEXT)
            for key, v in (("Fbeam_m", Fbeam), ("Sbeam_m", Sbeam), ("distance_m", distance)):
                rec.setup(key, format_number(float(v.detach())))
            rec.setup_vec("term_fast", _vals(-Fbeam * f))
            rec.setup_vec("term_slow", _vals(-Sbeam * s))
            rec.setup_vec("term_beam", _vals(distance * b))
        pix0 = -Fbeam * f - Sbeam * s + distance * b
        if rec is not None:
            rec.setup_vec("pix0_vector", _vals(pix0))

    if pix0_override is not None:
        pix0 = t(pix0_override)
    assert pix0 is not None, f"pivot must be BEAM or SAMPLE, got {pivot!r}"

    Fclose = -(pix0 * f).sum()
    Sclose = -(pix0 * s).sum()
    close = (pix0 * o).sum()
    beam_spot = close / ratio * b - pix0
    Fbeam = (f * beam_spot).sum()
    Sbeam = (s * beam_spot).sum()
    distance = close / ratio
    dials = 1000.0 * torch.stack([pix0[2], pix0[1], -pix0[0]])
    return DetectorGeometry(pix0=pix0, fdet=f, sdet=s, odet=o, distance=distance, close_distance=close,
                            ratio=ratio, Fclose=Fclose, Sclose=Sclose, Fbeam=Fbeam, Sbeam=Sbeam,
                            ORGX=Fclose / pixel_size + 0.5, ORGY=Sclose / pixel_size + 0.5,
                            dials_origin=dials)


def pixel_counts(pixel_size: float, fpixels: int, spixels: int, detsize_f: float,
                 detsize_s: float) -> tuple[int, int, float, float]:
    """(fpixels, spixels, detsize_f, detsize_s): counts win over sizes; a size alone is rounded
    to whole pixels with ceil(size/pixel - 0.5)."""
    if pixel_size <= 0:
        raise ValueError(f"-pixel must be positive (mm), got {pixel_size * 1000:g}")
    if fpixels:
        detsize_f = pixel_size * fpixels
    if spixels:
        detsize_s = pixel_size * spixels
    return (int(math.ceil(detsize_f / pixel_size - 0.5)), int(math.ceil(detsize_s / pixel_size - 0.5)),
            detsize_f, detsize_s)


def thickness_layers(thick: float, thickstep: float, thicksteps: int,
                     mu: float) -> tuple[float, float, int, float, list[str]]:
    """The C's sensor-layer rules → (thickness m, step m, layer count, mu m^-1, console lines).

    A thickness with N layers spaces them thick/(N-1) apart (a count of 1 becomes 2); a
    thickness alone gives 2 layers thick/2 apart; without -detector_abs, mu = 1/thickness.
    """
    lines: list[str] = []
    if thicksteps <= 0:
        if thick < 0.0:
            if thickstep <= 0.0:
                thicksteps, thick, thickstep = 1, 0.0, 0.0
            else:
                thick, thicksteps = thickstep, 2
        else:
            if thickstep <= 0.0:
                thicksteps = 2
                thickstep = thick / thicksteps
            else:
                thicksteps = int(math.ceil(thick / thickstep))
    else:
        if thick < 0.0:
            if thickstep <= 0.0:
                thick = 0.5e-6
                thickstep = thick / thicksteps
            else:
                thick, thicksteps = thickstep, 2
        else:
            if thickstep <= 0.0:
                if thicksteps <= 1:
                    thicksteps = 2
                thickstep = thick / (thicksteps - 1)
    if thick > 0.0 and mu < 0.0:
        mu = 1.0 / thick
        lines.append(f"note: no -detector_abs given; attenuation mu set to 1/thickness = {mu:g} m^-1")
    if thick <= 0.0 or thickstep <= 0.0 or thicksteps <= 0:
        thicksteps, thick, thickstep = 1, 0.0, 0.0
    return thick, thickstep, thicksteps, mu, lines
