"""The chunk kernel: a batch of pixels → their C image values (all layers, sub-pixels, sources, φ,
mosaic domains), plus, for a one-pixel batch, every intermediate the trace prints.

Tensor shapes: P pixels, U sub-pixels (oversample²), S sources, J φ steps, M mosaic domains. The
pixels of a batch and the sub-pixel/source/φ/domain loops are broadcast dimensions; only the (few)
thickness layers are a Python loop, because the C's cached factors are defined layer by layer.

Two variants of the hot loop compute the same values: a differentiable one, and a ``fast`` one
used when nothing needs a gradient, which works in place (few temporaries, so a chunk stays in
cache) and looks F up in a default_F-bordered copy of the grid with one gather. Every per-term
result depends only on that term's inputs, never on the batch, so a pixel evaluated alone gets
exactly the bits it gets inside a chunk (the trace-only path relies on this).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Optional

import torch

from engine.sample import lattice
from engine.config.model import Shape, SimulationSetup, StructureFactors
from engine.render.eval_order import orientations, phi_angles, phi_rotation_plan, scalar
from engine.render.pixel_physics import (capture_fraction, dot3, final_scale, pixel_positions,
                                  polarization_factor, solid_angle)

#: "Interpolate every term of this pixel": larger than any per-pixel term index.
NO_CUTOFF = 2 ** 62


def nearest_structure_factor(sf: StructureFactors, h0: torch.Tensor, k0: torch.Tensor,
                             l0: torch.Tensor) -> torch.Tensor:
    """F at the rounded indices (float tensors holding integers); default_F off the grid."""
    if sf.grid is None or sf.grid.numel() == 0:
        return torch.full_like(h0, sf.default_F)
    grid = sf.grid.to(device=h0.device, dtype=h0.dtype)
    nh, nk, nl = grid.shape
    ih, ik, il = h0 - sf.h_min, k0 - sf.k_min, l0 - sf.l_min
    inside = (ih >= 0) & (ih < nh) & (ik >= 0) & (ik < nk) & (il >= 0) & (il < nl)
    flat = (ih * nk + ik) * nl + il
    idx = torch.where(inside, flat, torch.zeros_like(flat)).long()
    return torch.where(inside, grid.reshape(-1)[idx], torch.full_like(h0, sf.default_F))


def _tricubic_lookup():
    try:
        from engine.sample.interpolation import in_range, tricubic  # type: ignore[import-not-found]
    except ImportError as exc:
        raise NotImplementedError("-interpolate needs engine.sample.interpolation (tricubic, in_range)") from exc
    return tricubic, in_range


@dataclass(frozen=True)
class FTable:
    """The HKL grid with a one-cell default_F border, flattened: F at any rounded (h, k, l) is
    ``table[Σ clamp(i, lo, hi)·stride + offset]`` (an index off the grid lands in the border)."""

    table: torch.Tensor                 # ((nh+2)(nk+2)(nl+2),) in the kernel dtype
    lo: tuple[int, int, int]            # h_min−1, k_min−1, l_min−1
    hi: tuple[int, int, int]            # h_max+1, ...
    strides: tuple[int, int, int]
    offset: int
    float_index: bool                   # the index arithmetic is exact in the kernel dtype
    index_dtype: torch.dtype


def make_f_table(sf: StructureFactors, dtype: torch.dtype, device) -> Optional[FTable]:
    if sf.grid is None or sf.grid.numel() == 0:
        return None
    grid = sf.grid.to(dtype=dtype, device=device)
    padded = torch.nn.functional.pad(grid[None, None], (1, 1, 1, 1, 1, 1), value=float(sf.default_F))[0, 0]
    nh, nk, nl = padded.shape
    lo = (sf.h_min - 1, sf.k_min - 1, sf.l_min - 1)
    hi = (lo[0] + nh - 1, lo[1] + nk - 1, lo[2] + nl - 1)
    strides = (nk * nl, nl, 1)
    offset = -sum(a * s for a, s in zip(lo, strides))
    bound = sum(max(abs(a), abs(b)) * s for a, b, s in zip(lo, hi, strides)) + abs(offset)
    exact = 2.0 / torch.finfo(dtype).eps        # integers up to this are exact
    return FTable(table=padded.reshape(-1), lo=lo, hi=hi, strides=strides, offset=offset,
                  float_index=bound < exact,
                  index_dtype=torch.int32 if bound < 2 ** 31 else torch.int64)


def table_lookup(ft: FTable, h: torch.Tensor, k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """F at the nearest node, ceil(x − ½) per axis as the C rounds; default_F off the grid."""
    with torch.no_grad():
        flat = None
        for v, lo, hi, stride in zip((h, k, l), ft.lo, ft.hi, ft.strides):
            i = v - 0.5
            i.ceil_().clamp_(lo, hi)
            if not ft.float_index:
                i = i.to(torch.int64)
            if flat is None:
                flat = i.mul_(stride) if stride != 1 else i
            else:
                flat.add_(i, alpha=stride)
        flat.add_(ft.offset)
        idx = flat.reshape(-1).to(ft.index_dtype)
    return ft.table.index_select(0, idx).reshape(h.shape)


def table_lookup_into(ft: FTable, h: torch.Tensor, k: torch.Tensor, l: torch.Tensor,
                      ws: "Workspace") -> torch.Tensor:
    """``table_lookup`` with the index arithmetic and the result in reused scratch buffers."""
    if not ft.float_index:
        return table_lookup(ft, h, k, l)
    acc = ws.get("idx_acc", h.shape, h.dtype, h.device)
    tmp = ws.get("idx_tmp", h.shape, h.dtype, h.device)
    for n, (v, lo, hi, stride) in enumerate(zip((h, k, l), ft.lo, ft.hi, ft.strides)):
        dst = acc if n == 0 else tmp
        torch.sub(v, 0.5, out=dst)
        dst.ceil_().clamp_(lo, hi)
        if n == 0:
            acc.mul_(stride)
        else:
            acc.add_(tmp, alpha=stride)
    acc.add_(ft.offset)
    idx = ws.get("idx", (h.numel(),), ft.index_dtype, h.device)
    idx.copy_(acc.reshape(-1))
    out = ws.get("F_cell", h.shape, ft.table.dtype, h.device)
    torch.index_select(ft.table, 0, idx, out=out.reshape(-1))
    return out


class Workspace:
    """Scratch tensors reused from batch to batch: fresh multi-megabyte temporaries cost more
    (page faults) than the arithmetic done in them.

    Buffers are per thread, so batches may run concurrently (``engine.render.chunking.map_batches``).
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, name: str, shape, dtype: torch.dtype, device=None) -> torch.Tensor:
        bufs = self._local.__dict__.setdefault("bufs", {})
        n = math.prod(shape)
        buf = bufs.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype or (device is not None and buf.device != torch.device(device)):
            buf = torch.empty(n, dtype=dtype, device=device)
            bufs[name] = buf
        return buf[:n].view(shape)


