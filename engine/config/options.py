"""The parsed command line: every nanoBragg flag as one typed, frozen object.

Values are stored the way the C stores them right after parsing: SI units (metres, radians,
metres^-1), seeds negated, and the C's sentinels for "not given" (``None`` where the C uses NaN,
``-1`` where the C uses -1). Nothing here is resolved yet: conventions, pivots, automatic step
counts and the like are applied by ``engine.config.setup``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

Vec3 = tuple[float, float, float]


class UsageError(ValueError):
    """A command line the engine refuses: unknown flag, missing or malformed value."""


#: Default fluence of the C, photons/m^2.
DEFAULT_FLUENCE = 125932015286227086360700780544.0


@dataclass(frozen=True)
class Options:
    # --- our own long options (not C flags) ---
    mode: Optional[str] = None           # "spec" | "c-parity"; None: the caller decides
    device: Optional[str] = None
    dtype: Optional[str] = None          # "float64" | "float32"
    c_threads: Optional[int] = None

    # --- SMV inputs (found by the C's pre-pass, read before everything else) ---
    img_file: Optional[str] = None
    mask_file: Optional[str] = None

    # --- detector ---
    pixel_size: float = 0.1e-3
    fpixels: int = 0
    spixels: int = 0
    detsize_f: float = 102.4e-3
    detsize_s: float = 102.4e-3
    distance: float = 100.0e-3
    close_distance: Optional[float] = None
    detector_rotx: float = 0.0
    detector_roty: float = 0.0
    detector_rotz: float = 0.0
    twotheta: float = 0.0
    convention: str = "MOSFLM"
    pivot: str = "BEAM"
    fdet_vector: Vec3 = (0.0, 0.0, 1.0)
    sdet_vector: Vec3 = (0.0, -1.0, 0.0)
    odet_vector: Vec3 = (1.0, 0.0, 0.0)
    beam_vector: Vec3 = (1.0, 0.0, 0.0)
    polar_vector: Vec3 = (0.0, 0.0, 1.0)
    spindle_axis: Vec3 = (0.0, 0.0, 1.0)
    twotheta_axis: Vec3 = (0.0, 1.0, 0.0)   # the C's initial value, kept only by CUSTOM
    pix0_vector: Optional[Vec3] = None       # metres (the _mm form already converted)
    Xbeam: Optional[float] = None
    Ybeam: Optional[float] = None
    Xclose: Optional[float] = None
    Yclose: Optional[float] = None
    ORGX: Optional[float] = None             # pixels
    ORGY: Optional[float] = None
    curved_det: bool = False
    point_pixel: bool = False
    roi: tuple[int, int, int, int] = (-1, -1, -1, -1)   # xmin xmax ymin ymax (fast, slow)
    detector_mu: float = -1.0                # m^-1; <0: not given
    detector_thick: float = 0.0              # m
    detector_thickstep: float = -1.0
    detector_thicksteps: int = -1

    # --- beam ---
    lambda0: float = 1.0e-10
    dispersion: float = 0.0                  # fraction
    dispstep: float = -1.0
    dispsteps: int = -1
    hdivrange: float = -1.0                  # rad
    vdivrange: float = -1.0
    hdivstep: float = -1.0
    vdivstep: float = -1.0
    hdivsteps: int = -1
    vdivsteps: int = -1
    round_div: bool = True
    sourcefile: Optional[str] = None
    fluence: float = DEFAULT_FLUENCE
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 1e-4                   # m
    polarization: float = 0.0                # Kahn factor (the C's real default is 0)
    nopolar: bool = False
    coherent: bool = False

    # --- crystal ---
    #: (a, b, c) in Å and (alpha, beta, gamma) in rad; 0 where not given (the C's defaults).
    cell: Optional[tuple[float, float, float, float, float, float]] = None
    mat_file: Optional[str] = None
    misset: Optional[Vec3] = None            # rad
    misset_random: bool = False
    Na: float = 1.0
    Nb: float = 1.0
    Nc: float = 1.0
    sample_x: float = 0.0                    # m
    sample_y: float = 0.0
    sample_z: float = 0.0
    density: float = 1.0e6
    molecular_weight: float = 18.0
    xtal_shape: str = "square"
    fudge: float = 1.0
    phi0: float = 0.0                        # rad
    osc: float = -1.0
    phistep: float = -1.0
    phisteps: int = -1
    mosaic_spread: float = -1.0              # rad
    mosaic_domains: int = -1
    mosaic_seed: int = -12345678             # as the C stores it (negated)
    misset_seed: Optional[int] = None        # negated; None: the C's wall-clock default

    # --- structure factors ---
    hkl_file: Optional[str] = None
    default_F: float = 0.0
    interpolate: Optional[bool] = None       # None: the C's automatic choice
    stol_file: Optional[str] = None
    stol_file_mult: float = 1.0e10
    stolout_file: Optional[str] = None

    # --- sampling and physics ---
    oversample: int = -1
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    dmin: float = 0.0                        # m
    water_size: float = 0.0                  # m

    # --- outputs, noise, console ---
    floatfile: str = "floatimage.bin"
    intfile: str = "intimage.img"
    pgmfile: str = "image.pgm"
    noisefile: str = "noiseimage.img"
    calculate_noise: bool = True
    write_pgm: bool = True
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    adc_offset: float = 40.0
    seed: Optional[int] = None               # negated; None: the C's wall-clock default
    printout: bool = False
    printout_pixel: tuple[int, int] = (-1, -1)   # (fast, slow), as the C takes them
    trace_pixel: Optional[tuple[int, int]] = None  # (slow, fast)
    progress: bool = True
    #: Flags the C accepts but that only warn here (e.g. -curved_det as the last token).
    notes: tuple[str, ...] = ()
