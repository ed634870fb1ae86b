"""Structure factors: the text ``-hkl`` file as an integer grid, -default_F, nearest lookup.

The engine never reads or writes the C's ``Fdump.bin`` cache: an -hkl file is always parsed,
and without one every reflection has F = default_F.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from engine.config.model import StructureFactors
from engine.io.errors import InputFileError, read_input_text


#: A plain decimal number; nan, inf and Python-only spellings (``1_0``) are refused.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NOT_NUMERIC = re.compile(r"[^0-9eE+\-.\s]")
#: The largest grid read_hkl builds (h × k × l span), to refuse a stray huge index clearly.
MAX_GRID_POINTS = 1 << 27


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _first_bad_line(path: Path, text: str) -> str:
    for lineno, line in enumerate(text.splitlines(), 1):
        toks = line.split()
        if not toks:
            continue
        shown = line.strip()[:80]
        if _is_comment(line):
            return (f"-hkl {path} line {lineno}: comment lines are not allowed, got {shown!r} "
                    f"(the C's reader stops at them too; delete the line)")
        if len(toks) != 4:
            return (f"-hkl {path} line {lineno}: expected 4 fields 'h k l F', got {len(toks)}: "
                    f"{shown!r}")
        bad = [t for t in toks if not _NUMBER.fullmatch(t)]
        if bad:
            return f"-hkl {path} line {lineno}: {bad[0]!r} is not a number in {shown!r} (expected 'h k l F')"
        vals = [float(t) for t in toks]
        if not all(math.isfinite(v) for v in vals):
            return f"-hkl {path} line {lineno}: number out of range in {shown!r}"
        if any(v != round(v) for v in vals[:3]):
            return f"-hkl {path} line {lineno}: h, k, l must be integers, got {shown!r}"
    return f"-hkl {path}: malformed"


def read_hkl(path: str | Path, default_F: float = 0.0, *, dtype=torch.float64,
             device="cpu") -> StructureFactors:
    """Read "h k l F" lines into a grid spanning the indices present.

    Grid points the file does not list hold ``default_F``; a reflection listed twice keeps the
    last value. Off-grid reflections are ``default_F`` at lookup.

    Blank lines are skipped. Every other line must be exactly four plain numbers with integer
    h, k, l; otherwise ``InputFileError`` names the file and the line. ``#`` comment lines are
    refused too, on purpose: the C's reader stops at them (it exits on the branch's own P1.hkl),
    so a file the engine accepted would not run in the C.
    """
    path = Path(path)
    text = read_input_text(path, "-hkl", "structure-factor file")
    body = text
    toks = body.split()
    try:
        if len(toks) % 4 or any(len(ln.split()) not in (0, 4) for ln in body.splitlines()):
            raise ValueError
        if _NOT_NUMERIC.search(body):    # one fast scan instead of a regex per token
            raise ValueError
        data = np.array(toks, dtype=np.float64).reshape(-1, 4)
        hkl = data[:, :3]
        if not np.isfinite(data).all() or not np.array_equal(hkl, np.round(hkl)):
            raise ValueError
    except ValueError:
        raise InputFileError(_first_bad_line(path, text)) from None
    if data.shape[0] == 0:
        raise InputFileError(f"-hkl {path}: no 'h k l F' lines found")
    idx = hkl.astype(np.int64)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    span = hi - lo + 1
    if int(np.prod(span.astype(np.float64))) > MAX_GRID_POINTS:
        raise InputFileError(f"-hkl {path}: indices span {span[0]}x{span[1]}x{span[2]} "
                             f"(h from {lo[0]} to {hi[0]}, k {lo[1]}..{hi[1]}, l {lo[2]}..{hi[2]}); "
                             f"too large for a grid: check for a stray huge index")
    grid = np.full(tuple(span), float(default_F))
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
