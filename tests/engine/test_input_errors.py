"""Malformed input files: one line on stderr naming the flag, the file (and line), exit status 2."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine import cli
from engine.io.errors import InputFileError
from engine.io.matrix import read_mosflm_matrix
from engine.sample.sources import read_sourcefile
from engine.sample.structure_factors import read_hkl

BASE = ["-default_F", "10", "-detpixels", "8", "-N", "2", "-nonoise", "-nopgm", "-noprogress"]
CELL = ["-cell", "50", "50", "50", "90", "90", "90"]


def _main(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    rc = cli.main(argv)
    captured = capsys.readouterr()
    return rc, captured.err, captured.out


def _one_line_error(rc, err, *parts):
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("nanobragg-torch: input error: "), err
    for p in parts:
        assert p in err, (p, err)


# --- -hkl ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, where", [
    ("1 2 3 100\n1 2 x 4\n", "line 2: 'x' is not a number"),
    ("1 2 3 100\n\n4 5 6\n", "line 3: expected 4 fields 'h k l F', got 3"),
    ("1 2 3 100 7\n", "line 1: expected 4 fields"),
    ("1 2 3.5 100\n", "line 1: h, k, l must be integers"),
    ("1 2 3 nan\n", "line 1: 'nan' is not a number"),
    ("1 2 3 1e999\n", "line 1: number out of range"),
    ("1 2 3 1_0\n", "line 1: '1_0' is not a number"),
    ("", "no 'h k l F' lines"),
    ("1 2 3 100\n# a comment\n", "line 2: comment lines are not allowed"),
    ("0 0 0 1\n100000 100000 100000 2\n", "too large for a grid"),
])
def test_malformed_hkl(tmp_path, monkeypatch, capsys, text, where):
    (tmp_path / "x.hkl").write_text(text)
    rc, err, out = _main(tmp_path, monkeypatch, capsys, CELL + BASE + ["-hkl", "x.hkl"])
    _one_line_error(rc, err, "-hkl x.hkl", where)
    assert out == "" and list(tmp_path.iterdir()) == [tmp_path / "x.hkl"]


def test_missing_hkl(tmp_path, monkeypatch, capsys):
    rc, err, _ = _main(tmp_path, monkeypatch, capsys, CELL + BASE + ["-hkl", "nope.hkl"])
    _one_line_error(rc, err, "-hkl nope.hkl", "cannot read")


def test_hkl_comment_lines_are_refused_like_the_c(tmp_path, golden_dir):
    """Our choice: '#' lines are refused (clearly), as the C cannot read past them either."""
    with pytest.raises(InputFileError, match=r"P1\.hkl line 1: comment lines are not allowed"):
        read_hkl(golden_dir / "inputs" / "P1.hkl")
    (tmp_path / "ok.hkl").write_text("1 2 3 100\n\n-1 0 2 50\n")
    sf = read_hkl(tmp_path / "ok.hkl", 7.0)
    assert (sf.h_min, sf.k_min, sf.l_min) == (-1, 0, 2) and tuple(sf.grid.shape) == (3, 3, 2)
    assert float(sf.grid[2, 2, 1]) == 100.0 and float(sf.grid[0, 0, 0]) == 50.0
    assert float(sf.grid[1, 1, 1]) == 7.0


# --- -mat ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, where", [
    ("0.01 0 0\n0 0.01 0\n", "needs 9 numbers (3 lines of 3: the a*, b*, c* columns), found 6"),
    ("", "found 0"),
    ("0.01 0 0\n0 abc 0\n0 0 0.01\n", "line 2: expected a number, got 'abc'"),
    ("0.01 0 0\n0 0.01 0\n0 0 nan\n", "line 3: expected a number, got 'nan'"),
    ("0 0 0\n0 0 0\n0 0 0\n", "the matrix is singular"),
    ("1e999 0 0\n0 1 0\n0 0 1\n", "too large"),
])
def test_malformed_mat(tmp_path, monkeypatch, capsys, text, where):
    (tmp_path / "A.mat").write_text(text)
    rc, err, out = _main(tmp_path, monkeypatch, capsys, BASE + ["-mat", "A.mat"])
    _one_line_error(rc, err, "-mat A.mat", where)
    assert list(tmp_path.iterdir()) == [tmp_path / "A.mat"]


def test_missing_mat_is_an_error_not_a_nan_image(tmp_path, monkeypatch, capsys):
    """The C goes on with a zero matrix and writes an all-NaN image with exit 0."""
    rc, err, out = _main(tmp_path, monkeypatch, capsys, BASE + ["-mat", "missing.mat"])
    _one_line_error(rc, err, "-mat missing.mat", "cannot read the matrix file")
    assert list(tmp_path.iterdir()) == []


def test_good_mat_still_reads(golden_dir):
    a, b, c = read_mosflm_matrix(golden_dir / "inputs" / "A.mat")
    assert all(np.isfinite(v.numpy()).all() for v in (a, b, c))
    assert float(a.norm()) > 0


# --- -sourcefile ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, where", [
    ("-10 0 0 1 1e-10\n-10 0 zz\n", "bad.src:2: column 3 is 'zz'"),
    ("-10 0 0 1 1e-10\n\n-10 0 0 one\n", "bad.src:3: column 4 is 'one'"),
    ("-10 0 0 1 nan\n", "bad.src:1: column 5 is 'nan'"),
    ("-10 0 0 1 1e999\n", "bad.src:1: column 5 is '1e999', too large"),
    ("\n\n", "no sources in the file"),
])
def test_malformed_sourcefile(tmp_path, monkeypatch, capsys, text, where):
    (tmp_path / "bad.src").write_text(text)
    rc, err, out = _main(tmp_path, monkeypatch, capsys, CELL + BASE + ["-sourcefile", "bad.src"])
    _one_line_error(rc, err, "-sourcefile bad.src", where)


def test_missing_sourcefile(tmp_path, monkeypatch, capsys):
    rc, err, _ = _main(tmp_path, monkeypatch, capsys, CELL + BASE + ["-sourcefile", "no.src"])
    _one_line_error(rc, err, "-sourcefile no.src", "cannot read")


def test_recorded_sourcefile_still_reads(golden_dir):
    pos, lam, w = read_sourcefile(golden_dir / "inputs" / "sources_5.txt", [1.0, 0.0, 0.0], 1e-10)
    assert pos.shape == (5, 3) and np.isfinite(lam.numpy()).all()


# --- -mask / -img --------------------------------------------------------------------------------
def _smv_cases(golden_dir, tmp_path):
    good = (golden_dir / "inputs" / "mask_256.img").read_bytes()
    (tmp_path / "text.img").write_text("just some text\n" * 100)
    (tmp_path / "short.img").write_bytes(good[:100])
    (tmp_path / "trunc.img").write_bytes(good[:512 + 1000])
    return {"text.img": "is not an SMV/ADSC image", "short.img": "too short for an SMV file",
            "trunc.img": "the file is truncated", "gone.img": "cannot read"}


@pytest.mark.parametrize("flag", ["-mask", "-img"])
@pytest.mark.parametrize("name", ["text.img", "short.img", "trunc.img", "gone.img"])
def test_malformed_smv_inputs(golden_dir, tmp_path, monkeypatch, capsys, flag, name):
    where = _smv_cases(golden_dir, tmp_path)[name]
    rc, err, _ = _main(tmp_path, monkeypatch, capsys, CELL + BASE + [flag, name])
    _one_line_error(rc, err, f"{flag} {name}", where)
    assert not (tmp_path / "floatimage.bin").exists()


def test_recorded_mask_still_works(golden_dir, tmp_path, monkeypatch, capsys):
    shutil.copy(golden_dir / "inputs" / "mask_256.img", tmp_path / "m.img")
    rc, err, _ = _main(tmp_path, monkeypatch, capsys,
                       CELL + ["-default_F", "10", "-N", "2", "-nonoise", "-nopgm", "-mask", "m.img"])
    assert rc == 0, err


# --- bad values that would divide by zero ----------------------------------------------------------
@pytest.mark.parametrize("extra, where", [
    (["-lambda", "0"], "wavelength must be positive"),
    (["-distance", "0"], "-distance must be a non-zero length"),
    (["-pixel", "0"], "-pixel must be a positive size"),
    (["-mosaic", "1e999", "-mosaic_domains", "2"], "mosaic spread must be a finite"),
])
def test_values_that_only_divide_by_zero_are_usage_errors(tmp_path, monkeypatch, capsys, extra, where):
    rc, err, _ = _main(tmp_path, monkeypatch, capsys, CELL + BASE + extra)
    assert rc == 2 and err.count("\n") == 1 and "usage error" in err and where in err


def test_input_file_error_is_a_value_error():
    assert issubclass(InputFileError, ValueError)


def test_an_engine_bug_is_one_line_and_exit_70(monkeypatch, capsys):
    """An exception nobody planned for (found by fuzzing: ZeroDivisionError in the auto
    oversampling with -beam_vector 0 1 0 -misset random) is one line and its own exit code, never
    a traceback with exit 1."""
    from engine import api
    from engine import cli as engine_cli

    def broken(*a, **k):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.delenv("NB_DEBUG", raising=False)
    monkeypatch.setattr(api, "run", broken)
    rc = engine_cli.main(["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100",
                          "-lambda", "1", "-distance", "100", "-detpixels", "8", "-floatfile", "x.bin"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 70
    assert len(err) == 1 and "internal error: ZeroDivisionError" in err[0] and "Traceback" not in err[0]
