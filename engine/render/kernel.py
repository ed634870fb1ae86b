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
from dataclasses import dataclass, field
from typing import Optional

import torch

from engine.config.c_numbers import c_sqrt
from engine.config.model import Shape
from engine.render.f_table import table_lookup_into
from engine.render.pixel_physics import dot3, final_scale, pixel_positions, polarization_factor, solid_angle
from engine.render.plan import KernelPlan
from engine.render.terms import (NO_CUTOFF, Layer, accumulate, first_true, lattice_factor, layer, miller,
                                 out_of_range, pick, structure_factor)
from engine.sample import lattice


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
    polar: Optional[torch.Tensor] = None    # (P, U, S) per-term polarization; None: off


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


@dataclass
class _Carried:
    """Per-pixel values (P,) the C carries from term to term and layer to layer."""

    I: torch.Tensor
    polar_init: torch.Tensor
    polar_first: torch.Tensor
    polar_last: torch.Tensor
    polar_found: torch.Tensor
    any_survive: torch.Tensor
    omega_sum: torch.Tensor
    first_oor: torch.Tensor
    first_oor_hkl: torch.Tensor
    pending: Optional[torch.Tensor]         # thread-first pixels whose first sweep is still ahead
    omega_first: Optional[torch.Tensor] = None
    omega_last: Optional[torch.Tensor] = None
    capture_last: Optional[torch.Tensor] = None
    cos2: Optional[torch.Tensor] = None


def _start(plan: KernelPlan, P: int, first_flag: Optional[torch.Tensor]) -> _Carried:
    beam, smp, dtype, device = plan.setup.beam, plan.setup.sampling, plan.dtype, plan.device
    polar_init = torch.full((P,), 1.0 if beam.nopolar else 0.0, dtype=dtype, device=device)
    pending = first_flag.clone() if (first_flag is not None and plan.cell_first is not None) else None
    return _Carried(
        I=torch.full((P,), smp.water_I_bg, dtype=dtype, device=device), polar_init=polar_init,
        polar_first=polar_init, polar_last=polar_init, polar_found=torch.zeros(P, dtype=torch.bool, device=device),
        any_survive=torch.zeros(P, dtype=torch.bool, device=device),
        omega_sum=torch.zeros(P, dtype=dtype, device=device),
        first_oor=torch.full((P,), NO_CUTOFF, dtype=torch.long, device=device),
        first_oor_hkl=torch.zeros((P, 3), dtype=dtype, device=device), pending=pending)


def _cache_geometry(plan: KernelPlan, ly: Layer, c: _Carried) -> torch.Tensor:
    """ω, capture fraction and cos 2θ as the C's cached variables hold them after this layer;
    returns ω per sub-pixel as used (the first sub-pixel's unless -oversample_omega)."""
    smp = plan.setup.sampling
    P, U = ly.R.shape
    if c.omega_first is None:
        c.omega_first = ly.omega[:, 0]
    omega_used = ly.omega if smp.oversample_omega else c.omega_first[:, None].expand(P, U)
    c.omega_sum = c.omega_sum + omega_used.sum(1)
    c.omega_last = omega_used[:, -1]
    c.capture_last = ly.capture[:, -1] if smp.oversample_thick else ly.capture[:, 0]
    # No source at all (every divergence point cut): the C never sets cos 2θ; NaN stands for that.
    c.cos2 = (dot3(plan.incident[-1], ly.d[:, -1]) if plan.incident.shape[0]
              else torch.full_like(ly.R[:, -1], math.nan))
    return omega_used


