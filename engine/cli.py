"""Command line with the C's semantics, and the console entry point.

The C tests every argv token that starts with ``-`` against every flag pattern by substring
(``strstr``), lets one token fire several branches, never skips value tokens, and lets the last
occurrence win. ``parse_argv`` reproduces exactly that, so that ``-twotheta_axis`` also sets
two-theta, ``-pix0_vector_mm`` is caught by ``-pix0_vector`` and ``-wavelength`` acts as
``-wave``. Where the C silently ignores a token (unknown flag, stray word, missing or malformed
value) we stop with a one-line ``UsageError`` instead.
"""
from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

from engine.config.options import Options, UsageError

DEG = math.pi / 180.0

#: Our own long options (not C flags): name → canonical field.
LONG_OPTIONS = {"--mode": "mode", "--phi-mode": "mode", "--c-defects": "defects", "--device": "device",
                "--dtype": "dtype", "--c-threads": "c_threads"}
MODES = ("spec", "c-parity")
DTYPES = ("float64", "float32")

_FLOAT_RE = re.compile(r"^\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf(inity)?|nan)\s*$", re.IGNORECASE)
_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")


def _float(flag: str, text: str) -> float:
    if not _FLOAT_RE.match(text):
        raise UsageError(f"{flag}: expected a number, got {text!r}")
    return float(text)


def _int(flag: str, text: str) -> int:
    if not _INT_RE.match(text):
        raise UsageError(f"{flag}: expected an integer, got {text!r}")
    return int(text)


def _vec(flag: str, vals: Sequence[str]) -> tuple[float, float, float]:
    return (_float(flag, vals[0]), _float(flag, vals[1]), _float(flag, vals[2]))


# ---------------------------------------------------------------------------------------------
# Matching predicates, mirroring the C's tests on one token.
def _sub(*patterns: str) -> Callable[[str], bool]:
    return lambda tok: any(p in tok for p in patterns)


def _exact(pattern: str) -> Callable[[str], bool]:
    return lambda tok: tok == pattern


@dataclass(frozen=True)
class _Branch:
    """One ``if`` of the C's option loop."""

    match: Callable[[str], bool]
    nvals: int                      # values the C requires to follow (argc > i+nvals)
    apply: Callable[[dict, str, list[str]], Optional[int]]   # returns values consumed if not nvals
    stop: bool = False              # the C's `continue`: no later branch sees this token
    consumes: Optional[int] = None  # values consumed when different from nvals (-curved_det: 0)


def _set(**fields):
    """Branch action that stores constants."""
    def apply(st, tok, vals):
        st.update(fields)
    return apply


def _setf(field: str, scale: float = 1.0, **extra):
    def apply(st, tok, vals):
        st[field] = _float(tok, vals[0]) * scale
        st.update(extra)
    return apply


def _seti(field: str, *more: str, negate: bool = False):
    def apply(st, tok, vals):
        v = _int(tok, vals[0])
        for f in (field, *more):
            st[f] = -v if negate else v
    return apply


def _sets(field: str, **extra):
    def apply(st, tok, vals):
        st[field] = vals[0]
        st.update(extra)
    return apply


def _setv(field: str, custom: bool = True):
    def apply(st, tok, vals):
        st[field] = _vec(tok, vals)
        if custom:
            st["convention"] = "CUSTOM"
    return apply


def _cell(st, tok, vals):
    # The C reads up to six numbers and stops at the first token that starts with '-'.
    given = []
    for v in vals[:6]:
        if v.startswith("-"):
            break
        given.append(_float(tok, v))
    if not given:
        raise UsageError(f"{tok}: give the cell as a [b c [alpha beta gamma]] (Å, degrees)")
    a, b, c, al, be, ga = (given + [0.0] * 6)[:6]
    st["cell"] = (a, b, c, al * DEG, be * DEG, ga * DEG)
    return len(given)


def _misset_random(st, tok, vals):
    st["misset_random"] = True


def _misset_angles(st, tok, vals):
    st["misset"] = tuple(_float(tok, v) * DEG for v in vals[:3])
    st["misset_random"] = False


