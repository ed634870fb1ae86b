"""The traced pixel's TRACE_PY lines: one pixel evaluated alone, every intermediate printed in
the C's order and repetition (per layer and sub-pixel; φ lines for source 0, domain 0; the
per-source lines of source ``TRACED_SOURCE``, φ step 0, domain 0)."""
from __future__ import annotations

import math
from typing import Optional

import torch

from engine.config.c_numbers import c_ceil_int, c_div
from engine.outputs.trace import TRACED_SOURCE, TraceRecorder
from engine.render.eval_order import phi_angles, scalar
from engine.render.kernel import LayerDetail, PixelResult, evaluate
from engine.render.pixel_physics import R_E_SQR, RTD, dot3
from engine.render.plan import KernelPlan


def _f(x: torch.Tensor) -> list[float]:
    return [float(v) for v in x.detach().reshape(-1)]


def _reaches_f_cell(plan: KernelPlan, layer: LayerDetail, u: int, source: int) -> bool:
    """Whether the C gets to the F_cell lookup for (sub-pixel u, source, φ 0, domain 0): the term
    passes dmin, and its lattice factor is non-zero unless there is water background."""
    if not bool(layer.survive[0, u, source]):
        return False
    return not (float(layer.f_latt[0, u, source, 0, 0]) == 0.0 and plan.setup.sampling.water_I_bg == 0.0)


def _geometry_lines(rec: TraceRecorder, plan: KernelPlan, layer: LayerDetail, u: int) -> None:
    """Sub-pixel u's position, solid angle and scattering vector (source 0)."""
    det = plan.setup.detector
    rec.pixel("pix0_vector_meters", *_f(det.pix0))
    rec.pixel("fdet_vec", *_f(det.fdet))
    rec.pixel("sdet_vec", *_f(det.sdet))
    rec.pixel("pixel_pos_meters", *_f(layer.pos[0, u]))
    R = float(layer.R[0, u])
    rec.pixel("R_distance_meters", R)
    rec.pixel("omega_pixel_sr", float(layer.omega[0, u]))
    rec.pixel("close_distance_meters", det.close_distance)
    rec.pixel("obliquity_factor", c_div(det.close_distance, R))   # R = 0: inf, as the C prints
    rec.pixel("diffracted_vec", *_f(layer.d[0, u]))
    rec.pixel("incident_vec", *_f(plan.incident[0]))
    lam = float(plan.wavelengths[0])
    rec.pixel("lambda_meters", lam)
    rec.pixel("lambda_angstroms", lam * 1e10)
    rec.pixel("scattering_vec_A_inv", *_f(layer.q[0, u, 0]))


def _term_lines(rec: TraceRecorder, plan: KernelPlan, layer: LayerDetail, u: int, phis: torch.Tensor) -> None:
    """Source 0's term at φ step 0, domain 0: rotated cell, hkl, lattice factors, F_cell, and the
    φ lines (the C prints step 0's before F_cell and the rest after, inside its φ loop)."""
    cr = plan.setup.crystal
    orient = plan.orient_first if bool(layer.first_sweep[0, u, 0]) else plan.orient_normal
    for name, vec in zip(("rot_a_angstroms", "rot_b_angstroms", "rot_c_angstroms"), orient[0, 0]):
        rec.pixel(name, *[v * 1e10 for v in _f(vec)])
    for name, vec in zip(("rot_a_star_A_inv", "rot_b_star_A_inv", "rot_c_star_A_inv"),
                         (cr.a_star, cr.b_star, cr.c_star)):
        rec.pixel(name, *_f(vec))
    h, k, l = (float(x[0, u, 0, 0, 0]) for x in (layer.h, layer.k, layer.l))
    rec.pixel("hkl_frac", h, k, l)
    rec.pixel("hkl_rounded", *(c_ceil_int(v - 0.5) for v in (h, k, l)))
    phi_lines = []
    if layer.f_latt_axes is not None:
        for name, x in zip(("F_latt_a", "F_latt_b", "F_latt_c"), layer.f_latt_axes):
            rec.pixel(name, float(x[0, u, 0, 0, 0]))
        rec.pixel("F_latt", float(layer.f_latt[0, u, 0, 0, 0]))
        phi_lines = [(j, float(phis[j]) * RTD, float(layer.k[0, u, 0, j, 0]),
                      float(layer.f_latt_axes[1][0, u, 0, j, 0]), float(layer.f_latt[0, u, 0, j, 0]))
                     for j in range(plan.n_phi)]
    for line in phi_lines[:1]:
        rec.phi(*line)
    if _reaches_f_cell(plan, layer, u, 0):
        rec.pixel("F_cell", float(layer.f_cell[0, u, 0, 0, 0]))
    for line in phi_lines[1:]:
        rec.phi(*line)


