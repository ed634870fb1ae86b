"""MOSFLM orientation matrix files (``-mat``): the reciprocal vectors a*, b*, c* as columns."""
from __future__ import annotations

from pathlib import Path

import torch

from engine.io.errors import InputFileError


def read_mosflm_matrix(path: str | Path, *, dtype=torch.float64,
                       device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a*, b*, c*) as read, in units of 1/λ (scale by 1e-10/λ0 for Å^-1).

    The first nine numbers of the file, whitespace separated, form a 3x3 matrix whose columns
    are a*, b*, c*. Anything after them (MOSFLM's U matrix, cell) is ignored.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputFileError(f"-mat {path}: cannot read the matrix file ({exc.strerror})") from None
    numbers: list[float] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for tok in line.split():
            if len(numbers) == 9:
                break
            try:
                numbers.append(float(tok))
            except ValueError:
                raise InputFileError(f"-mat {path} line {lineno}: expected a number, got {tok!r}") from None
        if len(numbers) == 9:
            break
    if len(numbers) < 9:
        raise InputFileError(f"-mat {path}: needs 9 numbers (3 rows of a* b* c* components), found {len(numbers)}")
    m = torch.tensor(numbers, dtype=dtype, device=device).reshape(3, 3)
    return m[:, 0].clone(), m[:, 1].clone(), m[:, 2].clone()
