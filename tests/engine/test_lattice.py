"""Lattice shape factors against the C's recorded per-pixel values.

For the square shape the C prints F_latt_a/b/c and F_latt next to the fractional hkl it used, for
every (layer, sub-pixel) and, per φ step, k_frac with F_latt_b. The other shapes print no F_latt,
but with one source, φ step and domain, I_before_scaling is Σ over sub-pixels of F_cell²·F_latt²,
which pins the shape factor down just as well.
"""
from __future__ import annotations

import math

import pytest
import torch

from engine.sample import lattice
from tests.checks import close, pixel_records
from tests.engine.test_golden_parity import case_json, golden_stdout



def _n_cells(name: str) -> tuple[float, float, float]:
    argv = case_json(name)["argv"]
    n = float(argv[argv.index("-N") + 1])
    return n, n, n


def _blocks(records):
    """Split a trace into per-(layer, sub-pixel) dicts of its first-occurrence keys."""
    blocks, cur = [], None
    for key, vals in ((r.key, r.values) for r in records if r.kind == "pixel"):
        if key == "pix0_vector_meters":
            cur = {}
            blocks.append(cur)
        if cur is not None and key not in cur:
            cur[key] = vals
    return blocks


def t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


# --- the grating function ------------------------------------------------------------------

def test_sincg_limit_and_nodes():
    x = t(0.0, math.pi + 1e-7, 2 * math.pi - 1e-7, 0.5 * math.pi)
    out = lattice.sincg(x, 5.0)
    assert out[0].item() == 5.0                       # exact limit at 0, no 0/0
    # Near the other nodes sin(N x)/sin(x) → N·cos(N x)/cos(x) = N for odd N.
    assert torch.allclose(out[1:3], t(5.0, 5.0), rtol=1e-9)
    assert out[3].item() == pytest.approx(1.0)        # sin(5π/2)/sin(π/2)


def test_sinc3_limit_and_small_argument():
    x = t(0.0, 1e-3)
    out = lattice.sinc3(x)
    assert out[0].item() == 1.0
    assert out[1].item() == pytest.approx(1 - 1e-6 / 10, rel=1e-7)   # 1 − x²/10 + …


def test_gradients_are_finite_at_the_removable_singularities():
    x = t(0.0, 0.3).requires_grad_(True)
    (lattice.sincg(x, 5.0).sum() + lattice.sinc3(x).sum()).backward()
    assert bool(torch.isfinite(x.grad).all())


# --- square: against the C's F_latt lines -----------------------------------------------------

@pytest.mark.parametrize("name", ["simple_cubic", "triclinic_P1", "oversample_3", "extreme_tiny",
                                  "hkl_nearest_default_F"])
def test_square_matches_c_trace(golden_dir, name):
    Na, Nb, Nc = _n_cells(name)
    blocks = _blocks(pixel_records(golden_stdout(name), "C"))
    assert blocks
    for b in blocks:
        h, k, l = (t(v) for v in b["hkl_frac"])
        fa, fb, fc = lattice.square_factors(h, k, l, Na, Nb, Nc)
        assert close(b["F_latt_a"][0], fa.item())
        assert close(b["F_latt_b"][0], fb.item())
        assert close(b["F_latt_c"][0], fc.item())
        assert close(b["F_latt"][0], lattice.square(h, k, l, Na, Nb, Nc).item())


def test_square_skips_axes_with_one_cell(golden_dir):
    """extreme_tiny has N = 1: the C prints 1 for each skipped axis and F_latt = 1."""
    b = _blocks(pixel_records(golden_stdout("extreme_tiny"), "C"))[0]
    assert b["F_latt_a"] == b["F_latt_b"] == b["F_latt_c"] == b["F_latt"] == (1.0,)
    h, k, l = (t(v) for v in b["hkl_frac"])
    assert lattice.square(h, k, l, 1, 1, 1).item() == 1.0


