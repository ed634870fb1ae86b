"""The C's option loop as a table: one ``Branch`` per ``if`` of nanoBragg's argv loop, in its order.

The C tests every argv token that starts with ``-`` against every flag pattern by substring
(``strstr``), lets one token fire several branches, never skips value tokens, and lets the last
occurrence win; ``engine.config.argv.parse_argv`` walks this table with exactly those rules, so
that ``-twotheta_axis`` also sets two-theta, ``-pix0_vector_mm`` is caught by ``-pix0_vector`` and
``-wavelength`` acts as ``-wave``. An
action stores what its flag sets into the parse state (a dict of ``Options`` fields); a
malformed value is a one-line ``UsageError`` where the C would silently read garbage.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from engine.config.options import UsageError

#: The C's radians-to-degrees factor (180·M_1_PI: the same double as 180/π). Angles are
#: converted as the C does, degrees / RTD: multiplying by π/180 instead is an ulp off for
#: some angles (95°), enough to move a ceil(size/|a|) cell count.
RTD = 180.0 / math.pi

_FLOAT_RE = re.compile(r"^\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf(inity)?|nan)\s*$", re.IGNORECASE)
_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")

#: A branch action: (parse state, the flag token, the tokens after it) → values consumed, or
#: None for the branch's fixed count.
Action = Callable[[dict, str, list[str]], Optional[int]]


def parse_float(flag: str, text: str) -> float:
    if not _FLOAT_RE.match(text):
        raise UsageError(f"{flag}: expected a number, got {text!r}")
    return float(text)


def parse_int(flag: str, text: str) -> int:
    if not _INT_RE.match(text):
        raise UsageError(f"{flag}: expected an integer, got {text!r}")
    return int(text)


def parse_vector(flag: str, vals: Sequence[str]) -> tuple[float, float, float]:
    return (parse_float(flag, vals[0]), parse_float(flag, vals[1]), parse_float(flag, vals[2]))


# ---------------------------------------------------------------------------------------------
# Matching predicates, mirroring the C's tests on one token.
def substring(*patterns: str) -> Callable[[str], bool]:
    return lambda tok: any(p in tok for p in patterns)


def exact(pattern: str) -> Callable[[str], bool]:
    return lambda tok: tok == pattern


@dataclass(frozen=True)
class Branch:
    """One ``if`` of the C's option loop."""

    match: Callable[[str], bool]
    nvals: int                      # values the C requires to follow (argc > i+nvals)
    apply: Action
    stop: bool = False              # the C's `continue`: no later branch sees this token
    consumes: Optional[int] = None  # values consumed when different from nvals (-curved_det: 0)


def store_constants(**fields: object) -> Action:
    """Store constants (a switch such as -nopolar)."""
    def apply(st, tok, vals):
        st.update(fields)
    return apply


def store_float(field: str, scale: float = 1.0, **extra: object) -> Action:
    """Store the one number after the flag, times ``scale`` (the C's unit conversion), and ``extra``."""
    def apply(st, tok, vals):
        st[field] = parse_float(tok, vals[0]) * scale
        st.update(extra)
    return apply


def store_angle(field: str, **extra: object) -> Action:
    """Store the one angle after the flag, degrees → radians as the C converts (÷ RTD), and ``extra``."""
    def apply(st, tok, vals):
        st[field] = parse_float(tok, vals[0]) / RTD
        st.update(extra)
    return apply


def store_int(field: str, *more: str, negate: bool = False) -> Action:
    """Store the one integer after the flag into ``field`` and every name in ``more``."""
    def apply(st, tok, vals):
        v = parse_int(tok, vals[0])
        for f in (field, *more):
            st[f] = -v if negate else v
    return apply


def store_text(field: str, **extra: object) -> Action:
    """Store the token after the flag as given (a file name), and ``extra``."""
    def apply(st, tok, vals):
        st[field] = vals[0]
        st.update(extra)
    return apply


def store_vector(field: str, custom: bool = True) -> Action:
    """Store the three numbers after the flag; a vector flag switches to the CUSTOM convention."""
    def apply(st, tok, vals):
        st[field] = parse_vector(tok, vals)
        if custom:
            st["convention"] = "CUSTOM"
    return apply


def read_cell(st: dict, tok: str, vals: list[str]) -> int:
    # The C reads up to six numbers and stops at the first token that starts with '-'.
    given = []
    for v in vals[:6]:
        if v.startswith("-"):
            break
        given.append(parse_float(tok, v))
    if not given:
        raise UsageError(f"{tok}: give the cell as a [b c [alpha beta gamma]] (Å, degrees)")
    a, b, c, al, be, ga = (given + [0.0] * 6)[:6]
    st["cell"] = (a, b, c, al / RTD, be / RTD, ga / RTD)
    return len(given)


