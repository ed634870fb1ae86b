"""Detector conventions: one small pure function each (MOSFLM, XDS, DIALS, ADXV, DENZO, CUSTOM).

A convention fixes the lab-frame basis (beam, detector fast/slow/normal, two-theta axis,
polarization, spindle), how the user's beam centre (Xbeam, Ybeam) maps onto the detector's fast
and slow axes (Fbeam, Sbeam), and, except for CUSTOM, which pivot the detector rotates about.
The C applies these after parsing, so a convention overrides any vector or pivot given by flags;
only CUSTOM keeps them. Lengths are metres; scalars may be floats or 0-d tensors (for gradients).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

Scalar = Union[float, torch.Tensor]
Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class BeamCentreInput:
    """The beam-centre quantities as they stand when the convention block runs (metres)."""

    Xbeam: Optional[Scalar]      # None: not given
    Ybeam: Optional[Scalar]
    Xclose: Scalar               # already defaulted to Fclose
    Yclose: Scalar               # already defaulted to Sclose
    Fclose: Scalar
    Sclose: Scalar
    detsize_f: float
    detsize_s: float
    pixel_size: float


@dataclass(frozen=True)
class ConventionFrame:
    """What a convention resolves: basis vectors (not yet unitized) and the beam-centre mapping."""

    name: str
    beam: Vec3
    fdet: Vec3
    sdet: Vec3
    odet: Vec3
    twotheta_axis: Vec3
    polar: Vec3
    spindle: Vec3
    Xbeam: Scalar
    Ybeam: Scalar
    Fbeam: Scalar
    Sbeam: Scalar
    Fclose: Scalar
    Sclose: Scalar
    pivot: Optional[str]         # forced pivot; None: keep the one the flags chose


def _or(v: Optional[Scalar], default: Scalar) -> Scalar:
    return default if v is None else v


def _mosflm_like(name: str, bc: BeamCentreInput, half_pixel: float) -> ConventionFrame:
    # MOSFLM's X is along the slow axis and Y along the fast one; the first pixel's centre is
    # at half a pixel, hence the default in the middle plus half a pixel.
    Xbeam = _or(bc.Xbeam, (bc.detsize_s + bc.pixel_size) / 2.0)
    Ybeam = _or(bc.Ybeam, (bc.detsize_f + bc.pixel_size) / 2.0)
    return ConventionFrame(
        name, beam=(1.0, 0.0, 0.0), fdet=(0.0, 0.0, 1.0), sdet=(0.0, -1.0, 0.0), odet=(1.0, 0.0, 0.0),
        twotheta_axis=(0.0, 0.0, -1.0), polar=(0.0, 0.0, 1.0), spindle=(0.0, 0.0, 1.0),
        Xbeam=Xbeam, Ybeam=Ybeam,
        Fbeam=Ybeam + half_pixel * bc.pixel_size, Sbeam=Xbeam + half_pixel * bc.pixel_size,
        Fclose=bc.Fclose, Sclose=bc.Sclose, pivot="BEAM")


def mosflm(bc: BeamCentreInput, custom: Optional[dict] = None) -> ConventionFrame:
    """MOSFLM (the default): beam along +x, Fbeam = Ybeam + ½ pixel, Sbeam = Xbeam + ½ pixel."""
    return _mosflm_like("MOSFLM", bc, 0.5)


def denzo(bc: BeamCentreInput, custom: Optional[dict] = None) -> ConventionFrame:
    """DENZO: MOSFLM's basis without the half-pixel offset."""
    return _mosflm_like("DENZO", bc, 0.0)