def test_square_per_phi_lines(golden_dir):
    """Every TRACE_C_PHI line: F_latt_b from k_frac (phi_rotation_9steps: 9 φ steps × 4 sub-pixels)."""
    Na, Nb, Nc = _n_cells("phi_rotation_9steps")
    recs = pixel_records(golden_stdout("phi_rotation_9steps"), "C")
    k_fracs = [r.values[0] for r in recs if r.kind == "phi" and r.key == "k_frac"]
    f_latt_bs = [r.values[0] for r in recs if r.kind == "phi" and r.key == "F_latt_b"]
    assert len(k_fracs) == len(f_latt_bs) == 36
    for k_frac, f_latt_b in zip(k_fracs, f_latt_bs):
        _, fb, _ = lattice.square_factors(t(0.0), t(k_frac), t(0.0), Na, Nb, Nc)
        assert close(f_latt_b, fb.item())


# --- round, gauss, tophat: through I_before_scaling -------------------------------------------

def _intensity_from_trace(name: str, shape_factor) -> tuple[float, float]:
    records = pixel_records(golden_stdout(name), "C")
    blocks = _blocks(records)
    total = 0.0
    for b in blocks:
        h, k, l = (t(v) for v in b["hkl_frac"])
        f_latt = shape_factor(h, k, l, b).item()
        f_cell = b.get("F_cell", (0.0,))[0]   # the C skips F_cell when F_latt == 0
        total += f_cell * f_cell * f_latt * f_latt
    want = next(r.values[0] for r in records if r.kind == "pixel" and r.key == "I_before_scaling")
    return total, want


def test_round_shape(golden_dir):
    Na, Nb, Nc = _n_cells("lattice_round")
    got, want = _intensity_from_trace(
        "lattice_round", lambda h, k, l, b: lattice.round_(h, k, l, Na, Nb, Nc))
    assert got == pytest.approx(want, rel=1e-9)
    assert want > 0


@pytest.mark.parametrize("name,fn", [("lattice_gauss", lattice.gauss), ("lattice_tophat", lattice.tophat)])
def test_reciprocal_distance_shapes(golden_dir, name, fn):
    Na, Nb, Nc = _n_cells(name)

    def factor(h, k, l, b):
        stars = [t(*b[key]) for key in ("rot_a_star_A_inv", "rot_b_star_A_inv", "rot_c_star_A_inv")]
        rad = lattice.reciprocal_radius_sqr(h, k, l, *stars, Na, Nb, Nc)
        return fn(rad, Na, Nb, Nc)

    got, want = _intensity_from_trace(name, factor)
    assert got == pytest.approx(want, rel=1e-9)
    assert want > 0


def test_fudge_scales_the_radius():
    """fudge multiplies the squared radius: fudge 4 at Δh equals fudge 1 at 2·Δh."""
    dh = t(0.013, 0.05, 0.2)
    z = torch.zeros_like(dh)
    assert torch.allclose(lattice.round_(dh, z, z, 5, 5, 5, fudge=4.0), lattice.round_(2 * dh, z, z, 5, 5, 5))
    star = t(0.01, 0.0, 0.0)
    zero = t(0.0, 0.0, 0.0)
    r1 = lattice.reciprocal_radius_sqr(dh, z, z, star, zero, zero, 5, 5, 5)
    assert torch.allclose(lattice.gauss(r1, 5, 5, 5, fudge=2.0), lattice.gauss(2 * r1, 5, 5, 5))
    assert torch.equal(lattice.tophat(r1, 5, 5, 5, fudge=2.0), lattice.tophat(2 * r1, 5, 5, 5))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_square_inplace_is_bit_identical(dtype):
    """The renderer's in-place SQUARE factor (no autograd) gives exactly ``square``'s bits,
    including the x == 0 limit and skipped axes (N <= 1)."""
    g = torch.Generator().manual_seed(3)
    h, k, l = ((torch.rand(4000, generator=g, dtype=torch.float64) * 8 - 4).to(dtype) for _ in range(3))
    h[:7] = torch.tensor([0.0, 1.0, -2.0, 0.5, -0.5, 3.0, 1e-300]).to(dtype)
    k[:3] = 0.0
    for N in [(36, 47, 29), (5, 1, 3), (1, 1, 1), (2, 2, 0.5)]:
        want = lattice.square(h, k, l, *N)
        got = lattice.square_inplace(h.clone(), k.clone(), l.clone(), *N)
        assert got.dtype == dtype
        assert torch.equal(got, want), N
