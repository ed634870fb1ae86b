"""The C's evaluation order, as plain data: φ rotation plan, thread row blocks, rendered pixels.

The C visits pixels row-major within each OpenMP thread's block of rows; per pixel it loops over
thickness layers, sub-pixels, sources, φ steps and mosaic domains. Two C defects make results
depend on that order (``engine.config.defects``); this module holds the order itself, and
``engine.render.carry_state`` finds the state a pixel inherits from the evaluations before it.
"""
from __future__ import annotations

import torch

from engine.config.model import SimulationSetup
from engine.render.pixel_physics import rotate_about_axis


def scalar(x: float | torch.Tensor) -> float:
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


def rendered_mask(setup: SimulationSetup) -> torch.Tensor:
    """(spixels, fpixels) bool: the pixels the C renders (inside the ROI and the mask)."""
    det = setup.detector
    fmin, fmax, smin, smax = det.roi
    s = torch.arange(det.spixels, device=det.pix0.device)[:, None]
    f = torch.arange(det.fpixels, device=det.pix0.device)[None, :]
    inside = (f >= fmin) & (f <= fmax) & (s >= smin) & (s <= smax)
    if det.mask is not None:
        inside = inside & det.mask.to(device=inside.device, dtype=torch.bool)
    return inside


def rendered_in_rows(rendered: torch.Tensor, r0: int, r1: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(slow, fast) of the rendered pixels of rows [r0, r1) in row-major order, and whether that
    is every pixel of those rows (then the batch maps onto ``image[r0:r1]`` directly)."""
    block = rendered[r0:r1]
    if bool(block.all()):
        n_f = block.shape[1]
        rows = torch.arange(r0, r1, device=block.device)
        cols = torch.arange(n_f, device=block.device)
        return rows.repeat_interleave(n_f), cols.repeat(r1 - r0), True
    ss, ff = torch.nonzero(block, as_tuple=True)
    return ss + r0, ff, False
