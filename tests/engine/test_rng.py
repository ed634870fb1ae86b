"""The C's random streams: random misset, mosaic domains and Poisson noise, against recorded runs."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch

from engine.sample import rng as rng_module
from engine.io.floatimage import read_floatimage
from engine.sample.c_random import CRandom
from engine.sample.rng import (mosaic_umats, poisson_noise, random_misset_angles, random_misset_umat,
                               umat_to_misset, uniform_random_rotation)
from tests.checks import values_of

RTD = 180.0 / math.pi


def _stdout(golden_dir, case: str) -> list[str]:
    return (golden_dir / "cases" / case / "c_stdout.log").read_text(errors="replace").splitlines()


def _trace_values(lines: list[str], key: str) -> list[list[float]]:
    return [[float(x) for x in v] for v in values_of("\n".join(lines), key, "C")]


def _rotate_xyz(v: list[float], rx: float, ry: float, rz: float) -> list[float]:
    """Rotate about x, then y, then z (skipping zero angles), the order the C applies a misset."""
    x, y, z = v
    if rx != 0:
        y, z = y * math.cos(rx) - z * math.sin(rx), y * math.sin(rx) + z * math.cos(rx)
    if ry != 0:
        x, z = x * math.cos(ry) + z * math.sin(ry), -x * math.sin(ry) + z * math.cos(ry)
    if rz != 0:
        x, y = x * math.cos(rz) - y * math.sin(rz), x * math.sin(rz) + y * math.cos(rz)
    return [x, y, z]


def _reciprocal_from_cell(a: float, b: float, c: float, alpha: float, beta: float,
                          gamma: float) -> tuple[list[list[float]], list[float]]:
    """a*, b*, c* (1/Å) in the C's default orientation (a* along x, b* in the xy plane), and the
    reciprocal lengths from the cell formula (which the C prints as |a*| etc.)."""
    al, be, ga = (math.radians(t) for t in (alpha, beta, gamma))
    s = (al + be + ga) / 2
    volume = 2.0 * a * b * c * math.sqrt(abs(math.sin(s) * math.sin(s - al) * math.sin(s - be)
                                             * math.sin(s - ga)))
    inv_v = 1.0 / volume
    a_len, b_len, c_len = (b * c * math.sin(al) * inv_v, c * a * math.sin(be) * inv_v,
                           a * b * math.sin(ga) * inv_v)
    cos_as = (math.cos(be) * math.cos(ga) - math.cos(al)) / (math.sin(be) * math.sin(ga))
    cos_bs = (math.cos(ga) * math.cos(al) - math.cos(be)) / (math.sin(ga) * math.sin(al))
    cos_gs = (math.cos(al) * math.cos(be) - math.cos(ga)) / (math.sin(al) * math.sin(be))
    sin_gs = c * inv_v / a_len / b_len
    vectors = [[a_len, 0.0, 0.0],
               [b_len * cos_gs, b_len * sin_gs, 0.0],
               [c_len * cos_bs, c_len * (cos_as - cos_bs * cos_gs) / sin_gs,
                c_len * volume / (a * b * c * sin_gs)]]
    return vectors, [a_len, b_len, c_len]


# --- random misset ------------------------------------------------------------------------------
def test_random_misset_angles_match_recorded_console(golden_dir):
    lines = _stdout(golden_dir, "misset_random")
    printed = next(l for l in lines if l.startswith("random orientation misset angles:"))
    angles = random_misset_angles(7)           # the case passes -misset_seed 7
    ours = "random orientation misset angles: %f %f %f deg" % tuple(a * RTD for a in angles)
    assert ours == printed


def test_random_misset_rotates_reciprocal_vectors_as_recorded(golden_dir):
    lines = _stdout(golden_dir, "misset_random")
    after = lines.index("TRACE: After misset rotation:")
    recorded = lines[after + 1:after + 4]
    rx, ry, rz = random_misset_angles(7)
    ours = []
    vectors, lengths = _reciprocal_from_cell(70, 80, 90, 75, 85, 95)
    for name, vec, mag in zip(("a_star", "b_star", "c_star"), vectors, lengths):
        r = _rotate_xyz(vec, rx, ry, rz)
        ours.append("TRACE:   %s = [%g, %g, %g] |%s| = %g" % (name, *r, name, mag))
    assert ours == recorded
    degrees = next(l for l in lines if l.startswith("TRACE:   misset angles = "))
    assert degrees == "TRACE:   misset angles = [%g, %g, %g] degrees" % (rx * RTD, ry * RTD, rz * RTD)


def test_random_misset_umat_is_a_rotation_and_matches_its_angles():
    u = random_misset_umat(7)
    assert torch.allclose(u @ u.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.linalg.det(u).item() == pytest.approx(1.0, abs=1e-12)
    rx, ry, rz = umat_to_misset(u)
    rebuilt = torch.tensor([_rotate_xyz(list(col), rx, ry, rz) for col in torch.eye(3).tolist()],
                           dtype=torch.float64).T
    assert torch.allclose(rebuilt, u, atol=1e-12)


def test_umat_to_misset_round_trip_and_gimbal_lock():
    angles = (0.3, -0.7, 2.1)
    cols = [_rotate_xyz(e, *angles) for e in ([1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0])]
    u = torch.tensor(cols, dtype=torch.float64).T
    assert umat_to_misset(u) == pytest.approx(angles, abs=1e-12)
    # |U_zx| = 1: the C's fixed answer (pi, pi/2, atan2(U_xy, -U_yy)).
    lock = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    assert umat_to_misset(lock) == pytest.approx((math.pi, math.pi / 2, math.atan2(0.0, -1.0)))


def test_uniform_random_rotation_is_deterministic_rotation():
    u = uniform_random_rotation(7)
    assert torch.equal(u, uniform_random_rotation(7))
    assert not torch.equal(u, uniform_random_rotation(8))
    assert torch.allclose(u @ u.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.linalg.det(u).item() == pytest.approx(1.0, abs=1e-12)


# --- mosaic domains -----------------------------------------------------------------------------
def _traced_intensity(lines: list[str], umats: torch.Tensor, n_cells: float, f_cell: float) -> float:
    """I_before_scaling of the traced pixel (square shape, one source, one φ step), rebuilt from
    the traced per-subpixel scattering vectors and unrotated cell vectors and the given domains."""
    q = torch.tensor(_trace_values(lines, "scattering_vec_A_inv"), dtype=torch.float64)  # 1/m
    cells = [torch.tensor(_trace_values(lines, f"rot_{x}_angstroms"), dtype=torch.float64) * 1e-10
             for x in "abc"]
    total = 0.0
    for sub in range(q.shape[0]):
        for u in umats:
            f_latt = 1.0
            for cell in cells:
                x = math.pi * float((u @ cell[sub]) @ q[sub])
                f_latt *= n_cells if x == 0 else math.sin(n_cells * x) / math.sin(x)
            total += f_cell * f_cell * f_latt * f_latt
    return total


def test_mosaic_domains_reproduce_traced_intensity(golden_dir):
    lines = _stdout(golden_dir, "mosaic_domains")         # -mosaic 0.5 -mosaic_dom 5 -mosaic_seed 1
    assert "  created a total of 5 mosaic domains" in lines
    umats = mosaic_umats(math.radians(0.5), 5, 1)
    assert umats.shape == (5, 3, 3) and umats.dtype == torch.float64
    assert torch.equal(umats[0], torch.eye(3, dtype=torch.float64))
    assert torch.allclose(umats @ umats.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3),
                          atol=1e-12)
    (recorded,), = _trace_values(lines, "I_before_scaling")
    ours = _traced_intensity(lines, umats, 5.0, 100.0)
    # The C's float32 rotation angles matter at ~1e-9 here; the trace allows ~1e-13.
    assert ours == pytest.approx(recorded, rel=1e-11)


def test_mosaic_angles_carry_float32_rounding(golden_dir, monkeypatch):
    """Computing the rotation angle in double instead of the C's float changes the traced sum
    beyond the trace's precision: the float32 emulation is what matches."""
    lines = _stdout(golden_dir, "mosaic_domains")
    (recorded,), = _trace_values(lines, "I_before_scaling")
    monkeypatch.setattr(rng_module, "to_f32", lambda x: x)
    monkeypatch.setattr(rng_module, "powf", math.pow)
    doubles = mosaic_umats(math.radians(0.5), 5, 1)
    assert abs(_traced_intensity(lines, doubles, 5.0, 100.0) / recorded - 1) > 1e-10