def _pix0(st, tok, vals):
    v = _vec(tok, vals)
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
    if "inf" in vals[0] or _float(tok, vals[0]) == 0.0:
        st["detector_thick"] = 0.0
        st["detector_mu"] = 0.0
    else:
        st["detector_mu"] = 1.0 / (_float(tok, vals[0]) * 1e-6)


def _roi(st, tok, vals):
    st["roi"] = tuple(_int(tok, v) for v in vals[:4])


def _printout_pixel(st, tok, vals):
    st["printout_pixel"] = (_int(tok, vals[0]), _int(tok, vals[1]))


def _trace_pixel(st, tok, vals):
    st["trace_pixel"] = (_int(tok, vals[0]), _int(tok, vals[1]))


def _energy(st, tok, vals):
    e = _float(tok, vals[0])
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
        st[field] = -_int(tok, vals[0])
    return apply


def _curved(st, tok, vals):
    st["curved_det"] = True


_B = _Branch
#: `-misset random`: fires only when the next token contains "rand" (checked in parse_argv).
_MISSET_RANDOM = _B(_exact("-misset"), 1, _misset_random, stop=True)
#: The C's option branches, in its order (instrumented nanoBragg.c main option loop).
BRANCHES: tuple[_Branch, ...] = (
    _B(_sub("-Na"), 1, _seti("Na"), stop=True),
    _B(_sub("-Nb"), 1, _seti("Nb"), stop=True),
    _B(_sub("-Nc"), 1, _seti("Nc"), stop=True),
    _B(_exact("-N"), 1, _seti("Na", "Nb", "Nc"), stop=True),
    _B(_sub("-cell"), 1, _cell),
    _MISSET_RANDOM,
    _B(_exact("-misset"), 3, _misset_angles),
    _B(_sub("-samplesize", "-sample_size"), 1, lambda st, t, v: st.update(
        sample_x=_float(t, v[0]) / 1000, sample_y=_float(t, v[0]) / 1000, sample_z=_float(t, v[0]) / 1000)),
    _B(_sub("-sample_thick", "-sample_x"), 1, _setf("sample_x", 1e-3)),
    _B(_sub("-sample_width", "-sample_y", "-width"), 1, _setf("sample_y", 1e-3)),
    _B(_sub("-sample_heigh", "-sample_z", "-heigh"), 1, _setf("sample_z", 1e-3)),
    _B(_sub("-xtalsize", "-xtal_size"), 1, lambda st, t, v: st.update(
        sample_x=_float(t, v[0]) / 1000, sample_y=_float(t, v[0]) / 1000, sample_z=_float(t, v[0]) / 1000)),
    _B(_sub("-xtal_thick", "-xtal_x"), 1, _setf("sample_x", 1e-3)),
    _B(_sub("-xtal_width", "-xtal_y", "-width"), 1, _setf("sample_y", 1e-3)),
    _B(_sub("-xtal_heigh", "-xtal_z", "-heigh"), 1, _setf("sample_z", 1e-3)),
    _B(_sub("-density", "-sample_den"), 1, _setf("density", 1e6)),
    _B(lambda t: t == "-MW" or "-molec" in t, 1, _setf("molecular_weight")),
    _B(_sub("-Xbeam"), 1, _setf("Xbeam", 1e-3, pivot="BEAM")),
    _B(_sub("-Ybeam"), 1, _setf("Ybeam", 1e-3, pivot="BEAM")),
    _B(_sub("-Xclose"), 1, _setf("Xclose", 1e-3, pivot="SAMPLE")),
    _B(_sub("-Yclose"), 1, _setf("Yclose", 1e-3, pivot="SAMPLE")),
    _B(_sub("-ORGX"), 1, _setf("ORGX", 1.0, pivot="SAMPLE")),
    _B(_sub("-ORGY"), 1, _setf("ORGY", 1.0, pivot="SAMPLE")),
    _B(_sub("-pivot"), 1, _pivot),
    _B(_sub("-mosflm"), 0, _set(convention="MOSFLM", pivot="BEAM")),
    _B(_sub("-xds"), 0, _set(convention="XDS", pivot="SAMPLE")),
    _B(_sub("-adxv"), 0, _set(convention="ADXV", pivot="BEAM")),
    _B(_sub("-denzo"), 0, _set(convention="DENZO", pivot="BEAM")),
    _B(_sub("-dials"), 0, _set(convention="DIALS", pivot="BEAM")),
    _B(_sub("-fdet_vector"), 3, _setv("fdet_vector")),
    _B(_sub("-sdet_vector"), 3, _setv("sdet_vector")),
    _B(_sub("-odet_vector"), 3, _setv("odet_vector")),
    _B(_sub("-beam_vector"), 3, _setv("beam_vector")),
    _B(_sub("-polar_vector"), 3, _setv("polar_vector")),
    _B(_sub("-spindle_axis"), 3, _setv("spindle_axis")),
    _B(_sub("-twotheta_axis"), 3, _setv("twotheta_axis")),
    _B(_sub("-pix0_vector"), 3, _pix0),
    _B(_sub("-distance"), 1, _setf("distance", 1e-3, pivot="BEAM")),
    _B(_sub("-close_distance"), 1, _setf("close_distance", 1e-3, pivot="SAMPLE")),
    _B(_sub("-detector_abs"), 1, _detector_abs),
    _B(_exact("-detector_thick"), 1, _setf("detector_thick", 1e-6)),
    _B(_sub("-detector_thicksteps"), 1, _seti("detector_thicksteps")),
    _B(_sub("-thicksteps"), 1, _seti("detector_thicksteps")),
    _B(_sub("-twotheta"), 1, _setf("twotheta", DEG, pivot="SAMPLE")),
    _B(_sub("-detector_rotx"), 1, _setf("detector_rotx", DEG)),
    _B(_sub("-detector_roty"), 1, _setf("detector_roty", DEG)),
    _B(_sub("-detector_rotz"), 1, _setf("detector_rotz", DEG)),
    _B(_exact("-detsize"), 1, lambda st, t, v: st.update(
        detsize_f=_float(t, v[0]) / 1000.0, detsize_s=_float(t, v[0]) / 1000.0)),
    _B(_sub("-detsize_f"), 1, _setf("detsize_f", 1e-3)),
    _B(_sub("-detsize_s"), 1, _setf("detsize_s", 1e-3)),
    _B(_exact("-detpixels"), 1, _seti("fpixels", "spixels")),
    _B(_sub("-detpixels_f", "-detpixels_x"), 1, _seti("fpixels")),
    _B(_sub("-detpixels_s", "-detpixels_y"), 1, _seti("spixels")),
    _B(_sub("-curved_det"), 1, _curved, consumes=0),
    _B(_sub("-pixel"), 1, _setf("pixel_size", 1e-3)),
    _B(_sub("-point_pixel"), 0, _set(point_pixel=True)),
    _B(_exact("-polar"), 1, _setf("polarization", 1.0, nopolar=False)),
    _B(_sub("-nopolar"), 0, _set(nopolar=True)),
    _B(_sub("-oversample_thick"), 0, _set(oversample_thick=True), stop=True),
    _B(_sub("-oversample_polar"), 0, _set(oversample_polar=True), stop=True),
    _B(_sub("-oversample_omega"), 0, _set(oversample_omega=True), stop=True),
    _B(_sub("-oversample"), 1, _seti("oversample")),
    _B(_sub("-roi"), 4, _roi),
    _B(_sub("-lambda", "-wave"), 1, _setf("lambda0", 1e-10)),
    _B(_sub("-energy"), 1, _energy),
    _B(_sub("-fluence"), 1, _setf("fluence")),
    _B(_sub("-flux"), 1, _setf("flux")),
    _B(_sub("-exposure"), 1, _setf("exposure")),
    _B(_sub("-beamsize"), 1, _setf("beamsize", 1e-3)),
    _B(lambda t: t == "-mosaic" or "-mosaici" in t or "-mosaic_spr" in t, 1, _setf("mosaic_spread", DEG)),
    _B(_sub("-mosaic_dom"), 1, _seti("mosaic_domains")),
    _B(_sub("-dispersion"), 1, _setf("dispersion", 0.01)),
    _B(_sub("-dispsteps"), 1, _seti("dispsteps")),
    _B(_sub("-divergence"), 1, lambda st, t, v: st.update(
        hdivrange=_float(t, v[0]) / 1000.0, vdivrange=_float(t, v[0]) / 1000.0)),
    _B(_sub("-hdivrange"), 1, _setf("hdivrange", 1e-3)),
    _B(_sub("-vdivrange"), 1, _setf("vdivrange", 1e-3)),
    _B(_exact("-hdivstep"), 1, _setf("hdivstep", 1e-3)),
    _B(_sub("-hdivsteps"), 1, _seti("hdivsteps")),
    _B(_exact("-vdivstep"), 1, _setf("vdivstep", 1e-3)),
    _B(_sub("-vdivsteps"), 1, _seti("vdivsteps")),
    _B(_sub("-divsteps"), 1, _seti("hdivsteps", "vdivsteps")),
    _B(_sub("-round_div"), 0, _set(round_div=True)),
    _B(_sub("-square_div"), 0, _set(round_div=False)),
    _B(_sub("-adc"), 1, _setf("adc_offset")),
    _B(_exact("-phi"), 1, _setf("phi0", DEG)),
    _B(_sub("-osc"), 1, _setf("osc", DEG)),
    _B(_exact("-phistep"), 1, _setf("phistep", DEG)),
    _B(_sub("-phisteps"), 1, _seti("phisteps")),
    _B(_sub("-dmin"), 1, _setf("dmin", 1e-10)),
    _B(_sub("-mat"), 1, _sets("mat_file")),
    _B(_sub("-hkl"), 1, _sets("hkl_file")),
    _B(_sub("-default_F"), 1, _setf("default_F")),
    _B(_sub("-img"), 1, _sets("img_file")),
    _B(_sub("-mask"), 1, _sets("mask_file")),   # the C reads it in its pre-pass only
    _B(lambda t: "-stolout" in t and len(t) > 7, 1, _sets("stolout_file")),
    _B(_exact("-stol"), 1, _stol(1e10)),
    _B(_exact("-4stol"), 1, _stol(1e10 / 4)),
    _B(_exact("-Q"), 1, _stol(1e10 / math.pi / 4)),
    _B(_sub("-sourcefile"), 1, _sets("sourcefile")),
    _B(_sub("-floatfile", "-floatimage"), 1, _sets("floatfile")),
    _B(_sub("-intfile", "-intimage"), 1, _sets("intfile")),
    _B(_sub("-pgmfile", "-pgmimage"), 1, _sets("pgmfile", write_pgm=True)),
    _B(_sub("-noisefile", "-noiseimage"), 1, _sets("noisefile", calculate_noise=True)),
    _B(_sub("-nonoise"), 0, _set(calculate_noise=False)),
    _B(_sub("-nopgm"), 0, _set(write_pgm=False)),
    _B(_sub("-scale"), 1, _setf("intfile_scale")),
    _B(_sub("-pgmscale"), 1, _setf("pgm_scale", 1.0, write_pgm=True)),
    _B(_sub("-coherent"), 0, _set(coherent=True)),
    _B(_sub("-printout"), 0, _set(printout=True)),
    _B(_sub("-noprogress"), 0, _set(progress=False)),
    _B(_sub("-progress"), 0, _set(progress=True)),
    _B(_sub("-interpolate"), 0, _set(interpolate=True)),
    _B(_sub("-nointerpolate"), 0, _set(interpolate=False)),
    _B(_sub("-round_xtal"), 0, _set(xtal_shape="round")),
    _B(_sub("-square_xtal"), 0, _set(xtal_shape="square")),
    _B(_sub("-gauss_xtal"), 0, _set(xtal_shape="gauss")),
    _B(_sub("-binary_spots", "-tophat_spots"), 0, _set(xtal_shape="tophat")),
    _B(_sub("-fudge"), 1, _setf("fudge")),
    _B(_sub("-printout_pixel"), 2, _printout_pixel),
    _B(_sub("-trace_pixel", "-dump_pixel"), 2, _trace_pixel),
    _B(_sub("-seed"), 1, _seed("seed")),
    _B(_sub("-mosaic_seed"), 1, _seed("mosaic_seed")),
    _B(_sub("-misset_seed"), 1, _seed("misset_seed")),
    _B(_sub("-water"), 1, _setf("water_size", 1e-6)),
)