def _misset_random(st, tok, vals):
    st["misset_random"] = True


def _misset_angles(st, tok, vals):
    st["misset"] = tuple(parse_float(tok, v) / RTD for v in vals[:3])
    st["misset_random"] = False


def _pix0(st, tok, vals):
    v = parse_vector(tok, vals)
    # The C files -pix0_vector_mm under -pix0_vector without converting; the values only
    # matter in spec mode, where the _mm form means millimetres.
    scale = 1e-3 if "-pix0_vector_mm" in tok else 1.0
    st["pix0_vector"] = tuple(x * scale for x in v)
    st["convention"] = "CUSTOM"


def _pivot(st, tok, vals):
    if "sample" not in vals[0] and "beam" not in vals[0]:
        raise UsageError(f"{tok}: expected 'beam' or 'sample', got {vals[0]!r}")
    if "sample" in vals[0]:
        st["pivot"] = "SAMPLE"
    if "beam" in vals[0]:
        st["pivot"] = "BEAM"


def _detector_abs(st, tok, vals):
    if "inf" in vals[0] or parse_float(tok, vals[0]) == 0.0:
        st["detector_thick"] = 0.0
        st["detector_mu"] = 0.0
    else:
        st["detector_mu"] = 1.0 / (parse_float(tok, vals[0]) * 1e-6)


def _roi(st, tok, vals):
    st["roi"] = tuple(parse_int(tok, v) for v in vals[:4])


def _printout_pixel(st, tok, vals):
    st["printout_pixel"] = (parse_int(tok, vals[0]), parse_int(tok, vals[1]))


def _trace_pixel(st, tok, vals):
    st["trace_pixel"] = (parse_int(tok, vals[0]), parse_int(tok, vals[1]))


def _energy(st, tok, vals):
    e = parse_float(tok, vals[0])
    if e == 0.0:
        raise UsageError(f"{tok}: the photon energy must be non-zero (eV)")
    st["lambda0"] = (12398.42 / e) / 1.0e10


def _stol(mult: float):
    def apply(st, tok, vals):
        st["stol_file"] = vals[0]
        st["stol_file_mult"] = mult
    return apply


def _seed(field: str):
    def apply(st, tok, vals):
        st[field] = -parse_int(tok, vals[0])
    return apply


def _curved(st, tok, vals):
    st["curved_det"] = True