def test_mosaic_default_seed_and_shared_table():
    assert torch.equal(mosaic_umats(0.01, 3), mosaic_umats(0.01, 3, 12345678))
    assert not torch.equal(mosaic_umats(0.01, 3, 1), mosaic_umats(0.01, 3, 2))
    # A negative command-line seed is stored positive: on a fresh table the C then uses seed 1.
    assert torch.equal(mosaic_umats(0.01, 3, -5), mosaic_umats(0.01, 3, -1))
    with pytest.raises(ValueError):
        mosaic_umats(0.01, 0, 1)


# --- the uniform generator ----------------------------------------------------------------------
def test_ran1_seed_word_semantics():
    def draws(gen: CRandom, n: int = 5) -> list[float]:
        return [gen.ran1() for _ in range(n)]

    assert draws(CRandom.from_cli(7)) == draws(CRandom(-7))
    assert draws(CRandom(0)) == draws(CRandom(-1)) == draws(CRandom(5))
    values = draws(CRandom(-12345), 2000)
    assert all(0.0 < v < 1.0 for v in values)
    assert all(np.float32(v) == v for v in values)           # float32 values, as in the C
    assert statistics.fmean(values) == pytest.approx(0.5, abs=0.02)
    # Re-seeding a used generator with a negative word starts the same stream afresh.
    gen = CRandom(-3)
    first = draws(gen)
    gen.reseed(-3)
    assert draws(gen) == first