def _polarization(plan: KernelPlan, ly: Layer, flat_survive: torch.Tensor, layer_any: torch.Tensor,
                  first_idx: torch.Tensor, c: _Carried) -> Optional[torch.Tensor]:
    """Keeps the polarization of the first and the last dmin-passing term (the C's cached factor,
    and the variable's final value); returns the per-term factors (P, U, S) when -oversample_polar
    applies them term by term, else None."""
    beam, smp = plan.setup.beam, plan.setup.sampling
    if not (smp.oversample_polar or not beam.nopolar):     # -oversample_polar defeats -nopolar
        return None
    polar_axis = beam.polarization_axis.to(dtype=plan.dtype, device=plan.device)
    P, n = flat_survive.shape
    if ly.survive is None:
        last_idx = torch.full_like(first_idx, n - 1)
    else:
        last_idx = (n - 1) - flat_survive.flip(1).to(torch.int8).argmax(1)
    polar = None
    if smp.oversample_polar:
        polar = polarization_factor(beam.kahn_factor, plan.incident, ly.d[:, :, None, :], polar_axis)
        flat_polar = polar.reshape(P, n)
        at_first, at_last = pick(flat_polar, first_idx), pick(flat_polar, last_idx)
    elif n == 1:
        # One (sub-pixel, source): it is both the first and the last term.
        at_first = at_last = polarization_factor(beam.kahn_factor, plan.incident[0], ly.d[:, 0], polar_axis)
    else:
        # Only the first and the last dmin-passing term's factor are used: compute just those two.
        S = plan.incident.shape[0]
        if ly.survive is None:
            # Every term passes: the same two (sub-pixel, source) for all pixels, so plain
            # slices instead of per-pixel gathers (same values).
            u_last, s_last = divmod(n - 1, S)
            d, incident = ly.d[:, [0, u_last]], plan.incident[[0, s_last]]
        else:
            ends = torch.stack([first_idx, last_idx], 1)                      # (P, 2) over U·S
            d = ly.d[torch.arange(P, device=ends.device)[:, None], torch.div(ends, S, rounding_mode="floor")]
            incident = plan.incident[ends % S]
        at_ends = polarization_factor(beam.kahn_factor, incident, d, polar_axis)
        at_first, at_last = at_ends[:, 0], at_ends[:, 1]
    c.polar_first = torch.where(layer_any & ~c.polar_found, at_first, c.polar_first)
    c.polar_found = c.polar_found | layer_any
    c.polar_last = torch.where(layer_any, at_last, c.polar_last)
    return polar


def _thread_first_sweep(c: _Carried, layer_any: torch.Tensor, first_idx: torch.Tensor,
                        shape: tuple[int, int, int]) -> Optional[torch.Tensor]:
    """(P, U, S) mark of the one sweep per thread-first pixel that uses the thread-first
    orientations: its first dmin-passing (sub-pixel, source), in the first layer that has one."""
    if c.pending is None or not bool(c.pending.any()):
        return None
    P, U, S = shape
    first_sweep = None
    sel = c.pending & layer_any
    if bool(sel.any()):
        one_hot = torch.zeros((P, U * S), dtype=torch.bool, device=layer_any.device)
        one_hot[sel, first_idx[sel]] = True
        first_sweep = one_hot.reshape(P, U, S)
    c.pending = c.pending & ~layer_any
    return first_sweep


def _probe_layer(plan: KernelPlan, hkl: tuple[torch.Tensor, ...], survive: torch.Tensor, c: _Carried,
                 offset: int) -> None:
    """Record each pixel's first term (in the C's order, from term index ``offset``) whose stencil
    leaves the grid, among the terms that reach the F_cell lookup (passing dmin, and F_latt != 0
    unless water)."""
    h, k, l = hkl
    P = h.shape[0]
    oor = out_of_range(plan, h, k, l)
    oor &= survive[..., None, None]
    if not bool(oor.any()):
        return
    if plan.setup.sampling.water_I_bg == 0.0:
        f_latt, _ = lattice_factor(plan, h, k, l)
        oor &= f_latt != 0.0
    oor = oor.reshape(P, -1)
    hit, idx = first_true(oor)
    new = hit & (c.first_oor == NO_CUTOFF)
    c.first_oor = torch.where(new, idx + offset, c.first_oor)
    hkl_at = torch.stack([pick(x.reshape(P, -1), idx) for x in (h, k, l)], 1)
    c.first_oor_hkl = torch.where(new[:, None], hkl_at, c.first_oor_hkl)


