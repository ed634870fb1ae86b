"""The flag grammar of ``nbparity fuzz``, read off the engine's C option table.

Every flag, its arity and the kind of value it takes come from
``engine.config.c_flags.BRANCHES`` (the engine's one copy of the C's option loop); what this
module adds is knowledge the table does not hold: which family a flag belongs to and which
values are worth trying (edges first: Hypothesis shrinks towards the first value of a
``sampled_from``, so minimal cases come out with the plainest values).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from engine.config import c_flags

#: Flags the harness adds itself or that only change console output: never drawn.
NOT_DRAWN = frozenset({"floatfile", "trace_pixel", "printout_pixel", "printout", "progress", "stolout_file",
                       "stol_file", "intfile", "noisefile", "pgmfile", "calculate_noise", "write_pgm",
                       "fpixels", "spixels", "detsize_f", "detsize_s", "cell", "Na", "Nb", "Nc"})

#: Parse-state field -> flag family (what `--families` selects and what a minimal case's tags name).
FAMILY_OF_FIELD: dict[str, str] = {
    **dict.fromkeys(("distance", "close_distance", "pixel_size", "detector_rotx", "detector_roty",
                     "detector_rotz", "point_pixel"), "detector"),
    **dict.fromkeys(("twotheta", "twotheta_axis", "convention", "pivot"), "conventions"),
    **dict.fromkeys(("Xbeam", "Ybeam", "Xclose", "Yclose", "ORGX", "ORGY"), "beam-centre"),
    **dict.fromkeys(("fdet_vector", "sdet_vector", "odet_vector", "beam_vector", "polar_vector",
                     "pix0_vector"), "vectors"),
    "curved_det": "curved",
    **dict.fromkeys(("detector_thick", "detector_mu", "detector_thicksteps"), "thickness"),
    **dict.fromkeys(("oversample", "oversample_thick", "oversample_polar", "oversample_omega"), "oversample"),
    **dict.fromkeys(("mosaic_spread", "mosaic_domains", "mosaic_seed"), "mosaic"),
    **dict.fromkeys(("hdivrange", "vdivrange", "hdivstep", "vdivstep", "hdivsteps", "vdivsteps", "round_div"),
                    "divergence"),
    **dict.fromkeys(("dispersion", "dispsteps"), "dispersion"),
    "sourcefile": "sources",
    **dict.fromkeys(("lambda0", "fluence", "flux", "exposure", "beamsize", "polarization", "nopolar", "coherent"),
                    "beam"),
    **dict.fromkeys(("xtal_shape", "fudge"), "shapes"),
    "interpolate": "interpolation",
    "roi": "roi",
    "mask_file": "mask",
    "img_file": "img",
    **dict.fromkeys(("seed", "misset_seed", "misset", "misset_random"), "seed"),
    **dict.fromkeys(("phi0", "osc", "phistep", "phisteps", "spindle_axis"), "phi"),
    **dict.fromkeys(("sample_x", "sample_y", "sample_z", "density", "molecular_weight", "water_size"), "sample"),
    **dict.fromkeys(("hkl_file", "default_F", "dmin", "mat_file"), "structure"),
    **dict.fromkeys(("adc_offset", "intfile_scale", "pgm_scale"), "outputs"),
}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(FAMILY_OF_FIELD.values()))


@dataclass(frozen=True)
class Flag:
    """One drawable flag: the name that fires its branch, how many values follow, what they are."""

    name: str
    nvals: int
    kind: str      # switch | float | int | vector | file | choice | ints
    field: str
    family: str


def _closure_values(fn: Callable) -> list[object]:
    return [c.cell_contents for c in (fn.__closure__ or ())]


def _names(branch: c_flags.Branch) -> list[str]:
    """The flag spellings a branch's predicate tests, in its order (closure or lambda constants)."""
    out: list[str] = []
    for v in _closure_values(branch.match) + list(branch.match.__code__.co_consts):
        for s in (v if isinstance(v, tuple) else (v,)):
            if isinstance(s, str) and s.startswith("-") and branch.match(s):
                out.append(s)
    return out


def _field_and_kind(branch: c_flags.Branch) -> tuple[Optional[str], str]:
    """What a branch stores, read from its action (the table's store_* helpers and named actions)."""
    fn = branch.apply
    qual = fn.__qualname__
    cells = _closure_values(fn)
    field = next((c for c in cells if isinstance(c, str)), None)
    if qual.startswith("store_constants"):
        fields = next((c for c in cells if isinstance(c, dict)), {})
        return next(iter(fields), None), "switch"
    kinds = {"store_float": "float", "store_angle": "float", "store_int": "int", "store_text": "file", "store_vector": "vector",
             "_stol": "file", "_seed": "int"}
    for prefix, kind in kinds.items():
        if qual.startswith(prefix):
            return field, kind
    named = {"_pix0": ("pix0_vector", "vector"), "_pivot": ("pivot", "choice"), "_roi": ("roi", "ints"),
             "_misset_angles": ("misset", "vector"), "_misset_random": ("misset_random", "choice"),
             "_detector_abs": ("detector_mu", "float"), "_energy": ("lambda0", "energy"),
             "_curved": ("curved_det", "switch"), "_printout_pixel": ("printout_pixel", "ints"),
             "_trace_pixel": ("trace_pixel", "ints"), "read_cell": ("cell", "cell")}
    if fn.__name__ in named:
        return named[fn.__name__]
    if "sample_x" in fn.__code__.co_names or "sample_x" in str(fn.__code__.co_consts):
        return "sample_x", "float"
    if "hdivrange" in str(fn.__code__.co_consts):
        return "hdivrange", "float"
    return None, "float"


def flags() -> list[Flag]:
    """Every drawable flag of the option table, one per branch (its first spelling that fires it)."""
    out: list[Flag] = []
    seen: set[str] = set()
    for br in c_flags.BRANCHES:
        names = _names(br)
        field, kind = _field_and_kind(br)
        if not names or field is None or field in NOT_DRAWN or field not in FAMILY_OF_FIELD:
            continue
        name = names[0]
        if name in seen:
            continue
        seen.add(name)
        nvals = br.consumes if br.consumes is not None else br.nvals
        out.append(Flag(name, nvals, kind, field, FAMILY_OF_FIELD[field]))
    return out


def flags_by_family(families: Optional[set[str]] = None) -> dict[str, list[Flag]]:
    """The drawable flags grouped by family (all families, or those named)."""
    out: dict[str, list[Flag]] = {}
    for f in flags():
        if families is None or f.family in families:
            out.setdefault(f.family, []).append(f)
    return out
