"""How many detector rows one kernel batch holds: from a memory budget and the terms per pixel.

The budget is, in order: the caller's ``memory_budget_bytes``, the environment variable
``NB_ENGINE_MEMORY_BUDGET`` (bytes, or with a K/M/G suffix, powers of 1024), or automatic. The
automatic budget on the CPU is 32 MiB, or an eighth of the available memory if that is less
(with freed memory kept in the process, ``engine.render.allocator``, 32 MiB rendered the 256x256
cases 10-25% faster than 16 MiB, fewer batches each paying the per-operation cost, and the full
frame as fast; before that, 16 MiB had beaten 4 MiB and 64 MiB-1 GiB). On CUDA it is a
quarter of the free device memory, at most 1 GiB (the GPU wants large batches). The budget sizes
the working set of a batch, not the image, which is always allocated whole.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional, TypeVar

import torch

from engine.config.model import SimulationSetup
from engine.config.options import UsageError

#: Working-set bytes per (pixel, sub-pixel, source, φ, mosaic) term of a batch in float64 (scaled
#: by the element size for other dtypes; ×10 with tricubic interpolation for its 4×4×4 stencils).
BYTES_PER_TERM_F64 = 64
#: ... plus per pixel (positions, directions, scattering vectors, factors), per sub-pixel·source.
BYTES_PER_PIXEL_F64 = 320
#: With N worker threads, at least this many batches per thread (load balance).
MIN_BATCHES_PER_THREAD = 4
CPU_BUDGET = 32 * 1024 ** 2
CUDA_BUDGET_MAX = 1024 ** 3
ENV_BUDGET = "NB_ENGINE_MEMORY_BUDGET"
T = TypeVar("T")
R = TypeVar("R")

_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_bytes(text: str) -> int:
    """'67108864', '64M', '1.5G', '512 KiB' → bytes (powers of 1024)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise ValueError(f"{ENV_BUDGET}={text!r}: expected bytes, e.g. 67108864, 64M or 1G")
    return max(1, int(float(m.group(1)) * _UNITS[m.group(2)]))


def available_memory(device: torch.device | str | None = None) -> Optional[int]:
    """Bytes free for the kernel: free device memory on CUDA, MemAvailable on the host."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # noqa: BLE001 - no driver / not initialised
            return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget(device: torch.device | str | None = None, override: Optional[int] = None) -> int:
    """The working-set budget of one batch, in bytes (see the module docstring)."""
    if override:
        return int(override)
    env = os.environ.get(ENV_BUDGET, "").strip()
    if env:
        return parse_bytes(env)
    device = torch.device(device or "cpu")
    avail = available_memory(device)
    if device.type == "cuda":
        return min(CUDA_BUDGET_MAX, avail // 4) if avail else CUDA_BUDGET_MAX // 4
    return min(CPU_BUDGET, avail // 8) if avail else CPU_BUDGET


def terms_per_pixel(setup: SimulationSetup) -> int:
    """(sub-pixel, source, φ, mosaic) terms of one pixel and layer: the kernel's batch width."""
    return max(1, setup.steps)


def bytes_per_pixel(setup: SimulationSetup) -> float:
    """Working-set bytes of one pixel in a kernel batch (its terms, and its per-sub-pixel·source
    vectors), for the set-up's dtype."""
    det = setup.detector
    elem = torch.finfo(det.pix0.dtype).bits // 8
    per_term = BYTES_PER_TERM_F64 * elem / 8
    if setup.structure_factors.interpolate:
        per_term *= 10        # the tricubic 4x4x4 stencils
    n_src = int(setup.beam.incident.shape[0]) * det.oversample ** 2
    return terms_per_pixel(setup) * per_term + n_src * BYTES_PER_PIXEL_F64 * elem / 8


def rows_per_chunk(setup: SimulationSetup, chunk_pixels: Optional[int] = None,
                   memory_budget_bytes: Optional[int] = None) -> int:
    """Rows per batch: ``chunk_pixels`` rounded down to whole rows (at least one), or else what
    the memory budget allows."""
    det = setup.detector
    if chunk_pixels is not None:
        return max(1, chunk_pixels // max(1, det.fpixels))
    budget = memory_budget(det.pix0.device, memory_budget_bytes)
    rows = max(1, int(budget // bytes_per_pixel(setup)) // max(1, det.fpixels))
    threads = torch.get_num_threads() if det.pix0.device.type == "cpu" else 1
    if threads > 1 and not memory_budget_bytes:
        rows = min(rows, max(1, -(-det.spixels // (MIN_BATCHES_PER_THREAD * threads))))
    return rows


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def check_memory(setup: SimulationSetup, available: Optional[int] = None) -> None:
    """Refuse, before anything is allocated, a render whose smallest working set cannot fit.

    That is the image (the set-up's dtype, its float32 copy and the rendered-pixel mask) plus one
    batch of one row, the smallest batch the render makes. ``available``: bytes the device has
    (default: ``available_memory``; unknown: no check). Raises ``UsageError`` naming the size.
    """
    det = setup.detector
    available = available_memory(det.pix0.device) if available is None else available
    if not available:
        return
    elem = torch.finfo(det.pix0.dtype).bits // 8
    pixels = det.spixels * det.fpixels
    image = pixels * (elem + 4 + 1)
    row = det.fpixels * bytes_per_pixel(setup)
    if image + row <= available:
        return
    if image >= row:
        what = (f"the {det.fpixels}x{det.spixels} detector ({pixels:.3g} pixels, -detpixels) needs "
                f"{_size(image)} for its image")
        fix = "fewer pixels (-detpixels, -detsize) or a larger -pixel"
    else:
        what = (f"one row of {det.fpixels} pixels at {setup.steps:.3g} terms per pixel "
                f"(-oversample {det.oversample}: {det.oversample ** 2:.3g} sub-pixels) needs {_size(row)}")
        fix = "a smaller -oversample (or fewer sources, phi steps, mosaic domains)"
    raise UsageError(f"{what}, more than the {_size(available)} of memory available on "
                     f"{det.pix0.device}; use {fix}")


def map_batches(fn: Callable[[T], R], items: Iterable[T], *, device: torch.device | str | None = None,
                parallel: bool = True) -> list[R]:
    """``[fn(item) for item in items]``, in order, using the caller's torch thread count.

    On the CPU with N > 1 threads the batches run on N worker threads (torch releases the GIL
    inside each operation), each working single-threaded: one barrier per batch instead of one
    per tensor operation, which keeps the speed-up when the machine is shared (a descheduled
    OpenMP thread stalls every barrier). The caller's setting is restored afterwards. One thread,
    CUDA, or ``parallel=False`` (autograd): a plain loop.
    """
    items = list(items)
    n = torch.get_num_threads()
    if not parallel or n <= 1 or len(items) <= 1 or torch.device(device or "cpu").type != "cpu":
        return [fn(item) for item in items]

    def single_threaded() -> None:
        torch.set_num_threads(1)          # this worker thread's OpenMP setting

    grad = torch.is_grad_enabled()

    def call(item: T) -> R:
        with torch.set_grad_enabled(grad):  # grad mode is thread-local
            return fn(item)

    try:
        with ThreadPoolExecutor(max_workers=min(n, len(items)), initializer=single_threaded) as pool:
            return list(pool.map(call, items))
    finally:
        torch.set_num_threads(n)          # the workers also changed torch's process-wide default