def split_long_options(argv: Sequence[str]) -> tuple[list[str], dict[str, object]]:
    """Remove our ``--mode/--device/--dtype/--c-threads`` options; return (C argv, values)."""
    out: list[str] = []
    found: dict[str, object] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--"):
            name, eq, val = tok.partition("=")
            if name not in LONG_OPTIONS:
                raise UsageError(f"unknown option {name}; ours are {', '.join(sorted(LONG_OPTIONS))}")
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                val = argv[i + 1]
                i += 1
            field = LONG_OPTIONS[name]
            if field == "mode" and val not in MODES:
                raise UsageError(f"{name}: expected one of {', '.join(MODES)}, got {val!r}")
            if field == "dtype" and val not in DTYPES:
                raise UsageError(f"{name}: expected one of {', '.join(DTYPES)}, got {val!r}")
            if field == "defects":
                from engine.config.defects import parse_ids
                try:
                    val = parse_ids(val)
                except ValueError as exc:
                    raise UsageError(f"{name}: {exc}") from None
            if field == "c_threads":
                n = _int(name, val)
                if n < 1:
                    raise UsageError(f"{name}: expected a thread count >= 1, got {val!r}")
                val = n
            found[field] = val
        else:
            out.append(tok)
        i += 1
    return out, found


def find_smv_inputs(argv: Sequence[str]) -> tuple[Optional[str], Optional[str]]:
    """The C's pre-pass: (img file, mask file), last occurrence winning."""
    img = mask = None
    for i, tok in enumerate(argv):
        if tok.startswith("-") and i + 1 < len(argv):
            if "-img" in tok:
                img = argv[i + 1]
            if "-mask" in tok:
                mask = argv[i + 1]
    return img, mask