def adxv(bc: BeamCentreInput, custom: Optional[dict] = None) -> ConventionFrame:
    """ADXV: beam along +z, origin at the top-left, so Sbeam counts down from the detector height."""
    Xbeam = _or(bc.Xbeam, (bc.detsize_f + bc.pixel_size) / 2.0)
    Ybeam = _or(bc.Ybeam, (bc.detsize_s - bc.pixel_size) / 2.0)
    return ConventionFrame(
        "ADXV", beam=(0.0, 0.0, 1.0), fdet=(1.0, 0.0, 0.0), sdet=(0.0, -1.0, 0.0), odet=(0.0, 0.0, 1.0),
        twotheta_axis=(-1.0, 0.0, 0.0), polar=(1.0, 0.0, 0.0), spindle=(1.0, 0.0, 0.0),
        Xbeam=Xbeam, Ybeam=Ybeam, Fbeam=Xbeam, Sbeam=bc.detsize_s - Ybeam,
        Fclose=bc.Fclose, Sclose=bc.Sclose, pivot="BEAM")


def _xds_like(name: str, bc: BeamCentreInput, tt_axis: Vec3, polar: Vec3, spindle: Vec3) -> ConventionFrame:
    # The SAMPLE pivot these force uses Fclose/Sclose; Xbeam/Ybeam only reach the header.
    Xbeam = _or(bc.Xbeam, bc.Xclose)
    Ybeam = _or(bc.Ybeam, bc.Yclose)
    return ConventionFrame(
        name, beam=(0.0, 0.0, 1.0), fdet=(1.0, 0.0, 0.0), sdet=(0.0, 1.0, 0.0), odet=(0.0, 0.0, 1.0),
        twotheta_axis=tt_axis, polar=polar, spindle=spindle,
        Xbeam=Xbeam, Ybeam=Ybeam, Fbeam=Xbeam, Sbeam=Ybeam,
        Fclose=bc.Fclose, Sclose=bc.Sclose, pivot="SAMPLE")


def xds(bc: BeamCentreInput, custom: Optional[dict] = None) -> ConventionFrame:
    """XDS: beam along +z, fast +x, slow +y; SAMPLE pivot."""
    return _xds_like("XDS", bc, (1.0, 0.0, 0.0), (1.0, 0.0, 0.0), (1.0, 0.0, 0.0))


def dials(bc: BeamCentreInput, custom: Optional[dict] = None) -> ConventionFrame:
    """DIALS: XDS's detector basis with the two-theta axis, polarization and spindle along +y."""
    return _xds_like("DIALS", bc, (0.0, 1.0, 0.0), (0.0, 1.0, 0.0), (0.0, 1.0, 0.0))


def custom(bc: BeamCentreInput, custom: Optional[dict] = None) -> ConventionFrame:
    """CUSTOM: the vectors as given (or the C's initial values); no axis swap, no half pixel,
    and the beam centre is also the near point. The pivot stays as the flags left it."""
    v = custom or {}
    Xbeam = _or(bc.Xbeam, bc.Xclose)
    Ybeam = _or(bc.Ybeam, bc.Yclose)
    return ConventionFrame(
        "CUSTOM", beam=v.get("beam", (1.0, 0.0, 0.0)), fdet=v.get("fdet", (0.0, 0.0, 1.0)),
        sdet=v.get("sdet", (0.0, -1.0, 0.0)), odet=v.get("odet", (1.0, 0.0, 0.0)),
        twotheta_axis=v.get("twotheta_axis", (0.0, 1.0, 0.0)), polar=v.get("polar", (0.0, 0.0, 1.0)),
        spindle=v.get("spindle", (0.0, 0.0, 1.0)),
        Xbeam=Xbeam, Ybeam=Ybeam, Fbeam=Xbeam, Sbeam=Ybeam, Fclose=Xbeam, Sclose=Ybeam, pivot=None)


CONVENTIONS: dict[str, Callable[..., ConventionFrame]] = {
    "MOSFLM": mosflm, "XDS": xds, "DIALS": dials, "ADXV": adxv, "DENZO": denzo, "CUSTOM": custom,
}


def resolve(name: str, bc: BeamCentreInput, custom_vectors: Optional[dict] = None) -> ConventionFrame:
    """Apply convention ``name``; ``custom_vectors`` (keys beam, fdet, sdet, odet, twotheta_axis,
    polar, spindle) are used by CUSTOM only."""
    try:
        fn = CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown detector convention {name!r}; known: {', '.join(CONVENTIONS)}") from None
    return fn(bc, custom_vectors)
