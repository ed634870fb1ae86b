"""Sources: the C's step rules, generated divergence × dispersion sources and source files."""
from __future__ import annotations

from typing import Optional

import pytest
import torch

from engine.io.errors import InputFileError
from engine.sample.sources import (DEFAULT_DISPERSION, UNSET_RANGE, UNSET_STEP, UNSET_STEPS,
                            divergence_lines, generate_sources, incident_directions,
                            read_sourcefile, resolve_steps, source_lines)
from tests.checks import first_values

MOSFLM = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0))     # beam, polarization
XDS = ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0))
DIALS = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0))
U = (UNSET_RANGE, UNSET_STEP, UNSET_STEPS)


def _stdout(golden_dir, case: str) -> list[str]:
    return (golden_dir / "cases" / case / "c_stdout.log").read_text(errors="replace").splitlines()


def _c_source_block(lines: list[str]) -> list[str]:
    start = next(i for i, l in enumerate(lines) if l.startswith("  created a total of") and "sources" in l)
    n = int(lines[start].split()[4])
    return lines[start:start + 1 + n]


def _trace(lines: list[str], key: str, source_index: Optional[int] = None) -> list[float]:
    return [float(x) for x in first_values("\n".join(lines), key, "C", source_index=source_index)]


@pytest.mark.parametrize("given, expected", [
    (U, (0.0, 0.0, 1)),                                   # nothing
    ((UNSET_RANGE, 0.2, UNSET_STEPS), (0.2, 0.2, 2)),     # step only
    ((0.5, UNSET_STEP, UNSET_STEPS), (0.5, 0.5, 2)),      # range only
    ((1.0, 0.3, UNSET_STEPS), (1.0, 0.3, 4)),             # range and step: ceil(range/step)
    ((UNSET_RANGE, UNSET_STEP, 4), (1.0, 0.25, 4)),       # steps only: range 1
    ((UNSET_RANGE, 0.2, 7), (0.2, 0.2, 2)),               # steps and step: count overridden
    ((0.5, UNSET_STEP, 3), (0.5, 0.25, 3)),               # range and steps: range/(steps-1)
    ((0.5, UNSET_STEP, 1), (0.5, 0.5, 2)),                # ... at least two steps
    ((0.5, 0.1, 3), (0.5, 0.1, 3)),                       # everything given
    ((0.0, UNSET_STEP, 3), (0.0, 0.0, 1)),                # zero range collapses
    ((DEFAULT_DISPERSION, UNSET_STEP, UNSET_STEPS), (0.0, 0.0, 1)),
    ((DEFAULT_DISPERSION, UNSET_STEP, 5), (0.0, 0.0, 1)),  # -dispsteps alone: one wavelength
])
def test_resolve_steps_follows_the_c_rules(given, expected):
    assert resolve_steps(*given) == pytest.approx(expected)
    assert isinstance(resolve_steps(*given)[2], int)


def test_divergence_dispersion_sources_match_recording(golden_dir):
    # -hdivrange 0.5 -vdivrange 0.5 (mrad) -hdivsteps 3 -vdivsteps 3 -dispersion 0.2 (%) -dispsteps 3
    lines = _stdout(golden_dir, "divergence_dispersion")
    h = resolve_steps(0.5e-3, UNSET_STEP, 3)
    v = resolve_steps(0.5e-3, UNSET_STEP, 3)
    d = resolve_steps(0.2 / 100.0, UNSET_STEP, 3)
    pos, lam, weights = generate_sources(*MOSFLM, 1e-10, *h, *v, True, *d)
    assert source_lines(pos, lam, weights) == _c_source_block(lines)
    printed = [l for l in lines if l.startswith("divergence deviation:") or l.startswith("lambda")]
    assert divergence_lines(*h, *v, True, 1e-10, *d) == printed
    # Full-precision check through the traced pixel: source 0's direction and source 2's λ.
    inc = incident_directions(pos)
    assert " ".join("%.15g" % x for x in inc[0].tolist()) == \
        " ".join("%.15g" % x for x in _trace(lines, "incident_vec"))
    assert "%.15g" % (lam[2].item() * 1e10) == \
        "%.15g" % _trace(lines, "lambda_angstroms", 2)[0]
    assert weights.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("case, vectors, lambda0", [
    ("simple_cubic", MOSFLM, 6.2e-10), ("conv_denzo", MOSFLM, 1e-10), ("conv_xds", XDS, 1e-10),
    ("conv_adxv", XDS, 1e-10), ("conv_dials", DIALS, 1e-10),
])
def test_single_default_source_matches_recording(golden_dir, case, vectors, lambda0):
    lines = _stdout(golden_dir, case)
    pos, lam, weights = generate_sources(*vectors, lambda0, *resolve_steps(*U), *resolve_steps(*U),
                                         True, *resolve_steps(DEFAULT_DISPERSION, -1.0, -1))
    assert source_lines(pos, lam, weights) == _c_source_block(lines)   # signs of zeros included


