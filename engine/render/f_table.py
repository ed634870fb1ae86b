"""The HKL grid as one flat table with a default_F border: F at the nearest node with one gather."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from engine.config.model import StructureFactors
from engine.render.workspace import Workspace


@dataclass(frozen=True)
class FTable:
    """The HKL grid with a one-cell default_F border, flattened: F at any rounded (h, k, l) is
    ``table[Σ clamp(i, lo, hi)·stride + offset]`` (an index off the grid lands in the border)."""

    table: torch.Tensor                 # ((nh+2)(nk+2)(nl+2),) in the kernel dtype
    lo: tuple[int, int, int]            # h_min−1, k_min−1, l_min−1
    hi: tuple[int, int, int]            # h_max+1, ...
    strides: tuple[int, int, int]
    offset: int
    float_index: bool                   # the index arithmetic is exact in the kernel dtype
    index_dtype: torch.dtype


def make_f_table(sf: StructureFactors, dtype: torch.dtype, device) -> Optional[FTable]:
    if sf.grid is None or sf.grid.numel() == 0:
        return None
    grid = sf.grid.to(dtype=dtype, device=device)
    padded = torch.nn.functional.pad(grid[None, None], (1, 1, 1, 1, 1, 1), value=float(sf.default_F))[0, 0]
    nh, nk, nl = padded.shape
    lo = (sf.h_min - 1, sf.k_min - 1, sf.l_min - 1)
    hi = (lo[0] + nh - 1, lo[1] + nk - 1, lo[2] + nl - 1)
    strides = (nk * nl, nl, 1)
    offset = -sum(a * s for a, s in zip(lo, strides))
    bound = sum(max(abs(a), abs(b)) * s for a, b, s in zip(lo, hi, strides)) + abs(offset)
    exact = 2.0 / torch.finfo(dtype).eps        # integers up to this are exact
    return FTable(table=padded.reshape(-1), lo=lo, hi=hi, strides=strides, offset=offset,
                  float_index=bound < exact,
                  index_dtype=torch.int32 if bound < 2 ** 31 else torch.int64)


def table_lookup(ft: FTable, h: torch.Tensor, k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """F at the nearest node, ceil(x − ½) per axis as the C rounds; default_F off the grid."""
    with torch.no_grad():
        flat = None
        for v, lo, hi, stride in zip((h, k, l), ft.lo, ft.hi, ft.strides):
            i = v - 0.5
            i.ceil_().clamp_(lo, hi)
            if not ft.float_index:
                i = i.nan_to_num_(nan=lo).to(torch.int64)
            if flat is None:
                flat = i.mul_(stride) if stride != 1 else i
            else:
                flat.add_(i, alpha=stride)
        flat.add_(ft.offset)
        # A NaN h, k or l (λ = 0, a NaN cell) casts to INT_MIN: clamped to 0, a default_F border
        # cell, as the C's out-of-range h0 = INT_MIN gives default_F.
        idx = flat.reshape(-1).to(ft.index_dtype).clamp_(0, ft.table.numel() - 1)
    return ft.table.index_select(0, idx).reshape(h.shape)


def table_lookup_into(ft: FTable, h: torch.Tensor, k: torch.Tensor, l: torch.Tensor,
                      ws: Workspace) -> torch.Tensor:
    """``table_lookup`` with the index arithmetic and the result in reused scratch buffers."""
    if not ft.float_index:
        return table_lookup(ft, h, k, l)
    acc = ws.get("idx_acc", h.shape, h.dtype, h.device)
    tmp = ws.get("idx_tmp", h.shape, h.dtype, h.device)
    for n, (v, lo, hi, stride) in enumerate(zip((h, k, l), ft.lo, ft.hi, ft.strides)):
        dst = acc if n == 0 else tmp
        torch.sub(v, 0.5, out=dst)
        dst.ceil_().clamp_(lo, hi)
        if n == 0:
            acc.mul_(stride)
        else:
            acc.add_(tmp, alpha=stride)
    acc.add_(ft.offset)
    idx = ws.get("idx", (h.numel(),), ft.index_dtype, h.device)
    idx.copy_(acc.reshape(-1)).clamp_(0, ft.table.numel() - 1)     # NaN hkl: see table_lookup
    out = ws.get("F_cell", h.shape, ft.table.dtype, h.device)
    torch.index_select(ft.table, 0, idx, out=out.reshape(-1))
    return out
