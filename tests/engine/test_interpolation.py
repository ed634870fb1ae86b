"""Tricubic structure-factor interpolation against the C's traced F_cell, and its range test."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from engine.sample.interpolation import in_range, tricubic
from tests.checks import first_values


def _read_hkl_for_test(path: Path) -> tuple[torch.Tensor, int, int, int]:
    """A minimal 'h k l F' reader (every grid point present) for these tests only."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    hkl = torch.tensor([[int(v) for v in r[:3]] for r in rows])
    F = torch.tensor([float(r[3]) for r in rows], dtype=torch.float64)
    lo = hkl.min(0).values
    shape = tuple((hkl.max(0).values - lo + 1).tolist())
    grid = torch.full(shape, float("nan"), dtype=torch.float64)
    grid[tuple((hkl - lo).T)] = F
    assert not torch.isnan(grid).any(), f"{path}: incomplete grid"
    return grid, *(int(v) for v in lo)


def _trace(lines: list[str], key: str) -> list[float]:
    return [float(x) for x in first_values("\n".join(lines), key, "C")]


def test_hkl_interpolate_traced_F_cell(golden_dir):
    grid, h_min, k_min, l_min = _read_hkl_for_test(golden_dir / "inputs" / "synthetic_P1_m10_p10.hkl")
    lines = (golden_dir / "cases" / "hkl_interpolate" / "c_stdout.log").read_text().splitlines()
    h, k, l = (torch.tensor([v], dtype=torch.float64) for v in _trace(lines, "hkl_frac"))
    assert bool(in_range(grid, h_min, k_min, l_min, h, k, l))
    F = tricubic(grid, h_min, k_min, l_min, h, k, l)
    assert "%.15g" % F.item() == "%.15g" % _trace(lines, "F_cell")[0]


def test_out_of_range_warning_point_fails_the_range_test(golden_dir):
    grid, h_min, k_min, l_min = _read_hkl_for_test(golden_dir / "inputs" / "hkl_small_m3_p3.hkl")
    text = (golden_dir / "cases" / "interpolate_out_of_range" / "c_stdout.log").read_text()
    h, k, l = (float(x) for x in
               re.search(r"h,k,l,h0,k0,l0: ([^,]+),([^,]+),([^,]+),", text).groups())
    as_t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    assert not bool(in_range(grid, h_min, k_min, l_min, as_t(h), as_t(k), as_t(l)))
    # The same point with l moved inside the margins passes: the l margin was the failure.
    assert bool(in_range(grid, h_min, k_min, l_min, as_t(h), as_t(k), as_t(0.99)))


def test_in_range_margins():
    grid = torch.zeros(7, 7, 7, dtype=torch.float64)          # indices -3..3
    x = torch.tensor([-1.0, -1.0001, 1.0, 1.0001, 0.0])
    zero = torch.zeros_like(x)
    assert in_range(grid, -3, -3, -3, x, zero, zero).tolist() == [True, False, True, False, True]
    assert in_range(grid, -3, -3, -3, zero, zero, x).tolist() == [True, False, True, False, True]


def test_tricubic_is_exact_for_cubics_and_hits_grid_points():
    idx = torch.arange(-5, 6, dtype=torch.float64)
    H, K, L = torch.meshgrid(idx, idx, idx, indexing="ij")

    def poly(h, k, l):
        return 2 + h - 0.5 * k * k + 0.25 * l ** 3 + h * k * l + 0.1 * h ** 3 * k * k * l

    grid = poly(H, K, L)
    gen = torch.Generator().manual_seed(0)
    h, k, l = (torch.rand(50, generator=gen, dtype=torch.float64) * 5 - 2.5 for _ in range(3))
    assert torch.allclose(tricubic(grid, -5, -5, -5, h, k, l), poly(h, k, l), rtol=0, atol=1e-9)
    ints = torch.tensor([[0.0, 1.0, -2.0], [2.0, -1.0, 0.0]])
    got = tricubic(grid, -5, -5, -5, ints[:, 0], ints[:, 1], ints[:, 2])
    assert torch.equal(got, poly(ints[:, 0], ints[:, 1], ints[:, 2]))


def test_tricubic_batched_shapes_and_gradients():
    gen = torch.Generator().manual_seed(1)
    grid = torch.rand(9, 8, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    h = (torch.rand(2, 3, generator=gen, dtype=torch.float64) * 2 - 1).requires_grad_()
    k = torch.full((2, 3), 0.3, dtype=torch.float64)
    l = torch.tensor(-0.4, dtype=torch.float64)
    out = tricubic(grid, -4, -4, -3, h, k, l)
    assert out.shape == (2, 3)
    assert torch.autograd.gradcheck(lambda g, hh: tricubic(g, -4, -4, -3, hh, k, l),
                                    (grid, h))
    # Out-of-range points do not fail; in_range tells the caller to ignore them.
    far = torch.tensor([50.0], dtype=torch.float64)
    assert torch.isfinite(tricubic(grid, -4, -4, -3, far, far, far)).all()
    assert not in_range(grid, -4, -4, -3, far, far, far).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tricubic_keeps_dtype(dtype):
    grid = torch.ones(6, 6, 6, dtype=dtype)
    v = torch.tensor([0.25], dtype=dtype)
    out = tricubic(grid, -2, -2, -2, v, v, v)
    assert out.dtype == dtype and out.item() == pytest.approx(1.0)


def test_tricubic_in_blocks_gives_the_same_bits_and_gradients():
    # More points than one stencil block: the blocked evaluation must equal one evaluation per
    # point (each point alone is one block), bit for bit, and carry gradients through the blocks.
    from engine.sample import interpolation
    g = torch.Generator().manual_seed(5)
    grid = torch.rand((9, 8, 7), dtype=torch.float64, generator=g).requires_grad_(True)
    n = (interpolation.BLOCK_POINTS * 2 // 7 + 6) * 7     # a multiple of 7, past two blocks
    h, k, l = (torch.rand(n, dtype=torch.float64, generator=g) * 3 + 2 for _ in range(3))
    h.requires_grad_(True)
    blocked = tricubic(grid, -1, -2, -3, h.reshape(-1, 7, 1), k.reshape(-1, 7, 1), l.reshape(-1, 7, 1))
    assert blocked.shape == (n // 7, 7, 1)
    picks = [0, 1, interpolation.BLOCK_POINTS - 1, interpolation.BLOCK_POINTS, n - 1]
    alone = torch.stack([tricubic(grid, -1, -2, -3, h[i:i + 1], k[i:i + 1], l[i:i + 1])[0] for i in picks])
    assert torch.equal(blocked.reshape(-1)[picks], alone)
    blocked.sum().backward()
    assert torch.isfinite(h.grad).all() and bool((h.grad != 0).any())
    assert grid.grad is not None and bool((grid.grad != 0).any())