def apply_smv_header(state: dict, header: Mapping[str, str], *, is_mask: bool) -> None:
    """Header keys of an -img/-mask file as defaults, before argv (the C reads both headers first).

    The look-up rules (substring search, last hit wins, the mask's flipped BEAM_CENTER_Y) live in
    ``engine.io.smv.header_geometry``; TWOTHETA is ignored, as the C reads it into a scratch
    variable and never uses it.
    """
    from engine.io.smv import header_geometry

    geo = header_geometry(header, is_mask=is_mask, pixel_size=state["pixel_size"])
    geo.pop("twotheta", None)
    state.update(geo)
    # The C always re-derives the detector size from this header's pixel count and size.
    state["detsize_f"] = state["pixel_size"] * state["fpixels"]
    state["detsize_s"] = state["pixel_size"] * state["spixels"]


def parse_argv(argv: Sequence[str], *, headers: Sequence[tuple[str, Mapping[str, str]]] = ()) -> Options:
    """Parse a full argv (no program name) into ``Options`` with the C's matching rules.

    ``headers``: ``(kind, header)`` pairs for ``-mask``/``-img`` files, in the order the C reads
    them (mask first, then img); their values are defaults that argv then overrides.
    """
    c_argv, long_opts = split_long_options(argv)
    state = {f.name: f.default for f in dataclasses.fields(Options)}
    state.update(long_opts)
    for kind, header in headers:
        apply_smv_header(state, header, is_mask=(kind == "mask"))
    notes: list[str] = []
    consumed = [False] * len(c_argv)
    matched = [False] * len(c_argv)
    n = len(c_argv)
    for i, tok in enumerate(c_argv):
        if not tok.startswith("-"):
            continue
        for br in BRANCHES:
            if not br.match(tok):
                continue
            if br is _MISSET_RANDOM:
                if not (i + 1 < n and "rand" in c_argv[i + 1]):
                    continue
            matched[i] = True
            avail = n - i - 1
            if avail < br.nvals:
                if br.consumes == 0:   # -curved_det as the last token: the C ignores it
                    notes.append(f"{tok} is the last argument, so the C ignores it")
                    continue
                if consumed[i]:
                    continue            # a value token that merely looks like a flag
                raise UsageError(f"{tok} needs {br.nvals} value(s) after it")
            vals = list(c_argv[i + 1:i + 1 + max(br.nvals, 6 if br.apply is _cell else 0)])
            used = br.apply(state, tok, vals)
            used = br.consumes if br.consumes is not None else (used if used is not None else br.nvals)
            for j in range(i + 1, i + 1 + used):
                consumed[j] = True
            if br.stop:
                break
    for i, tok in enumerate(c_argv):
        if consumed[i] or matched[i]:
            continue
        if tok.startswith("-"):
            raise UsageError(f"unknown flag {tok}: not a nanoBragg option (check the spelling; "
                             "nanobragg-torch --help lists the common ones)")
        raise UsageError(f"unexpected argument {tok!r}: it follows no flag that takes a value")
    state["notes"] = tuple(notes)
    return Options(**state)


