"""Registry of verified defects of the C nanoBragg.

Spec mode computes what the physics says; c-parity mode reproduces each defect listed here.
The harness reads the same registry to label a spec-mode divergence that sits exactly where a
defect predicts as "known C defect" rather than "regression".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class CDefect:
    id: str
    title: str
    c_behaviour: str
    spec_behaviour: str
    c_parity: str
    #: Trace keys (catalog names) whose values the defect changes; 'phi:<field>@<tic>' names a
    #: TRACE_PHI field at one φ step, 'phi:<field>@zero' the steps where φ == 0, 'phi:<field>@any'
    #: every φ step.
    signature: tuple[str, ...]
    #: argv tokens (flags, or a value such as ``random``) one of which must be present for the
    #: defect to matter; empty: always.
    triggers: tuple[str, ...] = ()
    #: argv tokens whose presence rules the defect out (e.g. -nointerpolate).
    blockers: tuple[str, ...] = ()
    c_lines: str = ""


DEFECTS: tuple[CDefect, ...] = (
    CDefect(
        id="phi0-stale-rotation",
        title="φ = 0 reuses the previous rotation",
        c_behaviour=("At a φ step equal to 0 the C skips the spindle rotation and keeps ap/bp/cp from "
                     "the thread's previous evaluation (normally the last φ step of the previous "
                     "subpixel/pixel); only a thread's very first evaluation sees the unrotated cell."),
        spec_behaviour="φ = 0 means the unrotated (misset) cell.",
        c_parity=("Carry the last φ step's rotation into φ = 0 evaluations, restarting from the "
                  "unrotated cell at the first pixel of each thread's share of rows."),
        signature=("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms", "hkl_frac",
                   "hkl_rounded", "F_latt_a", "F_latt_b", "F_latt_c", "F_latt", "F_cell",
                   "phi:k_frac@zero", "phi:F_latt_b@zero", "phi:F_latt@zero",
                   "I_before_scaling", "I_pixel_final", "floatimage_accumulated"),
        c_lines="3044-3066 (firstprivate ap/bp/cp at 2788-2808)",
    ),
    CDefect(
        id="pix0-vector-ignored",
        title="-pix0_vector / -pix0_vector_mm values are ignored",
        c_behaviour=("The flag only switches the convention to CUSTOM; both pivot branches overwrite "
                     "pix0 from the beam centre, distance and basis. -pix0_vector_mm is caught by the "
                     "-pix0_vector branch with no mm→m conversion."),
        spec_behaviour="pix0 is the given vector (metres, or millimetres for -pix0_vector_mm).",
        c_parity="Parse the values, switch to CUSTOM, then discard them.",
        signature=("pix0_vector_meters", "pixel_pos_meters", "R_distance_meters", "omega_pixel_sr",
                   "close_distance_meters", "obliquity_factor", "diffracted_vec",
                   "scattering_vec_A_inv", "hkl_frac", "hkl_rounded", "F_latt_a", "F_latt_b",
                   "F_latt_c", "F_latt", "F_cell", "I_before_scaling", "polar", "omega_pixel",
                   "cos_2theta", "I_pixel_final", "floatimage_accumulated",
                   # a moved pixel changes the scattering vector at every φ step
                   "phi:k_frac@any", "phi:F_latt_b@any", "phi:F_latt@any"),
        triggers=("-pix0_vector", "-pix0_vector_mm"),
        c_lines="740-746, overwritten at 1778-1780 and 1900-1902",
    ),
    CDefect(
        id="oversample-running-sum",
        title="-oversample_thick/_polar/_omega multiply the running sum",
        c_behaviour=("With an -oversample_* flag the C multiplies the accumulated I (including I_bg) "
                     "by capture/polar/ω after every term, so early terms are scaled many times."),
        spec_behaviour="Each contribution is weighted once by its own factor and then added.",
        c_parity="Multiply the running sum, as the C does.",
        signature=("I_before_scaling", "I_pixel_final", "floatimage_accumulated"),
        triggers=("-oversample_thick", "-oversample_polar", "-oversample_omega"),
        c_lines="3364-3366",
    ),
    CDefect(
        id="misset-random-radian-cap",
        title="-misset random draws from a cap of 90 radians",
        c_behaviour=("-misset random calls the mosaic generator with a spread of 90 that is taken as "
                     "radians, so the orientation is not uniform over all rotations; the angles are "
                     "then recovered from the matrix and applied in X, Y, Z order."),
        spec_behaviour="A rotation drawn uniformly over SO(3) from the same seeded generator.",
        c_parity="Draw as the C does and apply the recovered angles.",
        signature=("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms", "rot_a_star_A_inv",
                   "rot_b_star_A_inv", "rot_c_star_A_inv", "hkl_frac", "hkl_rounded", "F_latt_a",
                   "F_latt_b", "F_latt_c", "F_latt", "F_cell", "phi:k_frac@any", "phi:F_latt_b@any",
                   "phi:F_latt@any", "I_before_scaling", "I_pixel_final", "floatimage_accumulated"),
        triggers=("random",),
        c_lines="2080-2093",
    ),
    CDefect(
        id="interpolate-oob-nearest",
        title="the first out-of-range tricubic lookup uses the nearest F",
        c_behaviour=("When the tricubic stencil leaves the grid, the C sets F to default_F, then clears "
                     "the shared interpolate flag and immediately runs the nearest-neighbour branch, so "
                     "that evaluation gets the nearest F and every later one is nearest-neighbour."),
        spec_behaviour="The out-of-range evaluation gets default_F, as the C's own comment intends.",
        c_parity="The first out-of-range evaluation takes the nearest F.",
        signature=("F_cell", "I_before_scaling", "I_pixel_final", "floatimage_accumulated"),
        # Interpolation needs structure factors from a file (it is forced off without them).
        triggers=("-hkl",),
        blockers=("-nointerpolate",),
        c_lines="3254-3273, 3320",
    ),
    CDefect(
        id="sourcefile-last-line-zero",
        title="a -sourcefile last line without newline reads missing columns as 0",
        c_behaviour=("When the last line of a source file has no trailing newline, its missing columns "
                     "are read as 0 (λ = 0) instead of the defaults."),
        spec_behaviour="Missing columns take their defaults on every line.",
        c_parity="Missing columns of an unterminated last line are 0.",
        signature=("incident_vec", "lambda_meters", "lambda_angstroms", "I_before_scaling",
                   "I_pixel_final", "floatimage_accumulated"),
        triggers=("-sourcefile",),
    ),
    CDefect(
        id="smv-header-overflow",
        title="SMV headers longer than 512 bytes overflow into the pixel data",
        c_behaviour=("The -intfile/-noisefile writer declares HEADER_BYTES=512 and pads to 512, but a "
                     "longer header (large detectors, long numbers, e.g. supervisor: 518 bytes) is "
                     "written whole, so the pixels start after byte 512 and readers see shifted data."),
        spec_behaviour="HEADER_BYTES grows to the next multiple of 512 and the header is padded to it.",
        c_parity="Write the long header unpadded, as the C does.",
        signature=(),
        triggers=("-intfile", "-intimage", "-noisefile", "-noiseimage"),
        c_lines="3548-3566, 3647-3665",
    ),
    CDefect(
        id="smv-no-byteswap",
        title="-mask / -img pixel data are read without byte swapping",
        c_behaviour="The C reads SMV pixel data in native byte order whatever BYTE_ORDER says.",
        spec_behaviour="BYTE_ORDER in the header is honoured.",
        c_parity="Read the pixels in the machine's native order.",
        signature=("I_pixel_final", "floatimage_accumulated"),
        triggers=("-mask", "-img"),
    ),
)

BY_ID: dict[str, CDefect] = {d.id: d for d in DEFECTS}
ALL_IDS: frozenset[str] = frozenset(BY_ID)


def for_mode(mode: str) -> frozenset[str]:
    """The defects a mode reproduces by default: all of them in c-parity, none in spec."""
    return ALL_IDS if str(getattr(mode, "value", mode)) == "c-parity" else frozenset()


def parse_ids(text: str | Iterable[str]) -> frozenset[str]:
    """``"id,id"`` (or ``all`` / ``none``) → a validated set of defect ids."""
    words = [w.strip() for w in (text.split(",") if isinstance(text, str) else text) if w.strip()]
    if words in (["all"], ["none"]):
        return ALL_IDS if words == ["all"] else frozenset()
    unknown = [w for w in words if w not in BY_ID]
    if unknown:
        raise ValueError(f"unknown C defect {', '.join(unknown)}; known: {', '.join(sorted(BY_ID))}, all, none")
    return frozenset(words)


def get(defect_id: str) -> CDefect:
    try:
        return BY_ID[defect_id]
    except KeyError:
        raise KeyError(f"unknown C defect {defect_id!r}; known: {', '.join(BY_ID)}") from None
