"""The rendering driver: a resolved ``SimulationSetup`` → the float image the C writes.

Per pixel the C loops over thickness layers, sub-pixels, sources, φ steps and mosaic domains and
sums F_cell²·F_latt², then scales once by r_e²·fluence/steps and by the cached capture fraction,
polarization and solid angle. The work is split by job:

* ``engine.render.pixel_physics``: pure per-pixel physics (positions, ω, absorption, polarization);
* ``engine.render.eval_order``: the C's evaluation order (φ rotation plan, thread blocks, ROI/mask);
* ``engine.render.carry_state``: what a pixel inherits from earlier evaluations in c-parity (thread-first
  pixels for ``phi0-stale-rotation``, the interpolation stop), found without rendering;
* ``engine.render.kernel``: one batch of pixels, all terms, the final scaling;
* ``engine.render.chunking``: batch size from the memory budget;
* ``engine.outputs.pixel_trace``: the traced pixel's TRACE_PY lines;
* ``engine.render.trace_only``: ``render_trace_only``, the traced pixel alone.

Three things depend on the C's evaluation order, and c-parity reproduces each as a fixed
function of that order (``engine.config.defects``):

* ``phi0-stale-rotation``: a φ step equal to 0 reuses the last rotation the thread computed.
  Every sweep over φ is the same list of angles, so the rotation a zero step sees is fixed, except
  in the first sweep of each thread, which still holds the unrotated cell.
* ``oversample-running-sum``: with an ``-oversample_*`` flag the C multiplies the running sum by
  the factor after each term; the closed form is I_bg·Πm + Σ x_t·Π_{s≥t} m_s.
* Interpolation is one run-wide switch, turned off for good by the first evaluation whose
  tricubic stencil leaves the grid.

Threads: the render uses as many CPU threads as torch is set to (``torch.set_num_threads`` /
OMP_NUM_THREADS), one batch of rows per thread (``engine.render.chunking.map_batches``); the C's
thread count that c-parity reproduces is ``setup.c_threads`` and is unrelated.
"""
from __future__ import annotations

import contextlib

import torch

from engine.render.carry_state import (find_interpolation_stop, first_flags, interpolation_cutoffs,
                                thread_first_pixels)
from engine.render.chunking import BYTES_PER_TERM_F64, DEFAULT_MEMORY_BUDGET, map_batches, rows_per_chunk  # noqa: F401
from engine.config.model import SimulationSetup
from engine.render.eval_order import (orientations, phi_angles, phi_rotation_plan, rendered_in_rows,  # noqa: F401
                               rendered_mask, thread_row_blocks)
from engine.render.kernel import NO_CUTOFF, KernelPlan, evaluate, make_plan  # noqa: F401
from engine.render.pixel_physics import (R_E_SQR, RTD, capture_fraction, pixel_positions,  # noqa: F401
                                  polarization_factor, rotate_about_axis, solid_angle, subpixel_grid)
from engine.outputs.pixel_trace import trace_pixel_lines, traced_pixel  # noqa: F401
from engine.render.result import InterpolationStop, RenderResult  # noqa: F401
from engine.outputs.statistics import image_stats

__all__ = ["render", "render_trace_only", "simulate", "RenderResult", "InterpolationStop"]


def _grad_context(plan: KernelPlan):
    return torch.no_grad() if plan.fast else contextlib.nullcontext()


def render(setup: SimulationSetup, *, chunk_pixels: int | None = None,
           memory_budget_bytes: int | None = None) -> RenderResult:
    """Render the whole detector (batches of rows) and the traced pixel's trace lines.

    chunk_pixels: pixels per batch (rounded down to whole rows, at least one row); by default it
    follows from the memory budget (``engine.render.chunking``: memory_budget_bytes, else
    NB_ENGINE_MEMORY_BUDGET, else automatic) and the terms per pixel, so memory does not grow
    with the detector.
    """
    det = setup.detector
    plan = make_plan(setup)
    rendered = rendered_mask(setup)
    rows = rows_per_chunk(setup, chunk_pixels, memory_budget_bytes)
    n_f = det.fpixels

    with _grad_context(plan):
        firsts = thread_first_pixels(plan, rendered, rows)
        stop = find_interpolation_stop(plan, rendered, rows, firsts)
        image = torch.zeros((det.spixels, n_f), dtype=plan.dtype, device=plan.device)

        def batch(r0: int) -> torch.Tensor:
            r1 = min(det.spixels, r0 + rows)
            ss, ff, whole_rows = rendered_in_rows(rendered, r0, r1)
            if ss.numel() == 0:
                return torch.zeros((), dtype=plan.dtype, device=plan.device)
            res = evaluate(plan, ss, ff, first_flags(ss, ff, firsts, n_f),
                           interp_cutoff=interpolation_cutoffs(plan, ss, ff, stop))
            if whole_rows:
                image[r0:r1] = res.value.reshape(r1 - r0, n_f)
            else:
                image[ss, ff] = res.value
            return res.omega_sum.sum()

        sums = map_batches(batch, range(0, det.spixels, rows), device=plan.device, parallel=plan.fast)
        omega_sum = torch.stack(sums).sum() if sums else torch.zeros((), dtype=plan.dtype, device=plan.device)
    float_image = image.detach().to(torch.float32)

    trace: list[str] = []
    if setup.trace_pixel is not None:
        ts, tf = setup.trace_pixel
        if 0 <= ts < det.spixels and 0 <= tf < n_f and bool(rendered[ts, tf]):
            cutoff = interpolation_cutoffs(plan, torch.tensor([ts], device=plan.device),
                                           torch.tensor([tf], device=plan.device), stop)
            trace = trace_pixel_lines(plan, ts, tf, first=(ts, tf) in firsts,
                                      stored=float(float_image[ts, tf]),
                                      interp_cutoff=None if cutoff is None else int(cutoff[0]))
    stats = image_stats(float_image, rendered, det.roi, det.pixel_size, det.oversample)
    return RenderResult(image=image, float_image=float_image, rendered=rendered, trace=trace,
                        stats=stats, omega_sum=float(omega_sum.detach()), thread_first_pixels=firsts,
                        interpolation_stop=None if stop is None else stop[2])


def simulate(setup: SimulationSetup, **kwargs) -> torch.Tensor:
    """Convenience: just the image (setup dtype, before the float32 cast)."""
    return render(setup, **kwargs).image


def render_trace_only(setup: SimulationSetup, **kwargs) -> RenderResult:
    """Only the traced pixel (see ``engine.render.trace_only``)."""
    from engine.render.trace_only import render_trace_only as _impl

    return _impl(setup, **kwargs)
