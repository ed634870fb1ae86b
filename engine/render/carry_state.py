"""State a pixel inherits from the evaluations before it in the C's order (c-parity).

* Thread-first pixels (``phi0-stale-rotation``): the first rendered pixel of each thread's block
  of rows that passes dmin sees the unrotated cell at a φ = 0 step in its first sweep.
* The interpolation stop: interpolation is one run-wide switch, turned off for good by the first
  evaluation (single-thread row-major order) whose tricubic stencil leaves the grid. Terms
  before it interpolate, the failing term takes the nearest F (C) or default_F (spec), later
  terms take the nearest F. Finding it needs only h, k, l (and F_latt ≠ 0) of the pixels before,
  never their F_cell or intensity.

Both are found without rendering the frame, so the full render and the trace-only render use the
same functions.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from engine.render.eval_order import rendered_in_rows, thread_row_blocks
from engine.render.kernel import evaluate
from engine.render.plan import KernelPlan
from engine.render.terms import NO_CUTOFF, any_survive
from engine.render.result import InterpolationStop


def thread_first_pixels(plan: KernelPlan, rendered: torch.Tensor, rows_per_chunk: int,
                        until_row: Optional[int] = None) -> list[tuple[int, int]]:
    """(slow, fast) of each thread block's first rendered pixel that passes dmin, block order.

    Empty when the run has no thread-first φ variant (spec mode, or no φ = 0 step). until_row:
    only the blocks that start at or before this row.
    """
    if plan.cell_first is None:
        return []
    setup = plan.setup
    found = []
    for b0, b1 in thread_row_blocks(setup.detector.spixels, setup.c_threads):
        if until_row is not None and b0 > until_row:
            break
        for r0 in range(b0, b1, rows_per_chunk):
            ss, ff, _ = rendered_in_rows(rendered, r0, min(b1, r0 + rows_per_chunk))
            if ss.numel() == 0:
                continue
            hit = torch.nonzero(any_survive(plan, ss, ff))
            if hit.numel():
                i = int(hit[0, 0])
                found.append((int(ss[i]), int(ff[i])))
                break
    return found


def first_flags(ss: torch.Tensor, ff: torch.Tensor, firsts: Sequence[tuple[int, int]],
                n_fast: int) -> Optional[torch.Tensor]:
    """(P,) bool marking the thread-first pixels in a batch; None when there are none in it."""
    if not firsts or ss.numel() == 0:
        return None
    lo, hi = int(ss[0]), int(ss[-1])                 # batches are in row-major order
    if not any(lo <= s <= hi for s, _ in firsts):
        return None
    lin = ss * n_fast + ff
    wanted = torch.tensor([s * n_fast + f for s, f in firsts], device=ss.device, dtype=lin.dtype)
    flags = torch.isin(lin, wanted)
    return flags if bool(flags.any()) else None


def find_interpolation_stop(plan: KernelPlan, rendered: torch.Tensor, rows_per_chunk: int,
                            firsts: Sequence[tuple[int, int]],
                            until: Optional[tuple[int, int]] = None
                            ) -> Optional[tuple[int, int, InterpolationStop]]:
    """The first out-of-range evaluation in row-major order: (pixel's linear index, its term
    index, the stop), or None. until: search only the pixels up to and including this one."""
    if not plan.interpolate:
        return None
    det = plan.setup.detector
    n_f = det.fpixels
    limit = None if until is None else until[0] * n_f + until[1]
    for r0 in range(0, det.spixels, rows_per_chunk):
        if until is not None and r0 > until[0]:
            break
        ss, ff, _ = rendered_in_rows(rendered, r0, min(det.spixels, r0 + rows_per_chunk))
        if limit is not None:
            keep = ss * n_f + ff <= limit
            ss, ff = ss[keep], ff[keep]
        if ss.numel() == 0:
            continue
        probe = evaluate(plan, ss, ff, first_flags(ss, ff, firsts, n_f), probe=True)
        found = probe.first_out_of_range
        hit = torch.nonzero(found < NO_CUTOFF)
        if hit.numel():
            i = int(hit[0, 0])
            s, f = int(ss[i]), int(ff[i])
            stop = InterpolationStop(s, f, *(float(v) for v in probe.first_out_of_range_hkl[i]))
            return s * n_f + f, int(found[i]), stop
    return None


def interpolation_cutoffs(plan: KernelPlan, ss: torch.Tensor, ff: torch.Tensor,
                          stop: Optional[tuple[int, int, InterpolationStop]]) -> Optional[torch.Tensor]:
    """(P,) per-pixel term index of the stop: NO_CUTOFF before it, −1 after (see
    ``kernel.structure_factor``); None when the run does not interpolate."""
    if not plan.interpolate:
        return None
    if stop is None:
        return torch.full(ss.shape, NO_CUTOFF, dtype=torch.long, device=ss.device)
    lin = ss * plan.setup.detector.fpixels + ff
    at, term, _ = stop
    cut = torch.where(lin < at, NO_CUTOFF, -1)
    return torch.where(lin == at, term, cut).to(torch.long)