def test_round_div_trims_corners_and_square_div_keeps_them():
    h = resolve_steps(1e-3, UNSET_STEP, 5)
    pos, _, _ = generate_sources(*MOSFLM, 1e-10, *h, *h, True, 0.0, 0.0, 1)
    square, _, _ = generate_sources(*MOSFLM, 1e-10, *h, *h, False, 0.0, 0.0, 1)
    assert square.shape == (25, 3)
    assert 1 < pos.shape[0] < 25
    # A zero range on one axis makes the C's ellipse test NaN, which never trims.
    only_v = generate_sources(*MOSFLM, 1e-10, *resolve_steps(*U), *h, True, 0.0, 0.0, 1)[0]
    assert only_v.shape == (5, 3)


def test_vdiv_turns_about_polarization_then_hdiv_about_v():
    pos, _, _ = generate_sources(*MOSFLM, 1e-10, 0.0, 0.0, 1, 2e-3, 2e-3, 2, False, 0.0, 0.0, 1)
    # vdiv about p = z moves the source in y only.
    assert torch.all(pos[:, 2] == 0) and torch.all(pos[:, 1] != 0)
    pos, _, _ = generate_sources(*MOSFLM, 1e-10, 2e-3, 2e-3, 2, 0.0, 0.0, 1, False, 0.0, 0.0, 1)
    assert torch.all(pos[:, 1].abs() == 0) and torch.all(pos[:, 2] != 0)


def test_sourcefile_matches_recording(golden_dir):
    lines = _stdout(golden_dir, "sourcefile")
    pos, lam, weights = read_sourcefile(golden_dir / "inputs" / "sources_5.txt", MOSFLM[0], 1e-10)
    assert source_lines(pos, lam, weights) == _c_source_block(lines)
    inc = incident_directions(pos)
    assert " ".join("%.15g" % x for x in inc[0].tolist()) == \
        " ".join("%.15g" % x for x in _trace(lines, "incident_vec"))
    assert "%.15g" % (lam[2].item() * 1e10) == \
        "%.15g" % _trace(lines, "lambda_angstroms", 2)[0]


def test_sourcefile_last_line_without_newline(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("-10 0 0 1 1e-10\n\n  \n-10,0.01;0\t2")
    pos, lam, w = read_sourcefile(path, MOSFLM[0], 1.5e-10)
    assert pos.shape == (2, 3) and lam.tolist() == [1e-10, 1.5e-10] and w.tolist() == [1.0, 2.0]
    _, lam_c, _ = read_sourcefile(path, MOSFLM[0], 1.5e-10, c_parity=True)
    assert lam_c.tolist() == [1e-10, 0.0]          # the C reads the missing λ as 0 here


def test_sourcefile_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("-10 0 0\n-10 zero 0\n")
    with pytest.raises(InputFileError, match=r"bad\.txt:2: column 2"):
        read_sourcefile(bad, MOSFLM[0], 1e-10)
    with pytest.raises(InputFileError, match="cannot read"):
        read_sourcefile(tmp_path / "missing.txt", MOSFLM[0], 1e-10)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(InputFileError, match="no sources"):
        read_sourcefile(empty, MOSFLM[0], 1e-10)
