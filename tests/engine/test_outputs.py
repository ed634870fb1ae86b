"""The run API and the CLI write the C's output files: byte for byte against the recorded runs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine.render.frame
from engine import api, cli
from engine.config.argv import LONG_OPTIONS, parse_argv
from engine.config.c_flags import BRANCHES
from engine.io.floatimage import read_floatimage

REPO = Path(__file__).resolve().parents[2]
TINY = ["-cell", "50", "50", "50", "90", "90", "90", "-default_F", "10", "-N", "2",
        "-detpixels", "8", "-noprogress"]


def _case(golden_dir: Path, name: str) -> dict:
    return json.loads((golden_dir / "cases" / name / "case.json").read_text())


def _layout(golden_dir: Path, tmp: Path, name: str) -> Path:
    """A working directory shaped like the golden root: inputs/ and an empty cases/<name>/."""
    (tmp / "inputs").symlink_to(golden_dir / "inputs", target_is_directory=True)
    (tmp / "cases" / name).mkdir(parents=True)
    return tmp


def _tail(text: str) -> list[str]:
    """The lines from the solid-angle line on (everything the C prints after the pixel loop)."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("solid angle subtended"))
    return lines[start:]


@pytest.mark.parametrize("name, files, absent", [
    ("smv_noise", ("floatimage.bin", "intimage.img", "noiseimage.img"), ("image.pgm",)),
    ("pgm_scale_adc", ("floatimage.bin", "intimage.img", "image.pgm"), ("noiseimage.img",)),
])
def test_run_writes_the_recorded_files_byte_for_byte(golden_dir, tmp_path, name, files, absent):
    case = _case(golden_dir, name)
    work = _layout(golden_dir, tmp_path, name)
    result = api.run(case["argv"], mode="c-parity", workdir=work)
    golden_case = golden_dir / "cases" / name
    for f in files:
        got = (work / "cases" / name / f).read_bytes()
        assert got == (golden_case / f).read_bytes(), f"{name}/{f} differs from the C's"
    # Named outputs go where argv says; the unnamed int image is not also written to ./
    for f in absent:
        assert not (work / "cases" / name / f).exists() and not (work / f).exists()
    assert not (work / "intimage.img").exists()
    # Every line the C prints after the pixel loop, verbatim.
    golden_stdout = (golden_case / "c_stdout.log").read_text()
    assert _tail(result.stdout) == _tail(golden_stdout)
    assert result.stats["written"] == [case["argv"][case["argv"].index(flag) + 1] for flag in
                                       ("-floatfile", "-intfile", "-pgmfile", "-noisefile")
                                       if flag in case["argv"] and not (flag == "-noisefile" and
                                                                        "-nonoise" in case["argv"])]


def test_noise_parameter_block_matches_the_c(golden_dir, tmp_path):
    case = _case(golden_dir, "smv_noise")
    work = _layout(golden_dir, tmp_path, "smv_noise")
    out = api.run(case["argv"], mode="c-parity", workdir=work, write_outputs=False).stdout.splitlines()
    c = (golden_dir / "cases" / "smv_noise" / "c_stdout.log").read_text().splitlines()
    at = c.index("  noise image paramters:")
    block = c[at - 1:at + 3]          # blank line, title, seed, water size
    i = out.index("  noise image paramters:")
    assert out[i - 1:i + 3] == block and "  seed: -12345" in block
    assert not any("photons on noise image" in ln for ln in out)   # no draw without writing
    assert list(tmp_path.joinpath("cases", "smv_noise").iterdir()) == []


def test_default_names_go_into_workdir_and_write_outputs_false_writes_nothing(tmp_path):
    res = api.run(TINY + ["-seed", "7"], workdir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "floatimage.bin", "image.pgm", "intimage.img", "noiseimage.img"]
    assert res.stats["seed"] == -7
    img = read_floatimage(tmp_path / "floatimage.bin", (8, 8))
    assert np.array_equal(img, res.float_image)
    pgm = (tmp_path / "image.pgm").read_bytes()
    assert pgm.startswith(b"P5\n8 8\n# pixels scaled by ") and len(pgm) - pgm.index(b"255\n") - 4 == 64
    for f in ("intimage.img", "noiseimage.img"):
        blob = (tmp_path / f).read_bytes()
        assert len(blob) == 512 + 2 * 64 and blob.startswith(b"{\nHEADER_BYTES=512;")
        assert b"SIZE1=8;\nSIZE2=8;\n" in blob
    other = tmp_path / "second"
    other.mkdir()
    res2 = api.run(TINY + ["-seed", "7"], workdir=other, write_outputs=False)
    assert list(other.iterdir()) == []
    assert np.array_equal(res2.float_image, res.float_image)
    assert "writing intimage.img as 2-byte integers" in res2.stdout


