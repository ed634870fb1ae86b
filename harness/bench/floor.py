"""The floor: the least arithmetic one evaluation of the C's formula needs, timed with torch.

One evaluation (one pixel × sub-pixel × source × mosaic domain × φ step × layer term) needs at
least the Miller indices h, k, l (the scattering vector dotted with a, b and c: nine products),
the lattice factor's six sines (sin(π·N·h) and sin(π·h) per axis) and its three divisions, and
the product of the three factors. The floor times exactly that, over as many elements as the
render evaluates, with the render's dtype, device and thread count (run in the render's own
process: harness.bench.probe), in chunks of CHUNK elements. Render seconds over floor seconds
says how close the engine is to that limit.
"""
from __future__ import annotations

import math
import time

import torch

#: Elements per chunk: large enough that per-call costs vanish, small enough for any memory.
CHUNK = 1 << 20


def _one_chunk(s: torch.Tensor, cell: torch.Tensor, n_cells: torch.Tensor) -> torch.Tensor:
    hkl = s @ cell                                   # the h·k·l products
    num = torch.sin(hkl * n_cells)                   # sin(π·N·h): π folded into the inputs
    den = torch.sin(hkl)                             # sin(π·h)
    return (num / den).prod(dim=1)                   # three divisions, the product


def floor_seconds(elements: int, *, dtype: torch.dtype = torch.float64, device: str = "cpu",
                  chunk: int = CHUNK) -> float:
    """Seconds for the floor arithmetic over ``elements`` evaluations (after one warm-up chunk)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    n = max(1, min(chunk, elements))
    s = (torch.rand(n, 3, generator=gen, dtype=torch.float64) + 0.1).to(device=device, dtype=dtype)
    cell = (torch.rand(3, 3, generator=gen, dtype=torch.float64) * math.pi).to(device=device, dtype=dtype)
    n_cells = torch.tensor([5.0, 7.0, 9.0], dtype=dtype, device=device)
    sink = _one_chunk(s, cell, n_cells).sum()        # warm-up: allocations, kernels, thread pool
    _sync(device)
    t0 = time.perf_counter()
    done = 0
    while done < elements:
        m = min(n, elements - done)
        sink = sink + _one_chunk(s[:m], cell, n_cells).sum()
        done += m
    _sync(device)
    return time.perf_counter() - t0


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