# ---------------------------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------------------------

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
    tricubic: object
    workspace: Workspace = field(default_factory=Workspace, compare=False, repr=False)


def needs_grad(setup: SimulationSetup) -> bool:
    """Whether any tensor of the set-up requires a gradient (and autograd is on)."""
    if not torch.is_grad_enabled():
        return False

    def walk(obj) -> bool:
        import dataclasses
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, torch.Tensor) and v.requires_grad:
                return True
            if dataclasses.is_dataclass(v) and not isinstance(v, type) and walk(v):
                return True
        return False

    return walk(setup)


def make_plan(setup: SimulationSetup, *, fast: Optional[bool] = None) -> KernelPlan:
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
        running_sum=setup.reproduces("oversample-running-sum") and (s.oversample_thick or s.oversample_polar or s.oversample_omega),
        fast=(not needs_grad(setup)) if fast is None else fast,
        f_table=make_f_table(setup.structure_factors, dtype, device),
        tricubic=_tricubic_lookup() if setup.structure_factors.interpolate else None,
    )


# ---------------------------------------------------------------------------------------------
# Per-term physics
# ---------------------------------------------------------------------------------------------

def lattice_factor(plan: KernelPlan, h, k, l, *, keep_axes: bool = True):
    """F_latt per term, and (SQUARE) the three per-axis factors when ``keep_axes``."""
    cr = plan.setup.crystal
    if cr.shape == Shape.SQUARE:
        if plan.fast and not keep_axes:
            return lattice.square_inplace(h, k, l, cr.Na, cr.Nb, cr.Nc), None
        axes = lattice.square_factors(h, k, l, cr.Na, cr.Nb, cr.Nc)
        return axes[0] * axes[1] * axes[2], axes
    if cr.shape == Shape.ROUND:
        return lattice.round_(h, k, l, cr.Na, cr.Nb, cr.Nc, cr.fudge), None
    a_star, b_star, c_star = (v.to(dtype=h.dtype, device=h.device) for v in (cr.a_star, cr.b_star, cr.c_star))
    rad = lattice.reciprocal_radius_sqr(h, k, l, a_star, b_star, c_star, cr.Na, cr.Nb, cr.Nc)
    if cr.shape == Shape.GAUSS:
        return lattice.gauss(rad, cr.Na, cr.Nb, cr.Nc, cr.fudge), None
    return lattice.tophat(rad, cr.Na, cr.Nb, cr.Nc, cr.fudge), None


