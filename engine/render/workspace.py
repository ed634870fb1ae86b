"""Scratch tensors that the kernel's fast path reuses from batch to batch."""
from __future__ import annotations

import math
import threading

import torch


class Workspace:
    """Scratch tensors reused from batch to batch: fresh multi-megabyte temporaries cost more
    (page faults) than the arithmetic done in them.

    Buffers are per thread, so batches may run concurrently (``engine.render.chunking.map_batches``).
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, name: str, shape, dtype: torch.dtype, device=None) -> torch.Tensor:
        bufs = self._local.__dict__.setdefault("bufs", {})
        n = math.prod(shape)
        buf = bufs.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype or (device is not None and buf.device != torch.device(device)):
            buf = torch.empty(n, dtype=dtype, device=device)
            bufs[name] = buf
        return buf[:n].view(shape)
