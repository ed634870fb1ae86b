"""Registry of verified defects of the C nanoBragg.

Spec mode computes what the physics says; c-parity mode reproduces each defect listed here.
The harness reads the same registry to label a spec-mode divergence that sits exactly where a
defect predicts as "known C defect" rather than "regression".
"""
from __future__ import annotations

from dataclasses import dataclass


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
    #: argv flags whose presence is needed for the defect to matter (any of them); empty: always.
    triggers: tuple[str, ...] = ()
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
)

BY_ID: dict[str, CDefect] = {d.id: d for d in DEFECTS}


def get(defect_id: str) -> CDefect:
    try:
        return BY_ID[defect_id]
    except KeyError:
        raise KeyError(f"unknown C defect {defect_id!r}; known: {', '.join(BY_ID)}") from None
