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
from engine.geometry.detector_trace import DetectorTrace
from engine.geometry.rotations import Scalar, as_tensor, cross, dot, rotate_about_axis, rotate_xyz, unitize
from engine.outputs.trace import TraceRecorder



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
        odet, _ = unitize(cross(fdet, sdet))
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


def _sample_pivot_pix0(frame: ConventionFrame, basis: Basis, rot: tuple[Scalar, Scalar, Scalar],
                       twotheta: torch.Tensor, close: torch.Tensor, t) -> tuple[torch.Tensor, dict]:
    """SAMPLE pivot: pix0 from the near point (Fclose, Sclose, close_distance), swung with the
    detector; returns it and the intermediates the trace shows."""
    f0, s0, o0 = basis.fdet, basis.sdet, basis.odet
    Fclose, Sclose = t(frame.Fclose), t(frame.Sclose)
    steps = {"Fclose": Fclose, "Sclose": Sclose}
    pix0 = -Fclose * f0 - Sclose * s0 + close * o0
    steps["pix0_before_rotation"] = pix0
    pix0 = rotate_xyz(pix0, *rot)
    steps["pix0_after_rotz"] = pix0
    pix0 = rotate_about_axis(pix0, basis.twotheta_axis, twotheta)
    steps["pix0_after_twotheta"] = pix0
    return pix0, steps


def detector_geometry(frame: ConventionFrame, basis: Basis, *, pivot: str,
                      rotx: Scalar = 0.0, roty: Scalar = 0.0, rotz: Scalar = 0.0, twotheta: Scalar = 0.0,
                      distance: Scalar, close_distance: Optional[Scalar], pixel_size: float,
                      Xclose: Scalar, Yclose: Scalar,
                      pix0_override: Optional[Union[Sequence[float], torch.Tensor]] = None,
                      recorder: Optional[TraceRecorder] = None) -> DetectorGeometry:
    """Rotate the detector and place pix0 (the C's set-up, lines ~1722-1937).

    ``pivot`` 'SAMPLE' swings the near point (Fclose, Sclose, close_distance) with the detector;
    'BEAM' keeps the direct-beam spot (Fbeam, Sbeam) fixed. ``pix0_override`` (spec mode only)
    replaces pix0 before the near point and beam spot are derived from it. ``recorder`` receives
    the C's set-up trace lines (``engine.geometry.detector_trace``).
    """
    if pivot not in ("SAMPLE", "BEAM"):
        raise ValueError(f"pivot must be BEAM or SAMPLE, got {pivot!r}")
    dtype, device = basis.fdet.dtype, basis.fdet.device
    t = lambda x: as_tensor(x, dtype, device)
    rot = (rotx, roty, rotz)
    f0, s0, o0, b, axis = basis.fdet, basis.sdet, basis.odet, basis.beam, basis.twotheta_axis
    twotheta = t(twotheta)

    ratio = (b * rotate_xyz(o0, *rot)).sum()
    ratio = torch.where(ratio == 0, torch.full_like(ratio, torch.finfo(dtype).tiny), ratio)
    distance = t(distance)
    close = (ratio * distance).abs() if close_distance is None else t(close_distance)
    distance = close / ratio
    trace = None if recorder is None else DetectorTrace(recorder, frame, basis, rot, twotheta, pixel_size)

    if pivot == "SAMPLE":
        pix0, steps = _sample_pivot_pix0(frame, basis, rot, twotheta, close, t)
        if trace is not None:
            trace.sample_pivot(t(Xclose), t(Yclose), close, ratio, distance, steps)
    rotated = tuple(rotate_xyz(v, *rot) for v in (f0, s0, o0))
    f, s, o = (rotate_about_axis(v, axis, twotheta) for v in rotated)
    if trace is not None:
        trace.rotated_axes(rotated, (f, s, o))
    if pivot == "BEAM":
        Fbeam, Sbeam = t(frame.Fbeam), t(frame.Sbeam)
        pix0 = -Fbeam * f - Sbeam * s + distance * b
        if trace is not None:
            trace.beam_pivot((f, s, o), Fbeam, Sbeam, distance, pix0)

    if pix0_override is not None:
        pix0 = t(pix0_override)
    Fclose = -dot(pix0, f)
    Sclose = -dot(pix0, s)
    close = dot(pix0, o)
    beam_spot = close / ratio * b - pix0
    Fbeam = dot(f, beam_spot)
    Sbeam = dot(s, beam_spot)
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


def _layer_spacing(thick: float, thickstep: float, thicksteps: int) -> tuple[float, float, int]:
    """The C's completion of (thickness, step, count) from whichever of them were given."""
    if thicksteps <= 0:
        if thick < 0.0:
            return (0.0, 0.0, 1) if thickstep <= 0.0 else (thickstep, thickstep, 2)
        if thickstep <= 0.0:
            return thick, thick / 2, 2
        return thick, thickstep, int(math.ceil(thick / thickstep))
    if thick < 0.0:
        if thickstep <= 0.0:
            return 0.5e-6, 0.5e-6 / thicksteps, thicksteps
        return thickstep, thickstep, 2
    if thickstep <= 0.0:
        thicksteps = max(thicksteps, 2)
        thickstep = thick / (thicksteps - 1)
    return thick, thickstep, thicksteps


def thickness_layers(thick: float, thickstep: float, thicksteps: int,
                     mu: float) -> tuple[float, float, int, float, list[str]]:
    """The C's sensor-layer rules → (thickness m, step m, layer count, mu m^-1, console lines).

    A thickness with N layers spaces them thick/(N-1) apart (a count of 1 becomes 2); a
    thickness alone gives 2 layers thick/2 apart; without -detector_abs, mu = 1/thickness.
    """
    lines: list[str] = []
    thick, thickstep, thicksteps = _layer_spacing(thick, thickstep, thicksteps)
    if thick > 0.0 and mu < 0.0:
        mu = 1.0 / thick
        lines.append(f"note: no -detector_abs given; attenuation mu set to 1/thickness = {mu:g} m^-1")
    if thick <= 0.0 or thickstep <= 0.0 or thicksteps <= 0:
        thicksteps, thick, thickstep = 1, 0.0, 0.0
    return thick, thickstep, thicksteps, mu, lines
