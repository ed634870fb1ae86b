"""The trace key catalog: one source of names, stages, value kinds and aliases.

The C's keys are the reference names. The engine emits from this catalog and the harness
aligns with it, so a key renamed here is renamed on both sides at once.

Line formats (the engine prints the same with ``TRACE_PY`` in place of ``TRACE_C``)::

    TRACE_C:key=value                 set-up (detector geometry), once per run
    TRACE_C: key v1 v2 v3             traced pixel, repeated per (layer, subpixel)
    TRACE_C_PHI phi_tic=0 phi_deg=..  one per φ step (source 0, mosaic domain 0)
    TRACE_C_SOURCE2: key value        per-source terms of source 2 (φ step 0, mosaic domain 0)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

#: Prefixes of the two programs' trace lines.
C_PREFIX = "TRACE_C"
PY_PREFIX = "TRACE_PY"

#: Dataflow stages, upstream first.
STAGES: tuple[str, ...] = (
    "detector",
    "pixel position",
    "scattering",
    "rotated cell",
    "hkl",
    "lattice factor",
    "phi",
    "F_cell",
    "intensity",
    "scaling",
    "image value",
)


@dataclass(frozen=True)
class TraceKey:
    """One trace key.

    kind: 'setup' (``TRACE_C:key=value``), 'pixel' (``TRACE_C: key v…``), 'phi' (a field of a
    ``TRACE_C_PHI`` line) or 'source' (``TRACE_C_SOURCE<n>: key v``, aligned by source index n). value: 'float', 'int', 'text', 'labelled' (``a:1 b:2``) or 'matrix'.
    """

    name: str
    stage: str
    kind: str
    value: str = "float"
    components: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    doc: str = ""


def _vec(name: str, stage: str, kind: str, alias: str = "", doc: str = "") -> TraceKey:
    return TraceKey(name, stage, kind, "float", ("x", "y", "z"), (alias,) if alias else (), doc)


def _scalar(name: str, stage: str, kind: str, alias: str = "", value: str = "float", doc: str = "") -> TraceKey:
    return TraceKey(name, stage, kind, value, (), (alias,) if alias else (), doc)


DETECTOR, PIXEL_POSITION = "detector", "pixel position"
KEYS: tuple[TraceKey, ...] = (
    # --- set-up, SAMPLE-pivot branch then common then BEAM-pivot branch (C program order) ---
    _scalar("detector_convention", DETECTOR, "setup", "convention", value="text"),
    TraceKey("angles_rad", DETECTOR, "setup", "labelled", ("rotx", "roty", "rotz", "twotheta"), ("angles",)),
    TraceKey("beam_center_m", DETECTOR, "setup", "labelled", (), ("beam_center",),
             "C prints metres/1000 for the first two values (units bug)"),
    _vec("initial_fdet", DETECTOR, "setup"),
    _vec("initial_sdet", DETECTOR, "setup"),
    _vec("initial_odet", DETECTOR, "setup"),
    _scalar("Fclose_m", DETECTOR, "setup", "Fclose"),
    _scalar("Sclose_m", DETECTOR, "setup", "Sclose"),
    _scalar("close_distance_m", DETECTOR, "setup"),
    _scalar("ratio", DETECTOR, "setup"),
    _scalar("distance_m", DETECTOR, "setup", "distance"),
    _vec("term_fast_before_rot", DETECTOR, "setup"),
    _vec("term_slow_before_rot", DETECTOR, "setup"),
    _vec("term_close_before_rot", DETECTOR, "setup"),
    _vec("pix0_before_rotation", DETECTOR, "setup"),
    _vec("pix0_after_rotz", DETECTOR, "setup"),
    _vec("pix0_after_twotheta", DETECTOR, "setup"),
    _vec("fdet_after_rotz", DETECTOR, "setup"),
    _vec("sdet_after_rotz", DETECTOR, "setup"),
    _vec("odet_after_rotz", DETECTOR, "setup"),
    _vec("twotheta_axis", DETECTOR, "setup"),
    _vec("fdet_after_twotheta", DETECTOR, "setup"),
    _vec("sdet_after_twotheta", DETECTOR, "setup"),
    _vec("odet_after_twotheta", DETECTOR, "setup"),
    TraceKey("Rx", DETECTOR, "setup", "matrix"),
    TraceKey("Ry", DETECTOR, "setup", "matrix"),
    TraceKey("Rz", DETECTOR, "setup", "matrix"),
    TraceKey("R_total", DETECTOR, "setup", "matrix"),
    _scalar("convention_mapping", DETECTOR, "setup", value="text"),
    _scalar("Fbeam_m", DETECTOR, "setup", "Fbeam"),
    _scalar("Sbeam_m", DETECTOR, "setup", "Sbeam"),
    _vec("term_fast", DETECTOR, "setup"),
    _vec("term_slow", DETECTOR, "setup"),
    _vec("term_beam", DETECTOR, "setup"),
    _vec("pix0_vector", DETECTOR, "setup"),
    # --- traced pixel ---
    _vec("pix0_vector_meters", DETECTOR, "pixel", "pix0"),
    _vec("fdet_vec", DETECTOR, "pixel", "fdet"),
    _vec("sdet_vec", DETECTOR, "pixel", "sdet"),
    _vec("pixel_pos_meters", PIXEL_POSITION, "pixel", "pixel_pos"),
    _scalar("R_distance_meters", PIXEL_POSITION, "pixel", "R"),
    _scalar("omega_pixel_sr", PIXEL_POSITION, "pixel", "omega_sr"),
    _scalar("close_distance_meters", PIXEL_POSITION, "pixel", "close_distance"),
    _scalar("obliquity_factor", PIXEL_POSITION, "pixel", "obliquity"),
    _vec("diffracted_vec", "scattering", "pixel", "diffracted"),
    _vec("incident_vec", "scattering", "pixel", "incident"),
    _scalar("lambda_meters", "scattering", "pixel", "lambda"),
    _scalar("lambda_angstroms", "scattering", "pixel", "lambda_A"),
    _vec("scattering_vec_A_inv", "scattering", "pixel", "q", doc="values are in m^-1 despite the name"),
    _vec("rot_a_angstroms", "rotated cell", "pixel", "rot_a"),
    _vec("rot_b_angstroms", "rotated cell", "pixel", "rot_b"),
    _vec("rot_c_angstroms", "rotated cell", "pixel", "rot_c"),
    _vec("rot_a_star_A_inv", "rotated cell", "pixel", "rot_a_star", doc="static, not rotated (C label bug)"),
    _vec("rot_b_star_A_inv", "rotated cell", "pixel", "rot_b_star", doc="static, not rotated (C label bug)"),
    _vec("rot_c_star_A_inv", "rotated cell", "pixel", "rot_c_star", doc="static, not rotated (C label bug)"),
    TraceKey("hkl_frac", "hkl", "pixel", "float", ("h", "k", "l"), ("hkl",)),
    TraceKey("hkl_rounded", "hkl", "pixel", "int", ("h", "k", "l"), ("hkl0",)),
    _scalar("F_latt_a", "lattice factor", "pixel"),
    _scalar("F_latt_b", "lattice factor", "pixel"),
    _scalar("F_latt_c", "lattice factor", "pixel"),
    _scalar("F_latt", "lattice factor", "pixel"),
    # --- per-φ lines (TRACE_C_PHI), aligned by phi_tic ---
    _scalar("phi_deg", "phi", "phi"),
    _scalar("k_frac", "phi", "phi"),
    _scalar("F_latt_b", "phi", "phi"),
    _scalar("F_latt", "phi", "phi"),
    _scalar("F_cell", "F_cell", "pixel"),
    # --- once per pixel, after all loops ---
    _scalar("I_before_scaling", "intensity", "pixel", "I_raw"),
    _scalar("r_e_meters", "scaling", "pixel", "r_e"),
    _scalar("r_e_sqr", "scaling", "pixel"),
    _scalar("fluence_photons_per_m2", "scaling", "pixel", "fluence"),
    _scalar("steps", "scaling", "pixel", value="int"),
    _scalar("oversample_thick", "scaling", "pixel", value="int"),
    _scalar("oversample_polar", "scaling", "pixel", value="int"),
    _scalar("oversample_omega", "scaling", "pixel", value="int"),
    _scalar("capture_fraction", "scaling", "pixel", "capture"),
    _scalar("polar", "scaling", "pixel", "polarization"),
    _scalar("omega_pixel", "scaling", "pixel", "omega"),
    _scalar("cos_2theta", "scaling", "pixel", "cos2theta"),
    _scalar("I_pixel_final", "image value", "pixel", "I_final"),
    _scalar("floatimage_accumulated", "image value", "pixel", "pixel_value"),
    # --- per-source lines (TRACE_C_SOURCE<n>), aligned by source index, after that term's F_cell ---
    _scalar("lambda_angstroms", "scattering", "source"),
    _scalar("source_index", "scattering", "source", value="int"),
    _scalar("F_latt", "lattice factor", "source"),
    _scalar("F_latt_squared", "lattice factor", "source"),
    _scalar("F_cell", "F_cell", "source"),
    _scalar("F_cell_squared", "F_cell", "source"),
    _scalar("I_contribution", "intensity", "source", doc="F_cell² F_latt² of that one term"),
    _scalar("polar", "scaling", "source", doc="the cached factor (that term's own with -oversample_polar)"),
    _scalar("cos2theta", "scaling", "source"),
)

#: Fields of a TRACE_C_PHI line, in the C's order (phi_tic is the alignment index).
PHI_FIELDS: tuple[str, ...] = ("phi_deg", "k_frac", "F_latt_b", "F_latt")

#: Fields of a TRACE_C_SOURCE<n> line, in the C's order.
SOURCE_FIELDS: tuple[str, ...] = ("F_cell", "F_latt", "F_cell_squared", "F_latt_squared", "I_contribution",
                                  "polar", "cos2theta", "lambda_angstroms", "source_index")
#: The one source index the instrumented C traces per-source lines for.
TRACED_SOURCE = 2

#: Component aliases: short name → (key, component index); k_frac also names the φ-line field.
COMPONENT_ALIASES: dict[str, tuple[str, int]] = {
    "h_frac": ("hkl_frac", 0),
    "k_frac": ("hkl_frac", 1),
    "l_frac": ("hkl_frac", 2),
    "h0": ("hkl_rounded", 0),
    "k0": ("hkl_rounded", 1),
    "l0": ("hkl_rounded", 2),
}


def keys_of_kind(kind: str) -> tuple[TraceKey, ...]:
    return tuple(k for k in KEYS if k.kind == kind)


def pixel_key_order() -> tuple[str, ...]:
    """Names of the per-pixel keys in dataflow order."""
    return tuple(k.name for k in KEYS if k.kind == "pixel")


def format_number(v: float | int) -> str:
    """Format like the C's ``%.15g`` (ints as ``%d``)."""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    return "%.15g" % v


