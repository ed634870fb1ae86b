"""Structure factors: the text ``-hkl`` file as an integer grid, -default_F, nearest lookup.

The engine never reads or writes the C's ``Fdump.bin`` cache: an -hkl file is always parsed,
and without one every reflection has F = default_F.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from engine.config import StructureFactors
from engine.io.errors import InputFileError


def _first_bad_line(path: Path, text: str) -> str:
    for lineno, line in enumerate(text.splitlines(), 1):
        toks = line.split()
        if not toks:
            continue
        if len(toks) != 4:
            return f"-hkl {path} line {lineno}: expected 'h k l F', got {line.strip()!r}"
        try:
            vals = [float(t) for t in toks]
        except ValueError:
            return f"-hkl {path} line {lineno}: expected 'h k l F' numbers, got {line.strip()!r}"
        if any(v != round(v) for v in vals[:3]):
            return f"-hkl {path} line {lineno}: h, k, l must be integers, got {line.strip()!r}"
    return f"-hkl {path}: malformed"


def read_hkl(path: str | Path, default_F: float = 0.0, *, dtype=torch.float64,
             device="cpu") -> StructureFactors:
    """Read "h k l F" lines into a grid spanning the indices present.

    Grid points the file does not list hold ``default_F``; a reflection listed twice keeps the
    last value. Off-grid reflections are ``default_F`` at lookup.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputFileError(f"-hkl {path}: cannot read the structure-factor file ({exc.strerror})") from None
    toks = text.split()
    try:
        if len(toks) % 4:
            raise ValueError
        data = np.array(toks, dtype=np.float64).reshape(-1, 4)
        hkl = data[:, :3]
        if not np.array_equal(hkl, np.round(hkl)) or any(len(l.split()) not in (0, 4) for l in text.splitlines()):
            raise ValueError
    except ValueError:
        raise InputFileError(_first_bad_line(path, text)) from None
    if data.shape[0] == 0:
        raise InputFileError(f"-hkl {path}: no 'h k l F' lines found")
    idx = hkl.astype(np.int64)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    grid = np.full(tuple(hi - lo + 1), float(default_F))
    # Assignment in file order, so a repeated reflection keeps its last value.
    grid[idx[:, 0] - lo[0], idx[:, 1] - lo[1], idx[:, 2] - lo[2]] = data[:, 3]
    return StructureFactors(default_F=float(default_F), grid=torch.tensor(grid, dtype=dtype, device=device),
                            h_min=int(lo[0]), k_min=int(lo[1]), l_min=int(lo[2]))


def choose_interpolation(flag: Optional[bool], N: Sequence[float], has_hkls: bool) -> tuple[bool, Optional[str]]:
    """(interpolate?, console line). Unset: on when any N <= 2 (N as given, before -xtalsize),
    as the C decides; always off without HKL entries."""
    line = None
    if flag is None:
        flag = any(n <= 2 for n in N)
        line = ("auto-selected tricubic interpolation of structure factors" if flag
                else "auto-selected no interpolation")
    return bool(flag and has_hkls), line


def lookup_nearest(sf: StructureFactors, h0: torch.Tensor, k0: torch.Tensor, l0: torch.Tensor) -> torch.Tensor:
    """F at integer (h0, k0, l0) (any matching shapes); default_F off the grid or with no grid."""
    shape = torch.broadcast_shapes(h0.shape, k0.shape, l0.shape)
    if sf.grid is None:
        dev = h0.device
        return torch.full(shape, sf.default_F, dtype=torch.float64, device=dev)
    grid = sf.grid
    hi = (h0.long() - sf.h_min).expand(shape)
    ki = (k0.long() - sf.k_min).expand(shape)
    li = (l0.long() - sf.l_min).expand(shape)
    nh, nk, nl = grid.shape
    inside = (hi >= 0) & (hi < nh) & (ki >= 0) & (ki < nk) & (li >= 0) & (li < nl)
    vals = grid[hi.clamp(0, nh - 1), ki.clamp(0, nk - 1), li.clamp(0, nl - 1)]
    return torch.where(inside, vals, torch.full_like(vals, sf.default_F))
