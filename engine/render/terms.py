"""Per-term physics of one batch: a thickness layer's geometry, Miller indices, lattice and
structure factors, and the running sum over terms. Shapes: P pixels, U sub-pixels, S sources,
J φ steps, M mosaic domains."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from engine.config.c_numbers import c_sqrt
from engine.config.model import Mode, Shape
from engine.config.options import UsageError
from engine.render.f_table import table_lookup
from engine.render.pixel_physics import capture_fraction, dot3, pixel_positions, solid_angle
from engine.render.plan import KernelPlan
from engine.render.workspace import Workspace
from engine.sample import lattice
from engine.sample.interpolation import in_range, tricubic

#: "Interpolate every term of this pixel": larger than any per-pixel term index.
NO_CUTOFF = 2 ** 62


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
    if not plan.interpolate or cutoff is None or not bool((cutoff >= 0).any()):
        return nearest
    grid = sf.grid.to(dtype=h.dtype, device=h.device)
    limit = cutoff.reshape((-1,) + (1,) * (h.dim() - 1))
    use = (term_index < limit).expand(h.shape)
    if plan.setup.mode is Mode.C_PARITY:
        _refuse_nan_stencil(h, k, l, use)
    if bool(use.all()):
        value = tricubic(grid, sf.h_min, sf.k_min, sf.l_min, h, k, l).to(h.dtype)
    else:
        # Only the terms before the stop interpolate: the stencils of the rest are never used.
        value = nearest.index_put((use,), tricubic(grid, sf.h_min, sf.k_min, sf.l_min,
                                                   h[use], k[use], l[use]).to(h.dtype))
    if not plan.setup.reproduces("interpolate-oob-nearest"):
        value = torch.where(term_index == limit, torch.full_like(value, sf.default_F), value)
    return value


def _refuse_nan_stencil(h: torch.Tensor, k: torch.Tensor, l: torch.Tensor, use: torch.Tensor) -> None:
    """The C cannot run a tricubic term at a NaN h, k or l: every range test is false, so it
    interpolates, and (int)floor(NaN) = INT_MIN indexes its HKL table far out of bounds (a
    segfault; seen with a flat -cell and -hkl). Its crash is its behaviour: c-parity fails too."""
    if bool((torch.isnan(h) | torch.isnan(k) | torch.isnan(l)).logical_and(use).any()):
        raise UsageError("c-parity: tricubic interpolation at NaN h,k,l (a degenerate cell or wavelength): "
                         "the C reads outside its HKL table here and crashes; use -nointerpolate or fix the input")


def out_of_range(plan: KernelPlan, h, k, l) -> torch.Tensor:
    sf = plan.setup.structure_factors
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
    R = c_sqrt(dot3(pos, pos))
    # The C's unitize leaves a zero vector at R = 0 (a pixel at the sample): pos / inf = 0, not NaN.
    d = pos / torch.where(R == 0, torch.inf, R)[..., None]
    # The C applies the first sub-pixel's ω and capture fraction to the whole pixel unless an
    # -oversample_omega / -oversample_thick flag asks for each sub-pixel's: compute only those used.
    omega = solid_angle(R if smp.oversample_omega else R[:, :1], det.pixel_size, det.close_distance,
                        det.point_pixel).expand_as(R)
    if det.thickness != 0.0 or smp.oversample_thick:
        capture = capture_fraction(d if smp.oversample_thick else d[:, :1], det.odet, t, det.thickstep,
                                   det.mu).expand_as(R)
    else:
        capture = torch.ones_like(R)
    q = (d[:, :, None, :] - plan.incident) / plan.wavelengths[:, None]
    survive = None
    if beam.dmin > 0.0:
        # The C drops a (sub-pixel, source) whose resolution 1/(2·stol) is finer than dmin.
        stol = 0.5 * c_sqrt(dot3(q, q))
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


def pick(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (P, K), index (P,) → (P,)."""
    return values.gather(1, index[:, None])[:, 0]


def first_true(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