@pytest.mark.parametrize("mean", [0.0, 0.5, 5.0, 20.0, 300.0, 2.0e6])
def test_poidev_regimes_have_poisson_moments(mean):
    gen = CRandom(-99)
    draws = [gen.poidev(mean) for _ in range(3000)]
    assert all(d == math.floor(d) for d in draws) or mean > 1e6
    sigma = math.sqrt(mean) if mean > 0 else 0.0
    assert statistics.fmean(draws) == pytest.approx(mean, abs=4 * sigma / math.sqrt(3000) + 1e-9)
    if mean > 0:
        assert statistics.pvariance(draws) == pytest.approx(mean, rel=0.15)


def test_gaussdev_unit_normal():
    gen = CRandom(-4)
    draws = [gen.gaussdev() for _ in range(4000)]
    assert statistics.fmean(draws) == pytest.approx(0.0, abs=0.07)
    assert statistics.pstdev(draws) == pytest.approx(1.0, abs=0.05)


# --- noise --------------------------------------------------------------------------------------
def test_poisson_noise_matches_recorded_noise_image(golden_dir):
    case = golden_dir / "cases" / "smv_noise"                 # -seed 12345 -adc 40
    image = read_floatimage(case / "floatimage.bin", (256, 256))
    noise = poisson_noise(torch.from_numpy(image), 12345)
    assert noise.dtype == torch.float32 and noise.shape == (256, 256)
    recorded = np.frombuffer((case / "noiseimage.img").read_bytes()[512:], dtype="<u2")
    assert np.array_equal(noise.numpy().reshape(-1).astype(np.int64) + 40, recorded.astype(np.int64))
    photons = next(l for l in _stdout(golden_dir, "smv_noise") if "photons on noise image" in l)
    assert photons.startswith("%.0f photons" % float(np.cumsum(noise.numpy().astype(np.float64))[-1]))


def test_poisson_noise_roi_draws_only_inside():
    image = torch.full((4, 5), 3.0)
    roi = (1, 3, 1, 2)
    noise = poisson_noise(image, 5, roi=roi)
    outside = torch.ones(4, 5, dtype=torch.bool)
    outside[1:3, 1:4] = False
    assert torch.all(noise[outside] == 0)
    # The drawn pixels are the first draws of the stream, in row-major order.
    gen = CRandom.from_cli(5)
    expected = [gen.poidev(3.0) for _ in range(6)]
    assert noise[1:3, 1:4].reshape(-1).tolist() == expected