def nearest_F(plan: KernelPlan, h, k, l) -> torch.Tensor:
    if plan.f_table is None:
        return torch.full_like(h, plan.setup.structure_factors.default_F)
    return table_lookup(plan.f_table, h, k, l)


def structure_factor(plan: KernelPlan, h, k, l, term_index: Optional[torch.Tensor] = None,
                     cutoff: Optional[torch.Tensor] = None):
    """F_cell per term: nearest lookup, or tricubic for the terms before the interpolation cut-off.

    Interpolation is a run-wide switch that the first out-of-range evaluation turns off for good.
    ``cutoff`` (P,) is each pixel's term index (``term_index``, same shape as h) of that event:
    terms before it interpolate, terms after it take the nearest value, and the failing term
    itself takes the nearest value (C) or default_F (spec). None: no interpolation.
    """
    sf = plan.setup.structure_factors
    nearest = nearest_F(plan, h, k, l)
    if plan.tricubic is None or cutoff is None or not bool((cutoff >= 0).any()):
        return nearest
    tricubic, _ = plan.tricubic
    grid = sf.grid.to(dtype=h.dtype, device=h.device)
    interpolated = tricubic(grid, sf.h_min, sf.k_min, sf.l_min, h, k, l).to(h.dtype)
    limit = cutoff.reshape((-1,) + (1,) * (h.dim() - 1))
    value = torch.where(term_index < limit, interpolated, nearest)
    if not plan.setup.reproduces("interpolate-oob-nearest"):
        value = torch.where(term_index == limit, torch.full_like(value, sf.default_F), value)
    return value


def out_of_range(plan: KernelPlan, h, k, l) -> torch.Tensor:
    sf = plan.setup.structure_factors
    _, in_range = plan.tricubic
    return ~in_range(sf.grid, sf.h_min, sf.k_min, sf.l_min, h, k, l)


@dataclass
class Layer:
    """Per-(pixel, sub-pixel[, source]) quantities of one thickness layer."""

    pos: torch.Tensor                   # (P, U, 3) m
    R: torch.Tensor                     # (P, U)
    d: torch.Tensor                     # (P, U, 3) unit diffracted direction
    omega: torch.Tensor                 # (P, U) solid angle of each sub-pixel
    capture: torch.Tensor               # (P, U) capture fraction of this layer
    q: torch.Tensor                     # (P, U, S, 3) scattering vectors, m⁻¹
    survive: Optional[torch.Tensor]     # (P, U, S) passes the dmin cut; None: no cut (all pass)