@dataclass
class _Terms:
    """One layer's terms x = F_cell²·F_latt² (P, U, S, J, M) and what the trace shows of them."""

    x: torch.Tensor
    active: Optional[torch.Tensor]      # terms that reached the sum (None: not needed)
    f_latt: torch.Tensor
    f_latt_axes: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    f_cell: torch.Tensor


def _reaches_lookup(plan: KernelPlan, survive: torch.Tensor, f_latt: torch.Tensor) -> torch.Tensor:
    # Terms that reach the F_cell lookup (the C skips zero lattice factors unless water).
    return survive[..., None, None] & ((f_latt != 0.0) | (plan.setup.sampling.water_I_bg != 0.0))


def _terms_in_place(plan: KernelPlan, hkl: tuple[torch.Tensor, ...], ly: Layer, survive: torch.Tensor,
                    term_index, cutoff, need_active: bool) -> _Terms:
    """The fast path, in reused buffers: F_latt overwrites h, k, l (scratch); x in place."""
    h, k, l = hkl
    ws, cr = plan.workspace, plan.setup.crystal
    if plan.f_table is not None and not plan.interpolate:
        f_cell = table_lookup_into(plan.f_table, h, k, l, ws)
    else:
        f_cell = structure_factor(plan, h, k, l, term_index, cutoff)
    if cr.shape == Shape.SQUARE:
        f_latt = lattice.square_inplace(h, k, l, cr.Na, cr.Nb, cr.Nc,
                                        out=ws.get("F_latt", h.shape, plan.dtype, plan.device),
                                        zero=ws.get("zero", h.shape, torch.bool, plan.device))
    else:
        f_latt, _ = lattice_factor(plan, h, k, l)
    active = _reaches_lookup(plan, survive, f_latt) if need_active else None
    x = f_cell.mul_(f_cell)
    x.mul_(f_latt).mul_(f_latt)
    if ly.survive is not None:
        x.masked_fill_(~ly.survive[..., None, None], 0.0)
    return _Terms(x, active, f_latt, None, f_cell)


def _terms_autograd(plan: KernelPlan, hkl: tuple[torch.Tensor, ...], ly: Layer, survive: torch.Tensor,
                    term_index, cutoff) -> _Terms:
    """The differentiable path (also the trace's: it keeps the per-axis lattice factors)."""
    h, k, l = hkl
    f_latt, axes = lattice_factor(plan, h, k, l)
    active = _reaches_lookup(plan, survive, f_latt)
    f_cell = structure_factor(plan, h, k, l, term_index, cutoff)
    x = f_cell * f_cell * f_latt * f_latt
    if ly.survive is not None:
        x = torch.where(ly.survive[..., None, None], x, torch.zeros_like(x))
    return _Terms(x, active, f_latt, axes, f_cell)