def format_pixel_line(key: str, values: Iterable[float | int], prefix: str = PY_PREFIX) -> str:
    return f"{prefix}: {key} " + " ".join(format_number(v) for v in values)


def format_setup_line(key: str, text: str, prefix: str = PY_PREFIX) -> str:
    return f"{prefix}:{key}={text}"


def format_phi_line(phi_tic: int, phi_deg: float, k_frac: float, F_latt_b: float, F_latt: float,
                    prefix: str = PY_PREFIX) -> str:
    return (f"{prefix}_PHI phi_tic={phi_tic} phi_deg={format_number(phi_deg)} "
            f"k_frac={format_number(k_frac)} F_latt_b={format_number(F_latt_b)} "
            f"F_latt={format_number(F_latt)}")


def format_source_line(source: int, key: str, value: float | int, prefix: str = PY_PREFIX) -> str:
    return f"{prefix}_SOURCE{source}: {key} {format_number(value)}"


@dataclass
class TraceRecorder:
    """Collects trace lines for the traced pixel; physics code hands it values, never prints."""

    prefix: str = PY_PREFIX
    lines: list[str] = field(default_factory=list)

    def setup(self, key: str, text: str) -> None:
        self.lines.append(format_setup_line(key, text, self.prefix))

    def setup_vec(self, key: str, values: Sequence[float]) -> None:
        self.setup(key, " ".join(format_number(float(v)) for v in values))

    def pixel(self, key: str, *values: float | int) -> None:
        self.lines.append(format_pixel_line(key, values, self.prefix))

    def phi(self, phi_tic: int, phi_deg: float, k_frac: float, F_latt_b: float, F_latt: float) -> None:
        self.lines.append(format_phi_line(phi_tic, phi_deg, k_frac, F_latt_b, F_latt, self.prefix))

    def source(self, source: int, key: str, value: float | int) -> None:
        self.lines.append(format_source_line(source, key, value, self.prefix))

    def text(self) -> str:
        return "\n".join(self.lines) + ("\n" if self.lines else "")
