"""The rendering kernel: a resolved ``SimulationSetup`` → the float image the C writes.

Per pixel the C loops over thickness layers, sub-pixels, sources, φ steps and mosaic domains and
sums F_cell²·F_latt², then scales once by r_e²·fluence/steps and by the cached capture fraction,
polarization and solid angle. Here the pixels of a chunk of rows are one batch and sub-pixels,
sources, φ and mosaic domains are broadcast dimensions; only the (few) thickness layers are a
Python loop, because the C's caches and running sums are defined layer by layer.

Tensor shapes in this module: P pixels, U sub-pixels (oversample²), S sources, J φ steps,
M mosaic domains.

Three things depend on the C's evaluation order (pixels row-major within each thread's block of
rows; per pixel: layer, sub-pixel, source, φ, domain), and c-parity reproduces each as a fixed
function of that order (``engine.defects``):

* ``phi0-stale-rotation``: a φ step equal to 0 reuses the last rotation the thread computed.
  Every sweep over φ is the same list of angles, so the rotation a zero step sees is fixed, except
  in the first sweep of each thread, which still holds the unrotated cell. ``phi_rotation_plan``
  gives both variants; the renderer flags each thread's first evaluated pixel, whose first
  (layer, sub-pixel, source) sweep that passes dmin uses the "first" variant.
* ``oversample-running-sum``: with an ``-oversample_*`` flag the C multiplies the running sum by
  the factor after each term; the closed form is I_bg·Πm + Σ x_t·Π_{s≥t} m_s.
* Interpolation is one run-wide switch, turned off for good by the first evaluation whose
  tricubic stencil leaves the grid; the renderer finds that evaluation (a probe pass per chunk
  while the switch is on) and interpolates exactly the terms before it (single-thread order).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from engine import lattice
from engine.config import Shape, SimulationSetup, StructureFactors
from engine.statistics import ImageStats, image_stats
from engine.trace import TraceRecorder

#: Classical electron radius squared (m²), the value the C uses.
R_E_SQR = 7.94079248018965e-30
#: Radians → degrees, as the C defines it.
RTD = 180.0 / math.pi
#: Rough working-set bytes per (pixel, sub-pixel, source, φ, mosaic) term of a chunk (float64;
#: scaled by the element size for other dtypes). Only sets the chunk size, not a hard limit.
BYTES_PER_TERM_F64 = 240
DEFAULT_MEMORY_BUDGET = 64 * 1024 ** 2


# ---------------------------------------------------------------------------------------------
# Pure per-pixel physics
# ---------------------------------------------------------------------------------------------

def subpixel_grid(oversample: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(subS, subF) integer indices of the U = oversample² sub-pixels, slow-major like the C."""
    idx = torch.arange(oversample, device=device)
    sub_s, sub_f = torch.meshgrid(idx, idx, indexing="ij")
    return sub_s.reshape(-1), sub_f.reshape(-1)


