"""Frozen configuration objects: one per concern, all lengths in metres, angles in radians.

``SimulationSetup`` is the contract between the set-up stage (argv → resolved geometry,
crystal, beam, sampling; ``engine.config.setup``) and the rendering kernel (``engine.render``).
Everything the kernel needs is here, already resolved with the C's precedence rules, so the
kernel never looks at argv.

Tensors are float64 by default; ``SimulationSetup.to(device, dtype)`` moves every tensor.
Fields that are parameters of a differentiable run may carry ``requires_grad``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

import torch

from engine.config.defects import get as defect


class Mode(str, Enum):
    SPEC = "spec"
    C_PARITY = "c-parity"


class Shape(str, Enum):
    SQUARE = "square"
    ROUND = "round"
    GAUSS = "gauss"
    TOPHAT = "tophat"


def _move(obj, device, dtype):
    changes = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, torch.Tensor):
            changes[f.name] = v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            changes[f.name] = _move(v, device, dtype)
    return dataclasses.replace(obj, **changes)


@dataclass(frozen=True)
class DetectorConfig:
    """Resolved detector: the final (rotated) basis and pix0, as the C has them before the loop."""

    spixels: int
    fpixels: int
    pixel_size: float                  # m
    pix0: torch.Tensor                 # (3,) m, sample → corner of pixel (0,0)
    fdet: torch.Tensor                 # (3,) unit, fast axis
    sdet: torch.Tensor                 # (3,) unit, slow axis
    odet: torch.Tensor                 # (3,) unit, normal
    distance: float                    # m (final, = close_distance/ratio)
    close_distance: float              # m (used by the obliquity factor)
    roi: tuple[int, int, int, int]     # (fmin, fmax, smin, smax), inclusive pixel indices
    mask: Optional[torch.Tensor] = None  # (spixels, fpixels) bool, True = render
    oversample: int = 1
    thickness: float = 0.0             # m
    thicksteps: int = 1
    thickstep: float = 0.0             # m between layers
    mu: float = 0.0                    # m^-1 attenuation (detector_abs)
    curved: bool = False
    point_pixel: bool = False
    convention: str = "MOSFLM"
    pivot: str = "BEAM"
    #: Beam centre as given/defaulted (Xbeam, Ybeam) and as mapped onto the fast/slow axes after
    #: the rotations (Fbeam, Sbeam), metres; for headers and console output only.
    Xbeam: float = float("nan")
    Ybeam: float = float("nan")
    Fbeam: float = float("nan")
    Sbeam: float = float("nan")


@dataclass(frozen=True)
class BeamConfig:
    """Sources and beam-level physics factors."""

    incident: torch.Tensor             # (n_src, 3) unit propagation directions (= −unit(source pos))
    wavelengths: torch.Tensor          # (n_src,) m
    weights: torch.Tensor              # (n_src,) as read (the C ignores them when rendering)
    lambda0: float                     # m
    fluence: float                     # photons/m^2
    polarization_axis: torch.Tensor    # (3,) unit E-vector
    kahn_factor: float = 0.0
    nopolar: bool = False
    dmin: float = 0.0                  # m; 0 = no cut
    source_positions: Optional[torch.Tensor] = None  # (n_src, 3) as printed by the C
    #: (3,) unit beam direction as configured (-beam_vector / convention); the curved detector
    #: places its pixels along it. None: the kernel uses incident[0].
    beam_vector: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class CrystalConfig:
    """Crystal vectors after misset, in metres (real) and Å^-1 (static reciprocal, for traces)."""

    a0: torch.Tensor                   # (3,) m
    b0: torch.Tensor
    c0: torch.Tensor
    a_star: torch.Tensor               # (3,) Å^-1, static (not φ/mosaic rotated)
    b_star: torch.Tensor
    c_star: torch.Tensor
    Na: float
    Nb: float
    Nc: float
    shape: Shape = Shape.SQUARE
    fudge: float = 1.0
    spindle_axis: torch.Tensor = field(default_factory=lambda: torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    phi0: float = 0.0                  # rad
    phistep: float = 0.0               # rad
    phisteps: int = 1
    mosaic_spread: float = 0.0         # rad
    mosaic_umats: Optional[torch.Tensor] = None  # (n_mos, 3, 3); None = one identity domain


@dataclass(frozen=True)
class StructureFactors:
    """F on an integer grid [h_min..h_max] x [k_min..] x [l_min..]; default_F off-grid."""

    default_F: float = 0.0
    grid: Optional[torch.Tensor] = None  # (nh, nk, nl) float64, or None when no -hkl
    h_min: int = 0
    k_min: int = 0
    l_min: int = 0
    interpolate: bool = False


@dataclass(frozen=True)
class SamplingConfig:
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    water_I_bg: float = 0.0            # I_bg as the C computes it (already × r_e^2·fluence)


@dataclass(frozen=True)
class SimulationSetup:
    detector: DetectorConfig
    beam: BeamConfig
    crystal: CrystalConfig
    structure_factors: StructureFactors
    sampling: SamplingConfig
    mode: Mode = Mode.SPEC
    #: Registered C defects (engine.config.defects ids) this run reproduces; by default all of them in
    #: c-parity mode and none in spec mode. A reference built from a partly fixed C is matched by
    #: reproducing only the defects that build still has.
    defects: frozenset[str] = frozenset()
    c_threads: int = 1
    trace_pixel: Optional[tuple[int, int]] = None  # (slow, fast)
    #: TRACE_PY set-up lines and console lines produced while resolving the set-up.
    setup_trace: tuple[str, ...] = ()
    console: tuple[str, ...] = ()
    #: The parsed command line (engine.config.options.Options): output files, seeds, scales, …
    options: Optional[object] = None

    def reproduces(self, defect_id: str) -> bool:
        """Whether the C defect ``defect_id`` is reproduced (the id must be registered)."""
        return defect(defect_id).id in self.defects

    @property
    def steps(self) -> int:
        """sources × mosaic domains × φ steps × oversample² (thickness layers excluded, as in the C)."""
        n_mos = 1 if self.crystal.mosaic_umats is None else int(self.crystal.mosaic_umats.shape[0])
        return (int(self.beam.incident.shape[0]) * n_mos * self.crystal.phisteps
                * self.detector.oversample ** 2)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "SimulationSetup":
        dtype = dtype or torch.float64
        return _move(self, device, dtype)