#: `-misset random`: fires only when the next token contains "rand" (checked in parse_argv).
MISSET_RANDOM = Branch(exact("-misset"), 1, _misset_random, stop=True)
#: The C's option branches, in its order (instrumented nanoBragg.c main option loop).
BRANCHES: tuple[Branch, ...] = (
    Branch(substring("-Na"), 1, store_int("Na"), stop=True),
    Branch(substring("-Nb"), 1, store_int("Nb"), stop=True),
    Branch(substring("-Nc"), 1, store_int("Nc"), stop=True),
    Branch(exact("-N"), 1, store_int("Na", "Nb", "Nc"), stop=True),
    Branch(substring("-cell"), 1, read_cell),
    MISSET_RANDOM,
    Branch(exact("-misset"), 3, _misset_angles),
    Branch(substring("-samplesize", "-sample_size"), 1, lambda st, t, v: st.update(
        sample_x=parse_float(t, v[0]) / 1000, sample_y=parse_float(t, v[0]) / 1000, sample_z=parse_float(t, v[0]) / 1000)),
    Branch(substring("-sample_thick", "-sample_x"), 1, store_float("sample_x", 1e-3)),
    Branch(substring("-sample_width", "-sample_y", "-width"), 1, store_float("sample_y", 1e-3)),
    Branch(substring("-sample_heigh", "-sample_z", "-heigh"), 1, store_float("sample_z", 1e-3)),
    Branch(substring("-xtalsize", "-xtal_size"), 1, lambda st, t, v: st.update(
        sample_x=parse_float(t, v[0]) / 1000, sample_y=parse_float(t, v[0]) / 1000, sample_z=parse_float(t, v[0]) / 1000)),
    Branch(substring("-xtal_thick", "-xtal_x"), 1, store_float("sample_x", 1e-3)),
    Branch(substring("-xtal_width", "-xtal_y", "-width"), 1, store_float("sample_y", 1e-3)),
    Branch(substring("-xtal_heigh", "-xtal_z", "-heigh"), 1, store_float("sample_z", 1e-3)),
    Branch(substring("-density", "-sample_den"), 1, store_float("density", 1e6)),
    Branch(lambda t: t == "-MW" or "-molec" in t, 1, store_float("molecular_weight")),
    Branch(substring("-Xbeam"), 1, store_float("Xbeam", 1e-3, pivot="BEAM")),
    Branch(substring("-Ybeam"), 1, store_float("Ybeam", 1e-3, pivot="BEAM")),
    Branch(substring("-Xclose"), 1, store_float("Xclose", 1e-3, pivot="SAMPLE")),
    Branch(substring("-Yclose"), 1, store_float("Yclose", 1e-3, pivot="SAMPLE")),
    Branch(substring("-ORGX"), 1, store_float("ORGX", 1.0, pivot="SAMPLE")),
    Branch(substring("-ORGY"), 1, store_float("ORGY", 1.0, pivot="SAMPLE")),
    Branch(substring("-pivot"), 1, _pivot),
    Branch(substring("-mosflm"), 0, store_constants(convention="MOSFLM", pivot="BEAM")),
    Branch(substring("-xds"), 0, store_constants(convention="XDS", pivot="SAMPLE")),
    Branch(substring("-adxv"), 0, store_constants(convention="ADXV", pivot="BEAM")),
    Branch(substring("-denzo"), 0, store_constants(convention="DENZO", pivot="BEAM")),
    Branch(substring("-dials"), 0, store_constants(convention="DIALS", pivot="BEAM")),
    Branch(substring("-fdet_vector"), 3, store_vector("fdet_vector")),
    Branch(substring("-sdet_vector"), 3, store_vector("sdet_vector")),
    Branch(substring("-odet_vector"), 3, store_vector("odet_vector")),
    Branch(substring("-beam_vector"), 3, store_vector("beam_vector")),
    Branch(substring("-polar_vector"), 3, store_vector("polar_vector")),
    Branch(substring("-spindle_axis"), 3, store_vector("spindle_axis")),
    Branch(substring("-twotheta_axis"), 3, store_vector("twotheta_axis")),
    Branch(substring("-pix0_vector"), 3, _pix0),
    Branch(substring("-distance"), 1, store_float("distance", 1e-3, pivot="BEAM")),
    Branch(substring("-close_distance"), 1, store_float("close_distance", 1e-3, pivot="SAMPLE")),
    Branch(substring("-detector_abs"), 1, _detector_abs),
    Branch(exact("-detector_thick"), 1, store_float("detector_thick", 1e-6)),
    Branch(substring("-detector_thicksteps"), 1, store_int("detector_thicksteps")),
    Branch(substring("-thicksteps"), 1, store_int("detector_thicksteps")),
    Branch(substring("-twotheta"), 1, store_angle("twotheta", pivot="SAMPLE")),
    Branch(substring("-detector_rotx"), 1, store_angle("detector_rotx")),
    Branch(substring("-detector_roty"), 1, store_angle("detector_roty")),
    Branch(substring("-detector_rotz"), 1, store_angle("detector_rotz")),
    Branch(exact("-detsize"), 1, lambda st, t, v: st.update(
        detsize_f=parse_float(t, v[0]) / 1000.0, detsize_s=parse_float(t, v[0]) / 1000.0)),
    Branch(substring("-detsize_f"), 1, store_float("detsize_f", 1e-3)),
    Branch(substring("-detsize_s"), 1, store_float("detsize_s", 1e-3)),
    Branch(exact("-detpixels"), 1, store_int("fpixels", "spixels")),
    Branch(substring("-detpixels_f", "-detpixels_x"), 1, store_int("fpixels")),
    Branch(substring("-detpixels_s", "-detpixels_y"), 1, store_int("spixels")),
    Branch(substring("-curved_det"), 1, _curved, consumes=0),
    Branch(substring("-pixel"), 1, store_float("pixel_size", 1e-3)),
    Branch(substring("-point_pixel"), 0, store_constants(point_pixel=True)),
    Branch(exact("-polar"), 1, store_float("polarization", 1.0, nopolar=False)),
    Branch(substring("-nopolar"), 0, store_constants(nopolar=True)),
    Branch(substring("-oversample_thick"), 0, store_constants(oversample_thick=True), stop=True),
    Branch(substring("-oversample_polar"), 0, store_constants(oversample_polar=True), stop=True),
    Branch(substring("-oversample_omega"), 0, store_constants(oversample_omega=True), stop=True),
    Branch(substring("-oversample"), 1, store_int("oversample")),
    Branch(substring("-roi"), 4, _roi),
    Branch(substring("-lambda", "-wave"), 1, store_float("lambda0", 1e-10)),
    Branch(substring("-energy"), 1, _energy),
    Branch(substring("-fluence"), 1, store_float("fluence")),
    Branch(substring("-flux"), 1, store_float("flux")),
    Branch(substring("-exposure"), 1, store_float("exposure")),
    Branch(substring("-beamsize"), 1, store_float("beamsize", 1e-3)),
    Branch(lambda t: t == "-mosaic" or "-mosaici" in t or "-mosaic_spr" in t, 1, store_angle("mosaic_spread")),
    Branch(substring("-mosaic_dom"), 1, store_int("mosaic_domains")),
    Branch(substring("-dispersion"), 1, store_float("dispersion", 0.01)),
    Branch(substring("-dispsteps"), 1, store_int("dispsteps")),
    Branch(substring("-divergence"), 1, lambda st, t, v: st.update(
        hdivrange=parse_float(t, v[0]) / 1000.0, vdivrange=parse_float(t, v[0]) / 1000.0)),
    Branch(substring("-hdivrange"), 1, store_float("hdivrange", 1e-3)),
    Branch(substring("-vdivrange"), 1, store_float("vdivrange", 1e-3)),
    Branch(exact("-hdivstep"), 1, store_float("hdivstep", 1e-3)),
    Branch(substring("-hdivsteps"), 1, store_int("hdivsteps")),
    Branch(exact("-vdivstep"), 1, store_float("vdivstep", 1e-3)),
    Branch(substring("-vdivsteps"), 1, store_int("vdivsteps")),
    Branch(substring("-divsteps"), 1, store_int("hdivsteps", "vdivsteps")),
    Branch(substring("-round_div"), 0, store_constants(round_div=True)),
    Branch(substring("-square_div"), 0, store_constants(round_div=False)),
    Branch(substring("-adc"), 1, store_float("adc_offset")),
    Branch(exact("-phi"), 1, store_angle("phi0")),
    Branch(substring("-osc"), 1, store_angle("osc")),
    Branch(exact("-phistep"), 1, store_angle("phistep")),
    Branch(substring("-phisteps"), 1, store_int("phisteps")),
    Branch(substring("-dmin"), 1, store_float("dmin", 1e-10)),
    Branch(substring("-mat"), 1, store_text("mat_file")),
    Branch(substring("-hkl"), 1, store_text("hkl_file")),
    Branch(substring("-default_F"), 1, store_float("default_F")),
    Branch(substring("-img"), 1, store_text("img_file")),
    Branch(substring("-mask"), 1, store_text("mask_file")),   # the C reads it in its pre-pass only
    Branch(lambda t: "-stolout" in t and len(t) > 7, 1, store_text("stolout_file")),
    Branch(exact("-stol"), 1, _stol(1e10)),
    Branch(exact("-4stol"), 1, _stol(1e10 / 4)),
    Branch(exact("-Q"), 1, _stol(1e10 / math.pi / 4)),
    Branch(substring("-sourcefile"), 1, store_text("sourcefile")),
    Branch(substring("-floatfile", "-floatimage"), 1, store_text("floatfile")),
    Branch(substring("-intfile", "-intimage"), 1, store_text("intfile")),
    Branch(substring("-pgmfile", "-pgmimage"), 1, store_text("pgmfile", write_pgm=True)),
    Branch(substring("-noisefile", "-noiseimage"), 1, store_text("noisefile", calculate_noise=True)),
    Branch(substring("-nonoise"), 0, store_constants(calculate_noise=False)),
    Branch(substring("-nopgm"), 0, store_constants(write_pgm=False)),
    Branch(substring("-scale"), 1, store_float("intfile_scale")),
    Branch(substring("-pgmscale"), 1, store_float("pgm_scale", 1.0, write_pgm=True)),
    Branch(substring("-coherent"), 0, store_constants(coherent=True)),
    Branch(substring("-printout"), 0, store_constants(printout=True)),
    Branch(substring("-noprogress"), 0, store_constants(progress=False)),
    Branch(substring("-progress"), 0, store_constants(progress=True)),
    Branch(substring("-interpolate"), 0, store_constants(interpolate=True)),
    Branch(substring("-nointerpolate"), 0, store_constants(interpolate=False)),
    Branch(substring("-round_xtal"), 0, store_constants(xtal_shape="round")),
    Branch(substring("-square_xtal"), 0, store_constants(xtal_shape="square")),
    Branch(substring("-gauss_xtal"), 0, store_constants(xtal_shape="gauss")),
    Branch(substring("-binary_spots", "-tophat_spots"), 0, store_constants(xtal_shape="tophat")),
    Branch(substring("-fudge"), 1, store_float("fudge")),
    Branch(substring("-printout_pixel"), 2, _printout_pixel),
    Branch(substring("-trace_pixel", "-dump_pixel"), 2, _trace_pixel),
    Branch(substring("-seed"), 1, _seed("seed")),
    Branch(substring("-mosaic_seed"), 1, _seed("mosaic_seed")),
    Branch(substring("-misset_seed"), 1, _seed("misset_seed")),
    Branch(substring("-water"), 1, store_float("water_size", 1e-6)),
)