HELP = """\
usage: nanobragg-torch [nanoBragg flags ...] [--mode spec|c-parity] [--c-defects IDS]
                       [--device cpu|cuda] [--dtype float64|float32] [--c-threads N]

The PyTorch nanoBragg: takes the C program's flags with the C's meaning (e.g. -cell, -mat,
-hkl, -default_F, -N, -lambda, -distance, -detpixels, -pixel, -trace_pixel S F) and writes
the same outputs. Unlike the C, an unknown flag, a malformed value or a malformed input file
is an error.

outputs (as the C; relative names go into the current directory):
  -floatfile F    raw float32 image (default floatimage.bin)
  -intfile F      SMV image, always written (default intimage.img): floor(v*scale + adc + 0.5)
                  clipped to 0..65535; -scale S (default: 55000/max), -adc A (default 40)
  -pgmfile F      8-bit PGM (default image.pgm; -nopgm: none); -pgmscale S (default 250/(5*rmsd))
  -noisefile F    SMV image with Poisson noise (default noiseimage.img; -nonoise: none);
                  -seed N (default: the clock; the seed used is printed as 'seed: -N')
  of -nonoise/-noisefile and -nopgm/-pgmfile the last one given wins.

our options:
  --mode spec|c-parity   spec (default): the physics as intended. c-parity: reproduce every
                         registered defect of the C (see engine/config/defects.py). --phi-mode is a synonym.
  --c-defects IDS        comma-separated defect ids to reproduce instead (or all / none), e.g.
                         pix0-vector-ignored,phi0-stale-rotation
  --device DEV           torch device (default cpu)
  --dtype float64|float32  (default float64)
  --c-threads N          c-parity: reproduce a C run with N OpenMP threads (φ=0 carry-over)

exit status: 0 success, 2 bad command line or input file (one line on stderr naming the flag,
file and line), 3 the image has NaN or infinite pixels (nothing written), 9 an output file
cannot be written."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point: nanoBragg's argv plus our long options; returns the exit status."""
    from engine.io import InputFileError, OutputFileError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "-help"):
        print(HELP)
        return 0 if argv else 2
    from engine import api
    try:
        c_argv, long_opts = split_long_options(argv)
        parse_argv(c_argv)   # refuse bad input before doing any work
        result = api.run(c_argv, mode=long_opts.get("mode", "spec"), device=long_opts.get("device", "cpu"),
                         dtype=long_opts.get("dtype", "float64"), c_threads=long_opts.get("c_threads", 1),
                         defects=long_opts.get("defects"), check_finite=True)
    except UsageError as exc:
        print(f"nanobragg-torch: usage error: {exc}", file=sys.stderr)
        return 2
    except InputFileError as exc:
        print(f"nanobragg-torch: input error: {exc}", file=sys.stderr)
        return 2
    except api.NonFiniteImageError as exc:
        _write_stdout(exc.stdout)
        print(f"nanobragg-torch: error: {exc}", file=sys.stderr)
        return 3
    except OutputFileError as exc:
        print(f"nanobragg-torch: output error: {exc}", file=sys.stderr)
        return 9
    _write_stdout(getattr(result, "stdout", ""))
    return 0


def _write_stdout(out: str) -> None:
    if out:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
        sys.stdout.flush()
