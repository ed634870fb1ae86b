"""Crystal set-up: cell and A matrix, misset, N, φ sampling, structure factors, against the C."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch

from engine.sample import crystal as xtal
from engine.config.model import StructureFactors
from engine.io.errors import InputFileError
from engine.io.matrix import read_mosflm_matrix
from engine.config.setup import build_setup
from engine.sample.structure_factors import choose_interpolation, lookup_nearest, read_hkl
from tests.checks import first_values
from tests.conftest import recording_names

DEG = math.pi / 180


def _pixel(stdout: str, key: str) -> list[float]:
    return [float(x) for x in first_values(stdout, key, "C")]


@pytest.mark.parametrize("name", recording_names())
def test_crystal_summary_matches_c_console(name, golden_dir, monkeypatch):
    case = json.loads((golden_dir / "cases" / name / "case.json").read_text())
    out = (golden_dir / "cases" / name / "c_stdout.log").read_text(encoding="utf-8")
    monkeypatch.chdir(golden_dir)
    s = build_setup(case["argv"], mode="c-parity")
    c = s.crystal
    cells = [int(x) for x in re.search(r"xtal: (\d+)x(\d+)x(\d+) cells", out).groups()]
    assert [int(c.Na), int(c.Nb), int(c.Nc)] == cells
    phis = [float(x) for x in re.findall(r"^phi\d+ = (\S+)$", out, flags=re.M)]
    assert [(c.phi0 + i * c.phistep) / DEG for i in range(c.phisteps)] == pytest.approx(phis, rel=1e-5, abs=1e-9)
    # "Unit Cell: a b c alpha beta gamma" (%g) from the real-space vectors.
    a, b, cc = (v * 1e10 for v in (c.a0, c.b0, c.c0))
    ang = lambda u, v: math.degrees(math.acos(float((u @ v) / (u.norm() * v.norm()))))
    got = [float(a.norm()), float(b.norm()), float(cc.norm()), ang(b, cc), ang(a, cc), ang(a, b)]
    want = [float(x) for x in re.search(r"^Unit Cell: (.*)$", out, flags=re.M).group(1).split()]
    assert got == pytest.approx(want, rel=1e-5)


def test_triclinic_cell_and_misset_match_c_and_are_differentiable(golden_dir):
    out = (golden_dir / "cases" / "triclinic_P1" / "c_stdout.log").read_text(encoding="utf-8")
    params = torch.tensor([70, 80, 90, 75 * DEG, 85 * DEG, 95 * DEG], dtype=torch.float64, requires_grad=True)
    misset = torch.tensor([-89.968546, -31.328953, 177.753396], dtype=torch.float64, requires_grad=True)

    def real_a(p, m):
        a_s, b_s, c_s, V = xtal.reciprocal_from_cell(*p.unbind())
        cell = xtal.real_space(*xtal.misset_rotate([a_s, b_s, c_s], (m * DEG).unbind()),
                               cell_lengths=(p[0], p[1], p[2]), cell_V=V)
        return torch.cat([cell.a, cell.b, cell.c])

    abc = real_a(params, misset)
    for i, axis in enumerate("abc"):
        assert abc[3 * i:3 * i + 3].tolist() == pytest.approx(_pixel(out, f"rot_{axis}_angstroms"), abs=1e-9)
    assert torch.autograd.gradcheck(real_a, (params, misset))


def test_mat_file_is_scaled_by_the_wavelength(golden_dir):
    out = (golden_dir / "cases" / "supervisor" / "c_stdout.log").read_text(encoding="utf-8")
    raw = read_mosflm_matrix(golden_dir / "inputs" / "A.mat")
    cell = xtal.real_space(*xtal.scale_matrix_vectors(*raw, 0.9768e-10))
    for axis in "abc":
        assert getattr(cell, f"{axis}_star").tolist() == pytest.approx(_pixel(out, f"rot_{axis}_star_A_inv"), abs=1e-12)


def test_bad_mat_files(tmp_path):
    with pytest.raises(InputFileError, match="nope.mat"):
        read_mosflm_matrix(tmp_path / "nope.mat")
    (tmp_path / "short.mat").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(InputFileError, match="needs 9 numbers"):
        read_mosflm_matrix(tmp_path / "short.mat")
    (tmp_path / "bad.mat").write_text("1 2 3\n4 x 6\n7 8 9\n")
    with pytest.raises(InputFileError, match="line 2"):
        read_mosflm_matrix(tmp_path / "bad.mat")


@pytest.mark.parametrize("osc, step, steps, want", [
    # (osc°, phistep°, phisteps) → (osc°, phistep°, phisteps); C-recorded where a golden case or a
    # C run shows it: phistep_flag (-phistep 0.5 -phisteps 4 → 2 steps of 0.5), -osc 1 → 0, 0.5;
    # -phi 5 -phisteps 3 -osc 0.9 → 5, 5.3, 5.6; phi_rotation_9steps (-osc 90 -phisteps 9).
    (-1, -1, -1, (0, 0, 1)), (1, -1, -1, (1, 0.5, 2)), (1, 0.3, -1, (1, 0.3, 4)), (-1, 0.25, -1, (0.25, 0.25, 2)),
    (-1, -1, 4, (1, 0.25, 4)), (2, -1, 4, (2, 0.5, 4)), (-1, 0.5, 4, (0.5, 0.5, 2)), (0.9, -1, 3, (0.9, 0.3, 3)),
    (90, -1, 9, (90, 10, 9)), (-1, -1, 0, (1, 1, 1)),
])
def test_phi_step_rules(osc, step, steps, want):
    r = lambda x: x * DEG if x > 0 else x
    o, s, n = xtal.phi_sampling(r(osc), r(step), steps)
    assert (o / DEG, s / DEG, n) == (pytest.approx(want[0]), pytest.approx(want[1]), want[2])


def test_sample_size_overrides_n_and_beam_clips_it():
    # C (recorded): -xtalsize 0.001 on a 100 Å cell → 100x100x100, 30-fold oversampling;
    # -samplesize 0.001 -beamsize 0.0003 → 100x30x30.
    base = ["-cell", "100", "-default_F", "1", "-N", "5", "-detpixels", "64"]
    s = build_setup(base + ["-xtalsize", "0.001"], mode="c-parity")
    assert (s.crystal.Na, s.crystal.Nb, s.crystal.Nc, s.detector.oversample) == (100, 100, 100, 30)
    s = build_setup(base + ["-samplesize", "0.001", "-beamsize", "0.0003"], mode="c-parity")
    assert (s.crystal.Na, s.crystal.Nb, s.crystal.Nc) == (100, 30, 30)
    assert xtal.cell_counts((0, -3, 7), (0, 0, 0), (1e-8,) * 3) == (1.0, 1.0, 7.0)


def test_mosaic_domain_rules():
    assert xtal.mosaic_domain_count(-1.0, -1)[:2] == (0.0, 1)
    assert xtal.mosaic_domain_count(0.01, -1)[:2] == (0.01, 10)
    assert xtal.mosaic_domain_count(-1.0, 5)[:2] == (0.0, 1)
    assert xtal.mosaic_domain_count(0.0, 5)[:2] == (0.0, 1)
    assert xtal.mosaic_domain_count(0.01, 5)[:2] == (0.01, 5)


def test_partial_cell_defaults():
    assert xtal.complete_cell((80.0, 90.0)) == (80.0, 90.0, 80.0, math.pi / 2, math.pi / 2, math.pi / 2)
    with pytest.raises(ValueError, match="impossible unit cell angles"):
        xtal.reciprocal_from_cell(10.0, 10.0, 10.0, 10 * DEG, 10 * DEG, 170 * DEG)


# --- structure factors -----------------------------------------------------------------------
def test_hkl_grid_fills_gaps_with_default_and_keeps_the_last_duplicate(tmp_path):
    p = tmp_path / "f.hkl"
    p.write_text("  0 0 0 10\n 2 1 -1 20.5\n\n 0 0 0 11\n")
    sf = read_hkl(p, default_F=3.0)
    assert (sf.h_min, sf.k_min, sf.l_min) == (0, 0, -1) and tuple(sf.grid.shape) == (3, 2, 2)
    F = lookup_nearest(sf, torch.tensor([0, 2, 1, 5]), torch.tensor([0, 1, 0, 0]), torch.tensor([0, -1, 0, 0]))
    assert F.tolist() == [11.0, 20.5, 3.0, 3.0]
    assert lookup_nearest(StructureFactors(default_F=7.0), torch.tensor(1), torch.tensor(2), torch.tensor(3)).item() == 7.0


@pytest.mark.parametrize("text, match", [
    ("1 2 3 4\n# comment\n", "line 2"), ("1 2 3\n", "line 1"), ("1 2 3.5 4\n", "must be integers"), ("", "no 'h k l F'"),
])
def test_malformed_hkl_names_file_and_line(tmp_path, text, match):
    p = tmp_path / "bad.hkl"
    p.write_text(text)
    with pytest.raises(InputFileError, match=match) as exc:
        read_hkl(p)
    assert "bad.hkl" in str(exc.value)


def test_golden_hkl_lookup(golden_dir):
    """hkl_interpolate's trace: nearest-neighbour F at the C's rounded index is the file's value."""
    sf = read_hkl(golden_dir / "inputs" / "synthetic_P1_m10_p10.hkl")
    assert (sf.h_min, sf.k_min, sf.l_min, tuple(sf.grid.shape)) == (-10, -10, -10, (21, 21, 21))
    first = (golden_dir / "inputs" / "synthetic_P1_m10_p10.hkl").read_text().split("\n", 1)[0].split()
    h, k, l, F = int(first[0]), int(first[1]), int(first[2]), float(first[3])
    assert lookup_nearest(sf, torch.tensor(h), torch.tensor(k), torch.tensor(l)).item() == F


def test_interpolation_choice():
    assert choose_interpolation(None, (5, 5, 2), True)[0] is True
    assert choose_interpolation(None, (5, 5, 5), True)[0] is False
    assert choose_interpolation(None, (0, 5, 5), False)[0] is False     # no HKL entries: off
    assert choose_interpolation(True, (5, 5, 5), True) == (True, None)