def layer(plan: KernelPlan, spix: torch.Tensor, fpix: torch.Tensor, t: int) -> Layer:
    det, beam, smp = plan.setup.detector, plan.setup.beam, plan.setup.sampling
    pos = pixel_positions(spix, fpix, t * det.thickstep, pix0=det.pix0, fdet=det.fdet, sdet=det.sdet,
                          odet=det.odet, pixel_size=det.pixel_size, oversample=det.oversample,
                          curved=det.curved, distance=det.distance, beam_vector=plan.beam_vector)
    R = torch.sqrt(dot3(pos, pos))
    d = pos / R[..., None]
    omega = solid_angle(R, det.pixel_size, det.close_distance, det.point_pixel)
    if det.thickness != 0.0 or smp.oversample_thick:
        capture = capture_fraction(d, det.odet, t, det.thickstep, det.mu)
    else:
        capture = torch.ones_like(R)
    q = (d[:, :, None, :] - plan.incident) / plan.wavelengths[:, None]
    survive = None
    if beam.dmin > 0.0:
        # The C drops a (sub-pixel, source) whose resolution 1/(2·stol) is finer than dmin.
        stol = 0.5 * torch.sqrt(dot3(q, q))
        survive = ~((stol > 0.0) & (beam.dmin > 0.5 / stol))
    return Layer(pos, R, d, omega, capture, q, survive)


def any_survive(plan: KernelPlan, spix: torch.Tensor, fpix: torch.Tensor) -> torch.Tensor:
    """(P,) whether any (layer, sub-pixel, source) of each pixel passes the dmin cut."""
    det, beam = plan.setup.detector, plan.setup.beam
    out = torch.ones(spix.shape, dtype=torch.bool, device=plan.device)
    if beam.dmin <= 0.0:
        return out
    out = ~out
    with torch.no_grad():
        for t in range(max(1, det.thicksteps)):
            out = out | layer(plan, spix, fpix, t).survive.reshape(spix.numel(), -1).any(1)
    return out


