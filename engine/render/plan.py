"""``KernelPlan``: what every batch of a render shares, computed once per render (orientations
per φ step and mosaic domain, sources, the F table, which hot-loop variant runs)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import torch

from engine.config.model import SimulationSetup
from engine.render.eval_order import orientations, phi_angles, phi_rotation_plan, scalar
from engine.render.f_table import FTable, make_f_table
from engine.render.workspace import Workspace


@dataclass(frozen=True)
class KernelPlan:
    """Everything the per-batch evaluation needs, precomputed once per render."""

    setup: SimulationSetup
    dtype: torch.dtype
    device: torch.device
    cell_normal: torch.Tensor           # (3, J·M, 3): a, b, c rows per (φ, mosaic), normal sweeps
    cell_first: Optional[torch.Tensor]  # same for a thread's first sweep; None when identical
    orient_normal: torch.Tensor         # (J, M, 3, 3) for the trace
    orient_first: Optional[torch.Tensor]
    n_phi: int
    n_mos: int
    incident: torch.Tensor              # (S, 3)
    wavelengths: torch.Tensor           # (S,)
    beam_vector: torch.Tensor
    running_sum: bool                   # c-parity with an -oversample_* flag
    fast: bool                          # no gradient needed: in-place hot loop
    f_table: Optional[FTable]
    interpolate: bool                   # tricubic F interpolation (until the run-wide stop)
    workspace: Workspace = field(default_factory=Workspace, compare=False, repr=False)


def needs_grad(setup: SimulationSetup) -> bool:
    """Whether any tensor of the set-up requires a gradient (and autograd is on)."""
    if not torch.is_grad_enabled():
        return False

    def walk(obj) -> bool:
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, torch.Tensor) and v.requires_grad:
                return True
            if dataclasses.is_dataclass(v) and not isinstance(v, type) and walk(v):
                return True
        return False

    return walk(setup)


def make_plan(setup: SimulationSetup, *, fast: Optional[bool] = None) -> KernelPlan:
    """The plan of a render; ``fast``: the in-place hot loop (default: when no gradient is needed)."""
    det, cr, beam = setup.detector, setup.crystal, setup.beam
    dtype, device = det.pix0.dtype, det.pix0.device
    stale_zero = setup.reproduces("phi0-stale-rotation")
    phis = phi_angles(scalar(cr.phi0), scalar(cr.phistep), cr.phisteps)
    normal, first = phi_rotation_plan([float(p) for p in phis], stale_zero=stale_zero)
    o_normal = orientations(setup, normal)
    o_first = orientations(setup, first) if first != normal else None
    J, M = o_normal.shape[:2]

    def rows(o: torch.Tensor) -> torch.Tensor:
        return o.permute(2, 0, 1, 3).reshape(3, J * M, 3)

    s = setup.sampling
    return KernelPlan(
        setup=setup, dtype=dtype, device=device,
        cell_normal=rows(o_normal), cell_first=None if o_first is None else rows(o_first),
        orient_normal=o_normal, orient_first=o_first, n_phi=J, n_mos=M,
        incident=beam.incident.to(dtype=dtype, device=device),
        wavelengths=beam.wavelengths.to(dtype=dtype, device=device),
        beam_vector=(beam.beam_vector if beam.beam_vector is not None else beam.incident[0]).to(
            dtype=dtype, device=device),
        running_sum=setup.reproduces("oversample-running-sum") and (
            s.oversample_thick or s.oversample_polar or s.oversample_omega),
        fast=(not needs_grad(setup)) if fast is None else fast,
        f_table=make_f_table(setup.structure_factors, dtype, device),
        interpolate=bool(setup.structure_factors.interpolate),
    )