def _per_term_weights(plan: KernelPlan, ly: Layer, polar: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """(P, U, S) product of the factors that -oversample_thick/_polar/_omega apply per term
    instead of once per pixel; None when no such flag is set."""
    smp = plan.setup.sampling
    if not (smp.oversample_thick or smp.oversample_polar or smp.oversample_omega):
        return None
    P, U = ly.R.shape
    m = torch.ones((P, U, plan.incident.shape[0]), dtype=plan.dtype, device=plan.device)
    if smp.oversample_thick:
        m = m * ly.capture[:, :, None]
    if smp.oversample_polar:
        m = m * polar
    if smp.oversample_omega:
        m = m * ly.omega[:, :, None]
    return m


def _finish(plan: KernelPlan, c: _Carried, layers: list[LayerDetail]) -> PixelResult:
    """Scale the sums once, by the cached factors the C applies after its loops."""
    setup, smp = plan.setup, plan.setup.sampling
    polar_on = smp.oversample_polar or not setup.beam.nopolar
    polar_final = c.polar_first if polar_on else c.polar_init
    value = final_scale(c.I, fluence=setup.beam.fluence, steps=setup.steps)
    if not smp.oversample_thick:
        value = value * c.capture_last
    if not smp.oversample_polar:
        value = value * polar_final
    if not smp.oversample_omega:
        value = value * c.omega_first
    return PixelResult(
        value=value, I=c.I, capture=c.capture_last, polar=c.polar_last if smp.oversample_polar else polar_final,
        omega=c.omega_last if smp.oversample_omega else c.omega_first, cos2theta=c.cos2,
        any_survive=c.any_survive, omega_sum=c.omega_sum, layers=layers)


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
    det = plan.setup.detector
    P, U, S = spix.numel(), det.oversample ** 2, plan.incident.shape[0]
    n_terms = U * S * plan.n_phi * plan.n_mos
    fast = plan.fast and not detail
    c = _start(plan, P, first_flag)
    if S == 0:
        # Every source was cut (-hdivsteps 1 -vdivsteps 1 with no range): the C's loops add
        # nothing and it divides by steps = 0, so each pixel is 0/0 (NaN), as _finish gives.
        for t in range(max(1, det.thicksteps)):
            _cache_geometry(plan, layer(plan, spix, fpix, t), c)
        return _finish(plan, c, [])
    layers: list[LayerDetail] = []
    for t in range(max(1, det.thicksteps)):
        ly = layer(plan, spix, fpix, t)
        survive = ly.survive if ly.survive is not None else torch.ones(
            ly.q.shape[:-1], dtype=torch.bool, device=plan.device)
        omega_used = _cache_geometry(plan, ly, c)
        flat_survive = survive.reshape(P, U * S)
        if ly.survive is None:         # no dmin cut: every term passes
            layer_any = torch.ones(P, dtype=torch.bool, device=plan.device)
            first_idx = torch.zeros(P, dtype=torch.long, device=plan.device)
        else:
            layer_any, first_idx = first_true(flat_survive)
        c.any_survive = c.any_survive | layer_any
        polar = _polarization(plan, ly, flat_survive, layer_any, first_idx, c)
        first_sweep = _thread_first_sweep(c, layer_any, first_idx, (P, U, S))
        hkl = miller(plan, ly.q, first_sweep, ws=plan.workspace if fast and not probe else None)
        if probe:
            _probe_layer(plan, hkl, survive, c, t * n_terms)
            continue
        term_index = None
        if plan.interpolate and interp_cutoff is not None:
            term_index = (t * n_terms + torch.arange(n_terms, device=plan.device)).reshape(
                1, U, S, plan.n_phi, plan.n_mos)
        if fast:
            terms = _terms_in_place(plan, hkl, ly, survive, term_index, interp_cutoff,
                                    need_active=plan.running_sum)
        else:
            terms = _terms_autograd(plan, hkl, ly, survive, term_index, interp_cutoff)
        c.I = accumulate(plan, c.I, terms.x, _per_term_weights(plan, ly, polar), terms.active)
        if detail:
            sweep = first_sweep if first_sweep is not None else torch.zeros_like(survive)
            layers.append(LayerDetail(ly.pos, ly.R, ly.d, omega_used, ly.q, survive, sweep, *hkl,
                                      terms.f_latt_axes, terms.f_latt, terms.f_cell, polar))
    if probe:
        I = c.I
        return PixelResult(value=I, I=I, capture=I, polar=I, omega=I, cos2theta=I,
                           any_survive=c.any_survive, omega_sum=c.omega_sum,
                           first_out_of_range=c.first_oor, first_out_of_range_hkl=c.first_oor_hkl)
    return _finish(plan, c, layers)


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
            omega = solid_angle(c_sqrt(dot3(pos, pos)), det.pixel_size, det.close_distance,
                                det.point_pixel)
            omega_first = omega[:, 0]
            total = total + (omega.sum() if smp.oversample_omega else omega_first.sum() * U)
    return total