def _pick(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (P, K), index (P,) → (P,)."""
    return values.gather(1, index[:, None])[:, 0]


def _first_true(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of a (P, K) bool mask: whether any is set, and the index of the first set."""
    return mask.any(1), mask.to(torch.int8).argmax(1)


def miller(plan: KernelPlan, q: torch.Tensor, first_sweep: Optional[torch.Tensor], ws: Optional[Workspace] = None):
    """h, k, l (P, U, S, J, M): one matmul per axis (row results do not depend on the batch);
    ``first_sweep`` (P, U, S) marks sweeps that use the thread-first orientation variant.
    ws: write into (and return) reused scratch buffers (no autograd)."""
    P, U, S, _ = q.shape
    J, M = plan.n_phi, plan.n_mos
    qf = q.reshape(-1, 3)
    if ws is not None:
        hkl = []
        for i, name in enumerate("hkl"):
            buf = ws.get(name, (P, U, S, J, M), q.dtype, q.device)
            # A contiguous (3, J·M) right operand: the same products and sums, about twice
            # as fast as the transposed view (BLAS takes the other layout path).
            torch.mm(qf, plan.cell_normal[i].T.contiguous(), out=buf.view(-1, J * M))
            if first_sweep is not None:
                buf[first_sweep] = torch.matmul(q[first_sweep], plan.cell_first[i].T).reshape(-1, J, M)
            hkl.append(buf)
        return hkl
    hkl = [torch.matmul(qf, plan.cell_normal[i].T).reshape(P, U, S, J, M) for i in range(3)]
    if first_sweep is not None:
        q_sel = q[first_sweep]
        hkl = [x.index_put((first_sweep,), torch.matmul(q_sel, plan.cell_first[i].T).reshape(-1, J, M))
               for i, x in enumerate(hkl)]
    return hkl


def accumulate(plan: KernelPlan, I: torch.Tensor, x: torch.Tensor, m: Optional[torch.Tensor],
               active: Optional[torch.Tensor]) -> torch.Tensor:
    """Add one layer's terms x (P, U, S, J, M) to the per-pixel sums I (P,).

    m (P, U, S): the -oversample_* factors of each sweep (None: no flag set). Spec weights each
    term once; c-parity multiplies the running sum after every term that reached the sum
    (``active``), i.e. I ← (I + x_t)·m_t, whose closed form is I·Πm + Σ x_t·Π_{s≥t} m_s.
    """
    P = I.shape[0]
    if m is None:
        return I + x.reshape(P, -1).sum(1)
    if not plan.running_sum:
        return I + (x * m[..., None, None]).reshape(P, -1).sum(1)
    m_term = torch.where(active, m[..., None, None].expand_as(x), torch.ones_like(x)).reshape(P, -1)
    suffix = torch.flip(torch.cumprod(torch.flip(m_term, [1]), 1), [1])
    return I * suffix[:, 0] + (x.reshape(P, -1) * suffix).sum(1)


# ---------------------------------------------------------------------------------------------
# Batch evaluation
# ---------------------------------------------------------------------------------------------

@dataclass
class LayerDetail:
    """Intermediates of one thickness layer for a 1-pixel batch (the traced pixel)."""

    pos: torch.Tensor
    R: torch.Tensor
    d: torch.Tensor
    omega: torch.Tensor
    q: torch.Tensor
    survive: torch.Tensor
    first_sweep: torch.Tensor           # (P, U, S) bool: sweeps using the thread-first variant
    h: torch.Tensor
    k: torch.Tensor
    l: torch.Tensor
    f_latt_axes: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    f_latt: torch.Tensor
    f_cell: torch.Tensor


@dataclass
class PixelResult:
    value: torch.Tensor                 # (P,) r_e²·fluence·I/steps × factors, before float32
    I: torch.Tensor
    capture: torch.Tensor               # the values of the C's variables after the loops
    polar: torch.Tensor
    omega: torch.Tensor
    cos2theta: torch.Tensor
    any_survive: torch.Tensor
    omega_sum: torch.Tensor
    layers: list[LayerDetail] = field(default_factory=list)
    first_out_of_range: Optional[torch.Tensor] = None
    first_out_of_range_hkl: Optional[torch.Tensor] = None


def evaluate(plan: KernelPlan, spix: torch.Tensor, fpix: torch.Tensor,
             first_flag: Optional[torch.Tensor] = None, detail: bool = False,
             interp_cutoff: Optional[torch.Tensor] = None, probe: bool = False) -> PixelResult:
    """Render a batch of pixels (P,) completely: all layers, sub-pixels, sources, φ, domains.

    first_flag (P,): pixels that are their thread's first evaluation (stale-φ variant).
    interp_cutoff (P,): see ``structure_factor``. probe: only find, per pixel, the index of the
    first term whose interpolation stencil leaves the grid (``first_out_of_range``).
    detail: keep every intermediate (``layers``) for the trace.

    The C caches three factors per pixel; the values it ends up applying are reproduced here:
    ω of the first sub-pixel, the polarization of the first (layer, sub-pixel, source) that passes
    dmin, and the capture fraction of the last layer's first sub-pixel (each recomputed per term
    instead when its -oversample_* flag is set).
    """
    setup = plan.setup
    det, beam, smp = setup.detector, setup.beam, setup.sampling
    dtype, device = plan.dtype, plan.device
    P = spix.numel()
    U = det.oversample ** 2
    S, J, M = plan.incident.shape[0], plan.n_phi, plan.n_mos
    ot, op, oo = smp.oversample_thick, smp.oversample_polar, smp.oversample_omega
    water = smp.water_I_bg != 0.0
    compute_polar = op or not beam.nopolar            # -oversample_polar defeats -nopolar
    polar_axis = beam.polarization_axis.to(dtype=dtype, device=device)
    n_terms = U * S * J * M
    fast = plan.fast and not detail

    I = torch.full((P,), smp.water_I_bg, dtype=dtype, device=device)
    pending = first_flag.clone() if (first_flag is not None and plan.cell_first is not None) else None
    polar_init = torch.full((P,), 1.0 if beam.nopolar else 0.0, dtype=dtype, device=device)
    polar_first = polar_last = polar_init
    polar_found = torch.zeros(P, dtype=torch.bool, device=device)
    any_surv = torch.zeros(P, dtype=torch.bool, device=device)
    omega_first = capture_last = omega_last = cos2 = None
    omega_sum = torch.zeros(P, dtype=dtype, device=device)
    first_oor = torch.full((P,), NO_CUTOFF, dtype=torch.long, device=device)
    first_oor_hkl = torch.zeros((P, 3), dtype=dtype, device=device)
    layers: list[LayerDetail] = []

    for t in range(max(1, det.thicksteps)):
        ly = layer(plan, spix, fpix, t)
        survive = ly.survive if ly.survive is not None else torch.ones(
            ly.q.shape[:-1], dtype=torch.bool, device=device)
        if omega_first is None:
            omega_first = ly.omega[:, 0]
        omega_used = ly.omega if oo else omega_first[:, None].expand(P, U)
        omega_sum = omega_sum + omega_used.sum(1)
        omega_last = omega_used[:, -1]
        capture_last = ly.capture[:, -1] if ot else ly.capture[:, 0]
        cos2 = dot3(plan.incident[-1], ly.d[:, -1])

        flat_survive = survive.reshape(P, U * S)
        layer_any, first_idx = _first_true(flat_survive)
        any_surv = any_surv | layer_any
        polar = None
        if compute_polar:
            polar = polarization_factor(beam.kahn_factor, plan.incident, ly.d[:, :, None, :], polar_axis)
            flat_polar = polar.reshape(P, U * S)
            polar_first = torch.where(layer_any & ~polar_found, _pick(flat_polar, first_idx), polar_first)
            polar_found = polar_found | layer_any
            last_idx = (U * S - 1) - flat_survive.flip(1).to(torch.int8).argmax(1)
            polar_last = torch.where(layer_any, _pick(flat_polar, last_idx), polar_last)

        first_sweep = None
        if pending is not None and bool(pending.any()):
            sel = pending & layer_any
            if bool(sel.any()):
                one_hot = torch.zeros((P, U * S), dtype=torch.bool, device=device)
                one_hot[sel, first_idx[sel]] = True
                first_sweep = one_hot.reshape(P, U, S)
            pending = pending & ~layer_any
        h, k, l = miller(plan, ly.q, first_sweep, ws=plan.workspace if fast and not probe else None)

        if probe:
            # The first term (in the C's order) whose stencil leaves the grid among the terms
            # that reach the F_cell lookup (passing dmin, and F_latt != 0 unless water).
            oor = out_of_range(plan, h, k, l)
            oor &= survive[..., None, None]
            if bool(oor.any()):
                if not water:
                    f_latt, _ = lattice_factor(plan, h, k, l)
                    oor &= f_latt != 0.0
                oor = oor.reshape(P, -1)
                hit, idx = _first_true(oor)
                new = hit & (first_oor == NO_CUTOFF)
                first_oor = torch.where(new, idx + t * n_terms, first_oor)
                hkl_at = torch.stack([_pick(x.reshape(P, -1), idx) for x in (h, k, l)], 1)
                first_oor_hkl = torch.where(new[:, None], hkl_at, first_oor_hkl)
            continue

        need_active = plan.running_sum or detail
        term_index = None
        if plan.tricubic is not None and interp_cutoff is not None:
            term_index = (t * n_terms + torch.arange(n_terms, device=device)).reshape(1, U, S, J, M)
        if fast:
            # In reused buffers: F_latt overwrites h, k, l (scratch); x = F_cell² F_latt² in place.
            ws = plan.workspace
            if plan.f_table is not None and plan.tricubic is None:
                f_cell = table_lookup_into(plan.f_table, h, k, l, ws)
            else:
                f_cell = structure_factor(plan, h, k, l, term_index, interp_cutoff)
            if setup.crystal.shape == Shape.SQUARE:
                cr = setup.crystal
                f_latt = lattice.square_inplace(h, k, l, cr.Na, cr.Nb, cr.Nc,
                                                out=ws.get("F_latt", h.shape, dtype, device),
                                                zero=ws.get("zero", h.shape, torch.bool, device))
            else:
                f_latt, _ = lattice_factor(plan, h, k, l)
            axes = None
            active = None
            if need_active:
                active = survive[..., None, None] & ((f_latt != 0.0) | water)
            x = f_cell.mul_(f_cell)
            x.mul_(f_latt).mul_(f_latt)
            if ly.survive is not None:
                x.masked_fill_(~ly.survive[..., None, None], 0.0)
        else:
            f_latt, axes = lattice_factor(plan, h, k, l)
            # Terms that reach the F_cell lookup (the C skips zero lattice factors unless water).
            active = survive[..., None, None] & ((f_latt != 0.0) | water)
            f_cell = structure_factor(plan, h, k, l, term_index, interp_cutoff)
            x = f_cell * f_cell * f_latt * f_latt
            if ly.survive is not None:
                x = torch.where(ly.survive[..., None, None], x, torch.zeros_like(x))
        m = None
        if ot or op or oo:
            m = torch.ones((P, U, S), dtype=dtype, device=device)
            if ot:
                m = m * ly.capture[:, :, None]
            if op:
                m = m * polar
            if oo:
                m = m * ly.omega[:, :, None]
        I = accumulate(plan, I, x, m, active)

        if detail:
            sweep = first_sweep if first_sweep is not None else torch.zeros_like(survive)
            layers.append(LayerDetail(ly.pos, ly.R, ly.d, omega_used, ly.q, survive, sweep,
                                      h, k, l, axes, f_latt, f_cell))

    if probe:
        return PixelResult(value=I, I=I, capture=I, polar=I, omega=I, cos2theta=I,
                           any_survive=any_surv, omega_sum=omega_sum, first_out_of_range=first_oor,
                           first_out_of_range_hkl=first_oor_hkl)
    polar_final = polar_first if compute_polar else polar_init
    value = final_scale(I, fluence=beam.fluence, steps=setup.steps)
    if not ot:
        value = value * capture_last
    if not op:
        value = value * polar_final
    if not oo:
        value = value * omega_first
    return PixelResult(
        value=value, I=I, capture=capture_last, polar=polar_last if op else polar_final,
        omega=omega_last if oo else omega_first, cos2theta=cos2, any_survive=any_surv,
        omega_sum=omega_sum, layers=layers)


def omega_sum(plan: KernelPlan, spix: torch.Tensor, fpix: torch.Tensor) -> torch.Tensor:
    """Σ ω the C adds up for these pixels (every layer and sub-pixel; the solid-angle line),
    without evaluating any term."""
    det, smp = plan.setup.detector, plan.setup.sampling
    U = det.oversample ** 2
    total = torch.zeros((), dtype=plan.dtype, device=plan.device)
    omega_first = None
    with torch.no_grad():
        for t in range(max(1, det.thicksteps)):
            if not smp.oversample_omega and omega_first is not None:
                total = total + omega_first.sum() * U
                continue
            pos = pixel_positions(spix, fpix, t * det.thickstep, pix0=det.pix0, fdet=det.fdet,
                                  sdet=det.sdet, odet=det.odet, pixel_size=det.pixel_size,
                                  oversample=det.oversample, curved=det.curved,
                                  distance=det.distance, beam_vector=plan.beam_vector)
            omega = solid_angle(torch.sqrt(dot3(pos, pos)), det.pixel_size, det.close_distance,
                                det.point_pixel)
            omega_first = omega[:, 0]
            total = total + (omega.sum() if smp.oversample_omega else omega_first.sum() * U)
    return total