@pytest.mark.parametrize("flags, noise, pgm", [
    (["-nonoise", "-noisefile", "n.img"], "n.img", "image.pgm"),
    (["-noisefile", "n.img", "-nonoise"], None, "image.pgm"),
    (["-nopgm", "-pgmfile", "p.pgm"], "noiseimage.img", "p.pgm"),
    (["-pgmfile", "p.pgm", "-nopgm"], "noiseimage.img", None),
    (["-nopgm", "-pgmscale", "2"], "noiseimage.img", "image.pgm"),     # -pgmscale turns it back on
    (["-nonoise", "-nopgm"], None, None),
])
def test_last_switch_wins(tmp_path, flags, noise, pgm):
    api.run(TINY + ["-seed", "3"] + flags, workdir=tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    want = {"floatimage.bin", "intimage.img"} | {n for n in (noise, pgm) if n}
    assert names == want


def test_clock_seed_is_printed_and_reproduces_the_noise(tmp_path):
    first = tmp_path / "a"
    first.mkdir()
    res = api.run(TINY + ["-nopgm"], workdir=first)
    word = res.stats["seed"]
    assert word < 0 and f"  seed: {word}" in res.stdout
    assert re.search(rf"add -seed {-word} to repeat", res.stdout)
    again = tmp_path / "b"
    again.mkdir()
    res2 = api.run(TINY + ["-nopgm", "-seed", str(-word)], workdir=again)
    assert "to repeat" not in res2.stdout
    assert (again / "noiseimage.img").read_bytes() == (first / "noiseimage.img").read_bytes()


def test_int_scale_and_adc_follow_the_flags(tmp_path):
    res = api.run(TINY + ["-nonoise", "-nopgm", "-scale", "1000", "-adc", "5"], workdir=tmp_path)
    data = np.frombuffer((tmp_path / "intimage.img").read_bytes()[512:], dtype="<u2").reshape(8, 8)
    want = np.floor((res.float_image.astype(np.float64) * 1000 + 5 + 0.5).astype(np.float32))
    assert np.array_equal(data, np.clip(want, 0, 65535).astype(np.uint16))
    assert "intfile_scale = 1000" in res.stdout


def test_cli_writes_the_recorded_files(golden_dir, tmp_path):
    case = _case(golden_dir, "pgm_scale_adc")
    work = _layout(golden_dir, tmp_path, "pgm_scale_adc")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "engine", *case["argv"], "--mode", "c-parity"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for f in ("floatimage.bin", "intimage.img", "image.pgm"):
        assert (work / "cases" / "pgm_scale_adc" / f).read_bytes() == \
            (golden_dir / "cases" / "pgm_scale_adc" / f).read_bytes()
    assert sorted(p.name for p in work.iterdir()) == ["cases", "inputs"]
    golden_stdout = (golden_dir / "cases" / "pgm_scale_adc" / "c_stdout.log").read_text()
    assert _tail(proc.stdout) == _tail(golden_stdout)


# --- non-finite images ---------------------------------------------------------------------------
def test_nan_image_is_refused_before_anything_is_written(tmp_path, capsys):
    argv = TINY + ["-default_F", "nan"]
    with pytest.raises(api.NonFiniteImageError) as info:
        api.run(argv, workdir=tmp_path, check_finite=True)
    assert info.value.count == 64 and info.value.first == (0, 0)
    assert list(tmp_path.iterdir()) == []
    # Without the check, the API writes what it rendered (as the C would).
    res = api.run(argv + ["-nonoise", "-nopgm"], workdir=tmp_path)
    assert np.isnan(res.float_image).all()


def test_cli_exits_3_on_a_nan_image(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = cli.main(TINY + ["-default_F", "nan"])
    captured = capsys.readouterr()
    assert rc == 3
    assert captured.err.count("\n") == 1
    assert "64 non-finite pixels" in captured.err and "(slow 0, fast 0)" in captured.err
    assert list(tmp_path.iterdir()) == []
    assert "max_I = " in captured.out


def test_cli_reports_one_bad_pixel_by_position(tmp_path, capsys, monkeypatch):
    real = engine.render.frame.render

    def poisoned(setup, **kw):
        result = real(setup, **kw)
        result.float_image[5, 3] = float("inf")
        return result

    monkeypatch.setattr(api, "render", poisoned)
    monkeypatch.chdir(tmp_path)
    assert cli.main(TINY) == 3
    err = capsys.readouterr().err
    assert "1 non-finite pixel " in err and "(slow 5, fast 3) = inf" in err


def test_unwritable_output_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    rc = cli.main(TINY + ["-nonoise", "-nopgm", "-intfile", "afile/int.img"])
    err = capsys.readouterr().err
    assert rc == 9 and err.count("\n") == 1 and "afile/int.img" in err


# --- trace_only, -printout_pixel, --help ---------------------------------------------------------
def test_trace_only_uses_render_trace_only(monkeypatch, tmp_path):
    full = api.run(TINY + ["-trace_pixel", "2", "3"], write_outputs=False)
    calls = []

    def fake(setup):
        calls.append(setup)
        return engine.render.frame.render(setup)

    monkeypatch.setattr(api, "render_trace_only", fake)
    res = api.run(TINY + ["-trace_pixel", "2", "3"], workdir=tmp_path, trace_only=True)
    assert len(calls) == 1 and res.trace == full.trace
    assert set(vars(res)) == set(vars(full))
    assert list(tmp_path.iterdir()) == [] and res.stats["written"] == []   # a partial image


def test_printout_flags_are_harmless(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    opts = parse_argv(TINY + ["-printout_pixel", "3", "4", "-printout"])
    assert opts.printout and opts.printout_pixel == (3, 4)
    assert cli.main(TINY + ["-nonoise", "-nopgm", "-printout_pixel", "3", "4"]) == 0
    assert cli.main(TINY + ["-nonoise", "-nopgm", "-printout"]) == 0


def test_help_is_true(capsys):
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert text.strip() == cli.HELP.strip()
    # Every single-dash flag the help names is one the parser takes.
    flags = set(re.findall(r"(?<![\w-])(-[a-zA-Z_]\w*)", text)) - {"-h", "-help", "-torch"}
    assert {"-intfile", "-noisefile", "-pgmfile", "-nonoise", "-nopgm", "-seed", "-scale",
            "-pgmscale", "-adc", "-floatfile"} <= flags
    for flag in flags:
        assert any(br.match(flag) for br in BRANCHES), flag
    # Every long option it names exists, and every one that exists is named.
    assert set(re.findall(r"--[a-z-]+", text)) - {"--help"} == set(LONG_OPTIONS)
    for code in ("0 success", "2 bad command line", "3 the image has NaN", "9 an output file"):
        assert code in text
