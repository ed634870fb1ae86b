"""``render_trace_only``: the traced pixel alone, with the state a full render would give it.

A full render is needed for the image, but not for one pixel's trace: the pixel's value depends
only on its own terms plus the c-parity carry-over state (``engine.render.carry_state``):

* whether it is the first rendered, dmin-passing pixel of its thread block (``setup.c_threads``
  blocks of rows), which decides the stale-φ variant of its first sweep — found by scanning the
  block's pixels from its start with the cheap per-pixel dmin test only;
* the interpolation stop — found by checking only h, k, l (and F_latt ≠ 0) of the pixels before
  it in row-major order, never their F_cell or intensity. Only pixels up to the traced one are
  searched: a stop after it does not change it, so ``interpolation_stop`` is reported only when
  it happens at or before the traced pixel (the full render also reports a later one).

The kernel's per-term results do not depend on the batch, so the trace lines and the pixel value
are bit-identical to a full render's. The image holds zeros except the traced pixel; the
statistics describe that image; ``omega_sum`` is the full frame's (per-pixel geometry only).
"""
from __future__ import annotations

import torch

from engine.config.c_numbers import c_sqrt
from engine.render.carry_state import find_interpolation_stop, interpolation_cutoffs, thread_first_pixels
from engine.render.chunking import check_memory, rows_per_chunk
from engine.config.model import SimulationSetup
from engine.render.eval_order import rendered_in_rows, rendered_mask
from engine.render.kernel import omega_sum
from engine.render.plan import make_plan
from engine.outputs.pixel_trace import traced_pixel
from engine.render.result import RenderResult
from engine.render.pixel_physics import solid_angle
from engine.outputs.statistics import image_stats

#: Pixels per batch of the ω pass (geometry only: small per-pixel working set).
OMEGA_CHUNK_PIXELS = 1 << 18


def render_trace_only(setup: SimulationSetup, *, chunk_pixels: int | None = None,
                      memory_budget_bytes: int | None = None) -> RenderResult:
    check_memory(setup)
    det = setup.detector
    plan = make_plan(setup, fast=True)
    rendered = rendered_mask(setup)
    image = torch.zeros((det.spixels, det.fpixels), dtype=plan.dtype, device=plan.device)
    trace: list[str] = []
    firsts: list[tuple[int, int]] = []
    stop = None
    with torch.no_grad():
        target = setup.trace_pixel
        if target is not None:
            ts, tf = target
            if not (0 <= ts < det.spixels and 0 <= tf < det.fpixels and bool(rendered[ts, tf])):
                target = None
        if target is not None:
            rows = rows_per_chunk(setup, chunk_pixels, memory_budget_bytes)
            # Blocks starting after the traced row cannot matter (nor be probed before it).
            firsts = thread_first_pixels(plan, rendered, rows, until_row=ts)
            stop = find_interpolation_stop(plan, rendered, rows, firsts, until=(ts, tf))
            cutoff = interpolation_cutoffs(plan, torch.tensor([ts], device=plan.device),
                                           torch.tensor([tf], device=plan.device), stop)
            trace, value = traced_pixel(plan, ts, tf, first=(ts, tf) in firsts,
                                        interp_cutoff=None if cutoff is None else int(cutoff[0]))
            image[ts, tf] = value
        total = _omega_sum(plan, rendered)
    float_image = image.to(torch.float32)
    stats = image_stats(float_image, rendered, det.roi, det.pixel_size, det.oversample)
    return RenderResult(image=image, float_image=float_image, rendered=rendered, trace=trace,
                        stats=stats, omega_sum=total, thread_first_pixels=firsts,
                        interpolation_stop=None if stop is None else stop[2], trace_only=True)


def _omega_sum(plan, rendered: torch.Tensor) -> float:
    """Σ ω over the rendered pixels, as the full render adds it up (to rounding: it feeds only
    the console's solid-angle line). A flat detector is separable: a pixel's position is a
    row term plus a column term, so whole rows cost a few 2-D passes."""
    det, smp = plan.setup.detector, plan.setup.sampling
    if det.curved:
        return _omega_sum_by_pixel(plan, rendered)
    dtype, device = plan.dtype, plan.device
    o = det.oversample
    U = o * o
    sub = det.pixel_size / o
    n_layers = max(1, det.thicksteps)
    layers = range(n_layers) if smp.oversample_omega else range(1)
    weight = 1 if smp.oversample_omega else n_layers * U     # ω of the first sub-pixel, reused
    subs = range(o) if smp.oversample_omega else range(1)
    rows = max(1, OMEGA_CHUNK_PIXELS // max(1, det.fpixels))
    total = torch.zeros((), dtype=dtype, device=device)
    f_idx = torch.arange(det.fpixels, device=device).to(dtype)
    for r0 in range(0, det.spixels, rows):
        r1 = min(det.spixels, r0 + rows)
        mask = rendered[r0:r1]
        s_idx = torch.arange(r0, r1, device=device).to(dtype)
        for t in layers:
            for sub_s in subs:
                S = sub * (s_idx * o + sub_s) + sub / 2.0
                row = S[:, None] * det.sdet + t * det.thickstep * det.odet + det.pix0      # (R, 3)
                for sub_f in subs:
                    F = sub * (f_idx * o + sub_f) + sub / 2.0
                    col = F[:, None] * det.fdet                                             # (C, 3)
                    r2 = None
                    for c in range(3):
                        x = row[:, c, None] + col[None, :, c]
                        r2 = x * x if r2 is None else r2.add_(x.mul_(x))
                    omega = solid_angle(c_sqrt(r2), det.pixel_size, det.close_distance, det.point_pixel)
                    total = total + torch.where(mask, omega, torch.zeros_like(omega)).sum() * weight
    return float(total)


def _omega_sum_by_pixel(plan, rendered: torch.Tensor) -> float:
    det = plan.setup.detector
    rows = max(1, OMEGA_CHUNK_PIXELS // max(1, det.fpixels))
    total = torch.zeros((), dtype=plan.dtype, device=plan.device)
    for r0 in range(0, det.spixels, rows):
        ss, ff, _ = rendered_in_rows(rendered, r0, min(det.spixels, r0 + rows))
        if ss.numel():
            total = total + omega_sum(plan, ss, ff)
    return float(total)


__all__ = ["render_trace_only"]
