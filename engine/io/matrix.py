"""MOSFLM orientation matrix files (``-mat``): the reciprocal vectors a*, b*, c* as columns."""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from engine.io.errors import InputFileError, read_input_text

#: A plain decimal number (what a MOSFLM matrix holds); no nan/inf, no Python-only spellings.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def read_mosflm_matrix(path: str | Path, *, dtype=torch.float64,
                       device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a*, b*, c*) as read, in units of 1/λ (scale by 1e-10/λ0 for Å^-1).

    The first nine numbers of the file, whitespace separated, form a 3x3 matrix whose columns
    are a*, b*, c*. Anything after them (MOSFLM's U matrix, cell) is ignored.

    Raises ``InputFileError`` (one line, naming the file and, for a bad token, its line) for a
    missing or unreadable file, a token among the first nine that is not a number, fewer than
    nine numbers, or a singular matrix (which would give an all-NaN image: the C goes on
    silently with the zeros of a missing file).
    """
    path = Path(path)
    text = read_input_text(path, "-mat", "matrix file")
    numbers: list[float] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for tok in line.split():
            if len(numbers) == 9:
                break
            if not _NUMBER.fullmatch(tok):
                raise InputFileError(f"-mat {path} line {lineno}: expected a number, got {tok!r} "
                                     f"(a MOSFLM A matrix is 3 lines of 3 numbers)")
            numbers.append(float(tok))
        if len(numbers) == 9:
            break
    if len(numbers) < 9:
        raise InputFileError(f"-mat {path}: needs 9 numbers (3 lines of 3: the a*, b*, c* "
                             f"columns), found {len(numbers)}")
    if not all(math.isfinite(v) for v in numbers):
        raise InputFileError(f"-mat {path}: the matrix holds a number too large for a double")
    m = torch.tensor(numbers, dtype=torch.float64).reshape(3, 3)
    det = float(torch.linalg.det(m))
    if det == 0.0 or not math.isfinite(det):
        raise InputFileError(f"-mat {path}: the matrix is singular (determinant {det:g}), so it "
                             f"defines no unit cell")
    m = m.to(dtype=dtype, device=device)
    return m[:, 0].clone(), m[:, 1].clone(), m[:, 2].clone()