def pixel_positions(spix: torch.Tensor, fpix: torch.Tensor, depth: float, *, pix0: torch.Tensor,
                    fdet: torch.Tensor, sdet: torch.Tensor, odet: torch.Tensor, pixel_size: float,
                    oversample: int, curved: bool = False, distance: float = 0.0,
                    beam_vector: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sample → sub-pixel centre vectors (P, U, 3) in metres, at ``depth`` along the normal."""
    dtype, device = pix0.dtype, pix0.device
    sub_s, sub_f = subpixel_grid(oversample, device)
    sub = pixel_size / oversample
    Fdet = sub * (fpix[:, None] * oversample + sub_f[None, :]).to(dtype) + sub / 2.0
    Sdet = sub * (spix[:, None] * oversample + sub_s[None, :]).to(dtype) + sub / 2.0
    pos = Fdet[..., None] * fdet + Sdet[..., None] * sdet + depth * odet + pix0
    if curved:
        # Every pixel sits at ``distance`` along the beam, turned about s then f by the flat
        # position's lab y/R and z/R read as angles (only meaningful for a beam along x).
        base = distance * beam_vector
        turned = rotate_about_axis(base, sdet, pos[..., 1] / distance)
        pos = rotate_about_axis(turned, fdet, pos[..., 2] / distance)
    return pos


def rotate_about_axis(v: torch.Tensor, axis: torch.Tensor, phi: torch.Tensor | float) -> torch.Tensor:
    """Rodrigues rotation of v (..., 3) about a unit axis (3,) by phi (broadcast over ...)."""
    phi = torch.as_tensor(phi, dtype=v.dtype, device=v.device)
    sinphi, cosphi = torch.sin(phi)[..., None], torch.cos(phi)[..., None]
    dot = (v * axis).sum(-1, keepdim=True) * (1.0 - cosphi)
    return axis * dot + v * cosphi + torch.linalg.cross(axis.expand_as(v), v, dim=-1) * sinphi


def solid_angle(R: torch.Tensor, pixel_size: float, close_distance: float, point_pixel: bool) -> torch.Tensor:
    """ω of a pixel seen at distance R: pixel²/R² times the obliquity close_distance/R, or 1/R²."""
    if point_pixel:
        return 1.0 / R / R
    return pixel_size * pixel_size / R / R * close_distance / R


def capture_fraction(diffracted: torch.Tensor, odet: torch.Tensor, layer: int, thickstep: float,
                     mu: float) -> torch.Tensor:
    """Fraction absorbed in layer ``layer``: Beer-Lambert between its faces along the ray."""
    parallax = (diffracted * odet).sum(-1)
    return (torch.exp(-layer * thickstep * mu / parallax)
            - torch.exp(-(layer + 1) * thickstep * mu / parallax))


def polarization_factor(kahn: float, incident: torch.Tensor, diffracted: torch.Tensor,
                        axis: torch.Tensor) -> torch.Tensor:
    """Kahn polarization factor for unit incident/diffracted directions (broadcast, last dim 3)."""
    cos2theta = (incident * diffracted).sum(-1)
    cos2theta_sqr = cos2theta * cos2theta
    sin2theta_sqr = 1.0 - cos2theta_sqr
    if kahn == 0.0:
        return 0.5 * (1.0 + cos2theta_sqr)
    incident, diffracted = torch.broadcast_tensors(incident, diffracted)
    b_in = torch.linalg.cross(axis.expand_as(incident), incident, dim=-1)
    b_in = b_in / b_in.norm(dim=-1, keepdim=True)
    e_in = torch.linalg.cross(incident, b_in, dim=-1)
    e_in = e_in / e_in.norm(dim=-1, keepdim=True)
    psi = -torch.atan2((diffracted * b_in).sum(-1), (diffracted * e_in).sum(-1))
    return 0.5 * (1.0 + cos2theta_sqr - kahn * torch.cos(2.0 * psi) * sin2theta_sqr)


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


def _nearest_lookup():
    """The set-up stage's lookup when it exists (one implementation for the whole engine)."""
    try:
        from engine.structure_factors import lookup_nearest  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - module still being written, or a different API
        return nearest_structure_factor
    return lookup_nearest


def _tricubic_lookup():
    try:
        from engine.interpolation import in_range, tricubic  # type: ignore[import-not-found]
    except ImportError as exc:
        raise NotImplementedError("-interpolate needs engine.interpolation (tricubic, in_range)") from exc
    return tricubic, in_range


# ---------------------------------------------------------------------------------------------
# The C's evaluation order
# ---------------------------------------------------------------------------------------------

def _scalar(x: float | torch.Tensor) -> float:
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


def phi_angles(phi0: float | torch.Tensor, phistep: float | torch.Tensor, phisteps: int,
               dtype=torch.float64, device=None) -> torch.Tensor:
    """φ of each step, φ0 + j·Δφ, computed like the C (so a zero step is exactly 0.0)."""
    j = torch.arange(phisteps, dtype=dtype, device=device)
    return torch.as_tensor(phi0, dtype=dtype, device=device) + torch.as_tensor(
        phistep, dtype=dtype, device=device) * j


def phi_rotation_plan(phi_values: list[float], stale_zero: bool) -> tuple[list[int], list[int]]:
    """Which φ step's rotation each step uses: (normal sweep, a thread's first sweep); −1 = unrotated.

    Spec (stale_zero False): every step uses its own angle. C: a step with φ == 0 keeps the last
    rotation done, i.e. the latest nonzero step earlier in the sweep, or else the last nonzero
    step of the previous sweep (the sweeps are all alike), or the unrotated cell in the thread's
    first sweep.
    """
    n = len(phi_values)
    if not stale_zero:
        own = list(range(n))
        return own, own
    nonzero = [j for j, p in enumerate(phi_values) if p != 0.0]
    carried = nonzero[-1] if nonzero else -1
    normal, first = [], []
    latest_normal, latest_first = carried, -1
    for j, p in enumerate(phi_values):
        if p != 0.0:
            latest_normal = latest_first = j
        normal.append(latest_normal)
        first.append(latest_first)
    return normal, first


def thread_row_blocks(n_rows: int, n_threads: int) -> list[tuple[int, int]]:
    """Rows [start, stop) per thread under a static schedule (the first n % T threads get one more)."""
    n_threads = max(1, int(n_threads))
    q, r = divmod(n_rows, n_threads)
    blocks, start = [], 0
    for t in range(n_threads):
        size = q + (1 if t < r else 0)
        blocks.append((start, start + size))
        start += size
    return blocks


def orientations(setup: SimulationSetup, plan: list[int]) -> torch.Tensor:
    """Real-space cell vectors per (φ step, mosaic domain): (J, M, 3[a,b,c], 3[xyz]), metres."""
    cr = setup.crystal
    dtype, device = cr.a0.dtype, cr.a0.device
    cell0 = torch.stack([cr.a0, cr.b0, cr.c0])                          # (3, 3)
    phis = phi_angles(cr.phi0, cr.phistep, cr.phisteps, dtype, device)
    rotated = rotate_about_axis(cell0[None], cr.spindle_axis.to(dtype=dtype, device=device),
                                phis[:, None])                           # (J, 3, 3)
    stack = torch.cat([cell0[None], rotated], 0)
    per_step = stack[torch.tensor([p + 1 for p in plan], device=device)]  # (J, 3, 3)
    if cr.mosaic_umats is not None and cr.mosaic_spread > 0.0:
        umats = cr.mosaic_umats.to(dtype=dtype, device=device)           # (M, 3, 3)
        return torch.einsum("mxy,jvy->jmvx", umats, per_step)
    return per_step[:, None]


# ---------------------------------------------------------------------------------------------
# Kernel
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
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
    lookup_nearest: object
    tricubic: object


def _make_plan(setup: SimulationSetup) -> _Plan:
    det, cr, beam = setup.detector, setup.crystal, setup.beam
    dtype, device = det.pix0.dtype, det.pix0.device
    stale_zero = setup.reproduces("phi0-stale-rotation")
    phis = phi_angles(_scalar(cr.phi0), _scalar(cr.phistep), cr.phisteps)
    normal, first = phi_rotation_plan([float(p) for p in phis], stale_zero=stale_zero)
    o_normal = orientations(setup, normal)
    o_first = orientations(setup, first) if first != normal else None
    J, M = o_normal.shape[:2]

    def rows(o: torch.Tensor) -> torch.Tensor:
        return o.permute(2, 0, 1, 3).reshape(3, J * M, 3)

    s = setup.sampling
    return _Plan(
        setup=setup, dtype=dtype, device=device,
        cell_normal=rows(o_normal), cell_first=None if o_first is None else rows(o_first),
        orient_normal=o_normal, orient_first=o_first, n_phi=J, n_mos=M,
        incident=beam.incident.to(dtype=dtype, device=device),
        wavelengths=beam.wavelengths.to(dtype=dtype, device=device),
        beam_vector=(beam.beam_vector if beam.beam_vector is not None else beam.incident[0]).to(
            dtype=dtype, device=device),
        running_sum=setup.reproduces("oversample-running-sum") and (s.oversample_thick or s.oversample_polar or s.oversample_omega),
        lookup_nearest=_nearest_lookup(),
        tricubic=_tricubic_lookup() if setup.structure_factors.interpolate else None,
    )


def _first_true(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of a (P, K) bool mask: whether any is set, and the index of the first set."""
    return mask.any(1), mask.to(torch.int8).argmax(1)


@dataclass
class _LayerDetail:
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
class _PixelResult:
    value: torch.Tensor                 # (P,) r_e²·fluence·I/steps × factors, before float32
    I: torch.Tensor
    capture: torch.Tensor               # the values of the C's variables after the loops
    polar: torch.Tensor
    omega: torch.Tensor
    cos2theta: torch.Tensor
    any_survive: torch.Tensor
    omega_sum: torch.Tensor
    layers: list[_LayerDetail] = field(default_factory=list)
    first_out_of_range: Optional[torch.Tensor] = None
    first_out_of_range_hkl: Optional[torch.Tensor] = None


def _lattice_factor(setup: SimulationSetup, h, k, l):
    cr = setup.crystal
    if cr.shape == Shape.SQUARE:
        axes = lattice.square_factors(h, k, l, cr.Na, cr.Nb, cr.Nc)
        return axes[0] * axes[1] * axes[2], axes
    if cr.shape == Shape.ROUND:
        return lattice.round_(h, k, l, cr.Na, cr.Nb, cr.Nc, cr.fudge), None
    a_star, b_star, c_star = (v.to(dtype=h.dtype, device=h.device) for v in (cr.a_star, cr.b_star, cr.c_star))
    rad = lattice.reciprocal_radius_sqr(h, k, l, a_star, b_star, c_star, cr.Na, cr.Nb, cr.Nc)
    if cr.shape == Shape.GAUSS:
        return lattice.gauss(rad, cr.Na, cr.Nb, cr.Nc, cr.fudge), None
    return lattice.tophat(rad, cr.Na, cr.Nb, cr.Nc, cr.fudge), None


#: "Interpolate every term of this pixel": larger than any per-pixel term index.
NO_CUTOFF = 2 ** 62


def _structure_factor(plan: _Plan, h, k, l, term_index: Optional[torch.Tensor] = None,
                      cutoff: Optional[torch.Tensor] = None):
    """F_cell per term: nearest lookup, or tricubic for the terms before the interpolation cut-off.

    Interpolation is a run-wide switch that the first out-of-range evaluation turns off for good.
    ``cutoff`` (P,) is each pixel's term index (``term_index``, same shape as h) of that event:
    terms before it interpolate, terms after it take the nearest value, and the failing term
    itself takes the nearest value (C) or default_F (spec). None: no interpolation.
    """
    sf = plan.setup.structure_factors
    h0, k0, l0 = torch.ceil(h - 0.5), torch.ceil(k - 0.5), torch.ceil(l - 0.5)
    nearest = plan.lookup_nearest(sf, h0, k0, l0).to(h.dtype)
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


def _out_of_range(plan: _Plan, h, k, l) -> torch.Tensor:
    sf = plan.setup.structure_factors
    _, in_range = plan.tricubic
    return ~in_range(sf.grid, sf.h_min, sf.k_min, sf.l_min, h, k, l)


@dataclass
class _Layer:
    """Per-(pixel, sub-pixel[, source]) quantities of one thickness layer."""

    pos: torch.Tensor                   # (P, U, 3) m
    R: torch.Tensor                     # (P, U)
    d: torch.Tensor                     # (P, U, 3) unit diffracted direction
    omega: torch.Tensor                 # (P, U) solid angle of each sub-pixel
    capture: torch.Tensor               # (P, U) capture fraction of this layer
    q: torch.Tensor                     # (P, U, S, 3) scattering vectors, m⁻¹
    survive: torch.Tensor               # (P, U, S) passes the dmin cut


def _layer(plan: _Plan, spix: torch.Tensor, fpix: torch.Tensor, t: int) -> _Layer:
    det, beam, smp = plan.setup.detector, plan.setup.beam, plan.setup.sampling
    pos = pixel_positions(spix, fpix, t * det.thickstep, pix0=det.pix0, fdet=det.fdet, sdet=det.sdet,
                          odet=det.odet, pixel_size=det.pixel_size, oversample=det.oversample,
                          curved=det.curved, distance=det.distance, beam_vector=plan.beam_vector)
    R = torch.sqrt((pos * pos).sum(-1))
    d = pos / R[..., None]
    omega = solid_angle(R, det.pixel_size, det.close_distance, det.point_pixel)
    if det.thickness != 0.0 or smp.oversample_thick:
        capture = capture_fraction(d, det.odet, t, det.thickstep, det.mu)
    else:
        capture = torch.ones_like(R)
    q = (d[:, :, None, :] - plan.incident) / plan.wavelengths[:, None]
    if beam.dmin > 0.0:
        # The C drops a (sub-pixel, source) whose resolution 1/(2·stol) is finer than dmin.
        stol = 0.5 * torch.sqrt((q * q).sum(-1))
        survive = ~((stol > 0.0) & (beam.dmin > 0.5 / stol))
    else:
        survive = torch.ones(q.shape[:-1], dtype=torch.bool, device=q.device)
    return _Layer(pos, R, d, omega, capture, q, survive)


def _pick(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (P, K), index (P,) → (P,)."""
    return values.gather(1, index[:, None])[:, 0]


def _miller(plan: _Plan, q: torch.Tensor, first_sweep: Optional[torch.Tensor]):
    """h, k, l (P, U, S, J, M): one matmul per axis; ``first_sweep`` (P, U, S) marks sweeps that
    use the thread-first orientation variant."""
    P, U, S, _ = q.shape
    J, M = plan.n_phi, plan.n_mos
    qf = q.reshape(-1, 3)
    hkl = [torch.matmul(qf, plan.cell_normal[i].T).reshape(P, U, S, J, M) for i in range(3)]
    if first_sweep is not None:
        q_sel = q[first_sweep]
        hkl = [x.index_put((first_sweep,), torch.matmul(q_sel, plan.cell_first[i].T).reshape(-1, J, M))
               for i, x in enumerate(hkl)]
    return hkl


def _accumulate(plan: _Plan, I: torch.Tensor, x: torch.Tensor, m: Optional[torch.Tensor],
                active: torch.Tensor) -> torch.Tensor:
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


def _evaluate(plan: _Plan, spix: torch.Tensor, fpix: torch.Tensor,
              first_flag: Optional[torch.Tensor] = None, detail: bool = False,
              interp_cutoff: Optional[torch.Tensor] = None, probe: bool = False) -> _PixelResult:
    """Render a batch of pixels (P,) completely: all layers, sub-pixels, sources, φ, domains.

    first_flag (P,): pixels that are their thread's first evaluation (stale-φ variant).
    interp_cutoff (P,): see ``_structure_factor``. probe: only find, per pixel, the index of the
    first term whose interpolation stencil leaves the grid (``first_out_of_range``).

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

    I = torch.full((P,), smp.water_I_bg, dtype=dtype, device=device)
    pending = first_flag.clone() if (first_flag is not None and plan.cell_first is not None) else None
    polar_init = torch.full((P,), 1.0 if beam.nopolar else 0.0, dtype=dtype, device=device)
    polar_first = polar_last = polar_init
    polar_found = torch.zeros(P, dtype=torch.bool, device=device)
    any_survive = torch.zeros(P, dtype=torch.bool, device=device)
    omega_first = capture_last = omega_last = cos2 = None
    omega_sum = torch.zeros(P, dtype=dtype, device=device)
    first_oor = torch.full((P,), NO_CUTOFF, dtype=torch.long, device=device)
    first_oor_hkl = torch.zeros((P, 3), dtype=dtype, device=device)
    layers: list[_LayerDetail] = []

    for t in range(max(1, det.thicksteps)):
        ly = _layer(plan, spix, fpix, t)
        if omega_first is None:
            omega_first = ly.omega[:, 0]
        omega_used = ly.omega if oo else omega_first[:, None].expand(P, U)
        omega_sum = omega_sum + omega_used.sum(1)
        omega_last = omega_used[:, -1]
        capture_last = ly.capture[:, -1] if ot else ly.capture[:, 0]
        cos2 = (plan.incident[-1] * ly.d[:, -1]).sum(-1)

        flat_survive = ly.survive.reshape(P, U * S)
        layer_any, first_idx = _first_true(flat_survive)
        any_survive = any_survive | layer_any
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
        h, k, l = _miller(plan, ly.q, first_sweep)
        f_latt, axes = _lattice_factor(setup, h, k, l)
        # Terms that reach the F_cell lookup (the C skips zero lattice factors unless water).
        active = ly.survive[..., None, None] & ((f_latt != 0.0) | water)

        term_index = None
        if plan.tricubic is not None and (probe or interp_cutoff is not None):
            term_index = (t * n_terms + torch.arange(n_terms, device=device)).reshape(1, U, S, J, M)
        if probe:
            oor = (_out_of_range(plan, h, k, l) & active).reshape(P, -1)
            hit, idx = _first_true(oor)
            new = hit & (first_oor == NO_CUTOFF)
            first_oor = torch.where(new, idx + t * n_terms, first_oor)
            hkl_at = torch.stack([_pick(x.reshape(P, -1), idx) for x in (h, k, l)], 1)
            first_oor_hkl = torch.where(new[:, None], hkl_at, first_oor_hkl)
            continue

        f_cell = _structure_factor(plan, h, k, l, term_index, interp_cutoff)
        x = f_cell * f_cell * f_latt * f_latt
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
        I = _accumulate(plan, I, x, m, active)

        if detail:
            sweep = first_sweep if first_sweep is not None else torch.zeros_like(ly.survive)
            layers.append(_LayerDetail(ly.pos, ly.R, ly.d, omega_used, ly.q, ly.survive, sweep,
                                       h, k, l, axes, f_latt, f_cell))

    if probe:
        return _PixelResult(value=I, I=I, capture=I, polar=I, omega=I, cos2theta=I,
                            any_survive=any_survive, omega_sum=omega_sum, first_out_of_range=first_oor,
                            first_out_of_range_hkl=first_oor_hkl)
    polar_final = polar_first if compute_polar else polar_init
    value = R_E_SQR * beam.fluence * I / setup.steps
    if not ot:
        value = value * capture_last
    if not op:
        value = value * polar_final
    if not oo:
        value = value * omega_first
    return _PixelResult(
        value=value, I=I, capture=capture_last, polar=polar_last if op else polar_final,
        omega=omega_last if oo else omega_first, cos2theta=cos2, any_survive=any_survive,
        omega_sum=omega_sum, layers=layers)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InterpolationStop:
    """The evaluation whose tricubic stencil left the grid and switched interpolation off."""

    spixel: int
    fpixel: int
    h: float
    k: float
    l: float

    def warning_lines(self) -> tuple[str, str]:
        """The C's two warnings; the second has no newline, so the next line is glued to it."""
        h0, k0, l0 = (math.ceil(v - 0.5) for v in (self.h, self.k, self.l))
        return ("WARNING: out of range for three point interpolation: h,k,l,h0,k0,l0: %g,%g,%g,%d,%d,%d "
                % (self.h, self.k, self.l, h0, k0, l0),
                "WARNING: further warnings will not be printed! ")


@dataclass
class RenderResult:
    image: torch.Tensor          # (spixels, fpixels) values before the float32 cast (setup dtype)
    float_image: torch.Tensor    # (spixels, fpixels) float32, as the C stores it
    rendered: torch.Tensor       # (spixels, fpixels) bool: pixels inside ROI and mask
    trace: list[str]             # TRACE_PY lines of the traced pixel (empty when none)
    stats: ImageStats
    omega_sum: float             # Σ ω over rendered pixels × layers × sub-pixels (solid-angle line)
    thread_first_pixels: list[tuple[int, int]] = field(default_factory=list)
    interpolation_stop: Optional["InterpolationStop"] = None


def _any_survive(plan: _Plan, spix: torch.Tensor, fpix: torch.Tensor) -> torch.Tensor:
    """(P,) whether any (layer, sub-pixel, source) of each pixel passes the dmin cut."""
    det, beam = plan.setup.detector, plan.setup.beam
    out = torch.ones(spix.shape, dtype=torch.bool, device=plan.device)
    if beam.dmin <= 0.0:
        return out
    out = ~out
    for t in range(max(1, det.thicksteps)):
        out = out | _layer(plan, spix, fpix, t).survive.reshape(spix.numel(), -1).any(1)
    return out


def rendered_mask(setup: SimulationSetup) -> torch.Tensor:
    det = setup.detector
    fmin, fmax, smin, smax = det.roi
    s = torch.arange(det.spixels, device=det.pix0.device)[:, None]
    f = torch.arange(det.fpixels, device=det.pix0.device)[None, :]
    inside = (f >= fmin) & (f <= fmax) & (s >= smin) & (s <= smax)
    if det.mask is not None:
        inside = inside & det.mask.to(device=inside.device, dtype=torch.bool)
    return inside


def _chunk_rows(setup: SimulationSetup, chunk_pixels: Optional[int], memory_budget_bytes: Optional[int]) -> int:
    det = setup.detector
    if chunk_pixels is None:
        terms_per_pixel = max(1, setup.steps)
        elem = torch.finfo(det.pix0.dtype).bits // 8
        budget = memory_budget_bytes or DEFAULT_MEMORY_BUDGET
        per_term = BYTES_PER_TERM_F64 * elem / 8
        if setup.structure_factors.interpolate:
            per_term *= 10        # the tricubic 4x4x4 stencils
        chunk_pixels = max(1, int(budget // (terms_per_pixel * per_term)))
    return max(1, chunk_pixels // max(1, det.fpixels))


def _thread_first_flags(plan: _Plan, ss: torch.Tensor, ff: torch.Tensor, blocks: list[tuple[int, int]],
                        started: list[bool], found: list[tuple[int, int]]) -> torch.Tensor:
    """Flag, in this chunk, the first pixel of each not yet started thread block that passes dmin.

    Updates ``started`` and appends the flagged (slow, fast) to ``found``.
    """
    flags = torch.zeros(ss.shape, dtype=torch.bool, device=plan.device)
    survives = _any_survive(plan, ss, ff)
    for b, (b0, b1) in enumerate(blocks):
        if started[b]:
            continue
        cand = torch.nonzero((ss >= b0) & (ss < b1) & survives)
        if cand.numel():
            i = int(cand[0, 0])
            flags[i] = True
            started[b] = True
            found.append((int(ss[i]), int(ff[i])))
    return flags


def render(setup: SimulationSetup, *, chunk_pixels: int | None = None,
           memory_budget_bytes: int | None = None) -> RenderResult:
    """Render the whole detector (chunks of rows) and the traced pixel's trace lines.

    chunk_pixels: pixels per batch (rounded down to whole rows, at least one row); by default it
    follows from memory_budget_bytes (default 64 MiB: small chunks stay in cache and run faster)
    and the terms per pixel, so memory does not grow with the detector.
    """
    det = setup.detector
    plan = _make_plan(setup)
    rendered = rendered_mask(setup)
    rows_per_chunk = _chunk_rows(setup, chunk_pixels, memory_budget_bytes)

    track_first = plan.cell_first is not None
    blocks = thread_row_blocks(det.spixels, setup.c_threads)
    started = [False] * len(blocks)
    thread_first: list[tuple[int, int]] = []
    interpolating = plan.tricubic is not None
    interpolation_stop = None
    cutoffs = (torch.full((det.spixels, det.fpixels), -1, dtype=torch.long, device=plan.device)
               if interpolating else None)

    s_all, f_all, v_all = [], [], []
    omega_sum = torch.zeros((), dtype=plan.dtype, device=plan.device)
    for r0 in range(0, det.spixels, rows_per_chunk):
        r1 = min(det.spixels, r0 + rows_per_chunk)
        ss, ff = torch.nonzero(rendered[r0:r1], as_tuple=True)
        if ss.numel() == 0:
            continue
        ss = ss + r0
        first_flag = None
        if track_first and not all(started):
            first_flag = _thread_first_flags(plan, ss, ff, blocks, started, thread_first)
        cutoff = None
        if cutoffs is not None:
            cutoff = torch.full(ss.shape, NO_CUTOFF if interpolating else -1, dtype=torch.long,
                                device=plan.device)
            if interpolating:
                probe = _evaluate(plan, ss, ff, first_flag, probe=True)
                found = probe.first_out_of_range
                hit = torch.nonzero(found < NO_CUTOFF)
                if hit.numel():
                    i = int(hit[0, 0])
                    cutoff[i] = found[i]
                    cutoff[i + 1:] = -1
                    interpolating = False
                    interpolation_stop = InterpolationStop(
                        int(ss[i]), int(ff[i]), *(float(v) for v in probe.first_out_of_range_hkl[i]))
            cutoffs[ss, ff] = cutoff
        res = _evaluate(plan, ss, ff, first_flag, interp_cutoff=cutoff)
        s_all.append(ss)
        f_all.append(ff)
        v_all.append(res.value)
        omega_sum = omega_sum + res.omega_sum.sum()

    image = torch.zeros((det.spixels, det.fpixels), dtype=plan.dtype, device=plan.device)
    if s_all:
        image = image.index_put((torch.cat(s_all), torch.cat(f_all)), torch.cat(v_all))
    float_image = image.detach().to(torch.float32)

    trace: list[str] = []
    if setup.trace_pixel is not None:
        ts, tf = setup.trace_pixel
        if 0 <= ts < det.spixels and 0 <= tf < det.fpixels and bool(rendered[ts, tf]):
            trace = trace_pixel_lines(plan, ts, tf, first=(ts, tf) in thread_first,
                                      stored=float(float_image[ts, tf]),
                                      interp_cutoff=None if cutoffs is None else int(cutoffs[ts, tf]))
    stats = image_stats(float_image, rendered, det.roi, det.pixel_size, det.oversample)
    return RenderResult(image=image, float_image=float_image, rendered=rendered, trace=trace,
                        stats=stats, omega_sum=float(omega_sum.detach()), thread_first_pixels=thread_first,
                        interpolation_stop=interpolation_stop)


def simulate(setup: SimulationSetup, **kwargs) -> torch.Tensor:
    """Convenience: just the image (setup dtype, before the float32 cast)."""
    return render(setup, **kwargs).image


# ---------------------------------------------------------------------------------------------
# Trace of one pixel
# ---------------------------------------------------------------------------------------------

def _f(x: torch.Tensor) -> list[float]:
    return [float(v) for v in x.detach().reshape(-1)]


def trace_pixel_lines(plan: _Plan, spixel: int, fpixel: int, *, first: bool = False,
                      stored: Optional[float] = None, interp_cutoff: Optional[int] = None) -> list[str]:
    """TRACE_PY lines for one pixel, in the C's order and repetition (see engine.trace)."""
    setup = plan.setup
    det, beam, cr, smp = setup.detector, setup.beam, setup.crystal, setup.sampling
    device = plan.device
    with torch.no_grad():
        res = _evaluate(plan, torch.tensor([spixel], device=device), torch.tensor([fpixel], device=device),
                        first_flag=torch.tensor([first], device=device), detail=True,
                        interp_cutoff=None if interp_cutoff is None else torch.tensor([interp_cutoff], device=device))
    rec = TraceRecorder()
    phis = phi_angles(_scalar(cr.phi0), _scalar(cr.phistep), cr.phisteps)
    U = det.oversample ** 2
    for layer in res.layers:
        for u in range(U):
            rec.pixel("pix0_vector_meters", *_f(det.pix0))
            rec.pixel("fdet_vec", *_f(det.fdet))
            rec.pixel("sdet_vec", *_f(det.sdet))
            rec.pixel("pixel_pos_meters", *_f(layer.pos[0, u]))
            R = float(layer.R[0, u])
            rec.pixel("R_distance_meters", R)
            rec.pixel("omega_pixel_sr", float(layer.omega[0, u]))
            rec.pixel("close_distance_meters", det.close_distance)
            rec.pixel("obliquity_factor", det.close_distance / R)
            rec.pixel("diffracted_vec", *_f(layer.d[0, u]))
            rec.pixel("incident_vec", *_f(plan.incident[0]))
            lam = float(plan.wavelengths[0])
            rec.pixel("lambda_meters", lam)
            rec.pixel("lambda_angstroms", lam * 1e10)
            rec.pixel("scattering_vec_A_inv", *_f(layer.q[0, u, 0]))
            if not bool(layer.survive[0, u, 0]):
                continue
            orient = plan.orient_first if bool(layer.first_sweep[0, u, 0]) else plan.orient_normal
            for name, vec in zip(("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms"), orient[0, 0]):
                rec.pixel(name, *[v * 1e10 for v in _f(vec)])
            for name, vec in zip(("rot_a_star_A_inv", "rot_b_star_A_inv", "rot_c_star_A_inv"),
                                 (cr.a_star, cr.b_star, cr.c_star)):
                rec.pixel(name, *_f(vec))
            h, k, l = (float(x[0, u, 0, 0, 0]) for x in (layer.h, layer.k, layer.l))
            rec.pixel("hkl_frac", h, k, l)
            rec.pixel("hkl_rounded", *(int(math.ceil(v - 0.5)) for v in (h, k, l)))
            f_latt0 = float(layer.f_latt[0, u, 0, 0, 0])
            if layer.f_latt_axes is not None:
                fa, fb, fc = (float(x[0, u, 0, 0, 0]) for x in layer.f_latt_axes)
                rec.pixel("F_latt_a", fa)
                rec.pixel("F_latt_b", fb)
                rec.pixel("F_latt_c", fc)
                rec.pixel("F_latt", f_latt0)
            # The C prints the φ lines inside its φ loop: step 0's before F_cell, the rest after.
            phi_lines = [(j, float(phis[j]) * RTD, float(layer.k[0, u, 0, j, 0]),
                          float(layer.f_latt_axes[1][0, u, 0, j, 0]), float(layer.f_latt[0, u, 0, j, 0]))
                         for j in range(plan.n_phi)] if layer.f_latt_axes is not None else []
            for line in phi_lines[:1]:
                rec.phi(*line)
            if not (f_latt0 == 0.0 and smp.water_I_bg == 0.0):
                rec.pixel("F_cell", float(layer.f_cell[0, u, 0, 0, 0]))
            for line in phi_lines[1:]:
                rec.phi(*line)
    value = float(res.value[0])
    rec.pixel("I_before_scaling", float(res.I[0]))
    rec.pixel("r_e_meters", math.sqrt(R_E_SQR))
    rec.pixel("r_e_sqr", R_E_SQR)
    rec.pixel("fluence_photons_per_m2", beam.fluence)
    rec.pixel("steps", int(setup.steps))
    rec.pixel("oversample_thick", int(smp.oversample_thick))
    rec.pixel("oversample_polar", int(smp.oversample_polar))
    rec.pixel("oversample_omega", int(smp.oversample_omega))
    rec.pixel("capture_fraction", float(res.capture[0]))
    rec.pixel("polar", float(res.polar[0]))
    rec.pixel("omega_pixel", float(res.omega[0]))
    rec.pixel("cos_2theta", float(res.cos2theta[0]))
    rec.pixel("I_pixel_final", value)
    rec.pixel("floatimage_accumulated",
              stored if stored is not None else float(torch.tensor(value, dtype=torch.float32)))
    return rec.lines