def _source_lines(rec: TraceRecorder, plan: KernelPlan, res: PixelResult, layer: LayerDetail, u: int,
                  source: int = TRACED_SOURCE) -> None:
    """The per-source lines of one source's term (φ step 0, domain 0) of sub-pixel u, printed
    where the C prints them: after that term's F_cell lookup, so only if it gets there."""
    if source >= plan.incident.shape[0] or not _reaches_f_cell(plan, layer, u, source):
        return
    f_cell = float(layer.f_cell[0, u, source, 0, 0])
    f_latt = float(layer.f_latt[0, u, source, 0, 0])
    # The C's cached polarization, or this term's own when it is recomputed per term.
    per_term = plan.setup.sampling.oversample_polar and layer.polar is not None
    polar = float(layer.polar[0, u, source]) if per_term else float(res.polar[0])
    values = (("F_cell", f_cell), ("F_latt", f_latt), ("F_cell_squared", f_cell * f_cell),
              ("F_latt_squared", f_latt * f_latt), ("I_contribution", f_cell * f_cell * f_latt * f_latt),
              ("polar", polar), ("cos2theta", float(dot3(plan.incident[source], layer.d[0, u]))),
              ("lambda_angstroms", float(plan.wavelengths[source]) * 1e10), ("source_index", source))
    for key, value in values:
        rec.source(source, key, value)


def _scaling_lines(rec: TraceRecorder, plan: KernelPlan, res: PixelResult, stored: Optional[float]) -> None:
    """After all loops: the sum, the scale factors and the pixel's value."""
    setup, smp = plan.setup, plan.setup.sampling
    value = float(res.value[0])
    rec.pixel("I_before_scaling", float(res.I[0]))
    rec.pixel("r_e_meters", math.sqrt(R_E_SQR))
    rec.pixel("r_e_sqr", R_E_SQR)
    rec.pixel("fluence_photons_per_m2", setup.beam.fluence)
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


def traced_pixel(plan: KernelPlan, spixel: int, fpixel: int, *, first: bool = False,
                 stored: Optional[float] = None,
                 interp_cutoff: Optional[int] = None) -> tuple[list[str], torch.Tensor]:
    """Evaluate one pixel alone with every intermediate kept: (TRACE_PY lines in the C's order
    and repetition, see engine.outputs.trace; the pixel's value before the float32 cast).

    first: the pixel is its thread's first evaluation (stale-φ variant); interp_cutoff: its
    interpolation cut-off (``engine.render.carry_state``); stored: the float32 value the image holds
    (default: this evaluation's value, cast).
    """
    det, cr, device = plan.setup.detector, plan.setup.crystal, plan.device
    with torch.no_grad():
        res = evaluate(plan, torch.tensor([spixel], device=device), torch.tensor([fpixel], device=device),
                       first_flag=torch.tensor([first], device=device), detail=True,
                       interp_cutoff=None if interp_cutoff is None else torch.tensor([interp_cutoff], device=device))
    rec = TraceRecorder()
    phis = phi_angles(scalar(cr.phi0), scalar(cr.phistep), cr.phisteps)
    for layer in res.layers:
        for u in range(det.oversample ** 2):
            _geometry_lines(rec, plan, layer, u)
            if bool(layer.survive[0, u, 0]):
                _term_lines(rec, plan, layer, u, phis)
            _source_lines(rec, plan, res, layer, u)
    _scaling_lines(rec, plan, res, stored)
    return rec.lines, res.value[0]


def trace_pixel_lines(plan: KernelPlan, spixel: int, fpixel: int, *, first: bool = False,
                      stored: Optional[float] = None, interp_cutoff: Optional[int] = None) -> list[str]:
    """TRACE_PY lines for one pixel, in the C's order and repetition (see engine.outputs.trace)."""
    return traced_pixel(plan, spixel, fpixel, first=first, stored=stored, interp_cutoff=interp_cutoff)[0]
