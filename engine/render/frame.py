"""``render``: the whole detector in batches of rows, and the traced pixel's trace lines."""
from __future__ import annotations

import contextlib

import torch

from engine.config.model import SimulationSetup
from engine.outputs.pixel_trace import trace_pixel_lines
from engine.outputs.statistics import image_stats
from engine.render.carry_state import (find_interpolation_stop, first_flags, interpolation_cutoffs,
                                       thread_first_pixels)
from engine.render.allocator import keep_freed_memory
from engine.render.chunking import check_memory, map_batches, rows_per_chunk
from engine.render.eval_order import rendered_in_rows, rendered_mask
from engine.render.kernel import evaluate
from engine.render.plan import KernelPlan, make_plan
from engine.render.result import RenderResult


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
    check_memory(setup)
    det = setup.detector
    if det.pix0.device.type == "cpu":
        keep_freed_memory()
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
