"""argv parsing with the C's semantics (c-behaviour.md §1), and the console entry point."""
from __future__ import annotations

import json
import math

import pytest

from engine import cli
from engine.config.argv import parse_argv, split_long_options
from engine.config.options import Options, UsageError
from engine.io.smv import read_header
from tests.conftest import recording_names

DEG = math.pi / 180


@pytest.mark.parametrize("name", recording_names())
def test_every_recorded_c_argv_parses_to_the_cs_detector(golden_dir, name):
    """Each recorded argv parses, to the detector size the C reported (-img headers included)."""
    case = json.loads((golden_dir / "cases" / name / "case.json").read_text())
    argv = case["argv"]
    headers = [(flag[1:], read_header(golden_dir / argv[i + 1]))
               for flag in ("-mask", "-img") for i, tok in enumerate(argv) if tok == flag]
    o = parse_argv(argv, headers=headers)
    assert [o.spixels, o.fpixels] == case["detpixels"]


def test_defaults_are_the_cs():
    o = parse_argv([])
    assert (o.pixel_size, o.distance, o.lambda0, o.polarization, o.adc_offset) == (1e-4, 0.1, 1e-10, 0.0, 40.0)
    assert o.convention == "MOSFLM" and o.pivot == "BEAM" and o.mosaic_seed == -12345678
    assert o.calculate_noise and o.write_pgm and o.interpolate is None


def test_twotheta_axis_also_sets_twotheta_and_sample_pivot():
    o = parse_argv(["-twotheta_axis", "5", "0", "0"])
    assert o.twotheta_axis == (5.0, 0.0, 0.0)
    assert o.twotheta == pytest.approx(5 * DEG) and o.pivot == "SAMPLE" and o.convention == "CUSTOM"


def test_pix0_vector_mm_is_caught_by_pix0_vector_and_switches_to_custom():
    o = parse_argv(["-pix0_vector_mm", "-12.9", "12.7", "-100"])
    assert o.convention == "CUSTOM"
    assert o.pix0_vector == pytest.approx((-0.0129, 0.0127, -0.1))   # mm → m, used in spec mode only
    assert parse_argv(["-pix0_vector", "1", "2", "3"]).pix0_vector == (1.0, 2.0, 3.0)


@pytest.mark.parametrize("flag", ["-fdet_vector", "-sdet_vector", "-odet_vector", "-beam_vector",
                                  "-polar_vector", "-spindle_axis", "-twotheta_axis", "-pix0_vector"])
def test_vector_flags_switch_to_custom(flag):
    assert parse_argv([flag, "0", "1", "0"]).convention == "CUSTOM"
    assert parse_argv([flag, "0", "1", "0", "-xds"]).convention == "XDS"   # a later convention wins


def test_substring_collisions():
    o = parse_argv(["-printout_pixel", "3", "4"])
    assert o.printout and o.printout_pixel == (3, 4)
    assert parse_argv(["-wavelength", "1.5"]).lambda0 == pytest.approx(1.5e-10)
    o = parse_argv(["-mosaic_seed", "5", "-misset_seed", "6"])
    assert (o.mosaic_seed, o.misset_seed, o.seed) == (-5, -6, None)   # -seed not matched
    assert parse_argv(["-mosaic_domains", "4"]).mosaic_domains == 4
    assert parse_argv(["-sample_size", "0.5"]).sample_x == pytest.approx(5e-4)


def test_guarded_flags_do_not_fire_their_longer_relatives():
    o = parse_argv(["-detector_thicksteps", "3", "-hdivsteps", "4", "-phisteps", "5", "-polar_vector", "1", "0", "0"])
    assert o.detector_thick == 0.0 and o.detector_thicksteps == 3
    assert o.hdivstep == -1.0 and o.hdivsteps == 4
    assert o.phistep == -1.0 and o.phisteps == 5
    assert o.polarization == 0.0
    o = parse_argv(["-oversample_thick", "-oversample_polar", "-oversample_omega"])
    assert o.oversample == -1 and o.oversample_thick and o.oversample_polar and o.oversample_omega


def test_last_value_wins_and_order_matters():
    assert parse_argv(["-distance", "100", "-distance", "50"]).distance == pytest.approx(0.05)
    assert (parse_argv(["-N", "5", "-Na", "3"]).Na, parse_argv(["-Na", "3", "-N", "5"]).Na) == (3, 5)
    assert parse_argv(["-nonoise", "-noisefile", "x.img"]).calculate_noise
    assert not parse_argv(["-noisefile", "x.img", "-nonoise"]).calculate_noise
    assert parse_argv(["-nopgm", "-pgmscale", "3"]).write_pgm
    assert parse_argv(["-interpolate", "-nointerpolate"]).interpolate is False
    assert parse_argv(["-Xbeam", "1", "-close_distance", "90"]).pivot == "SAMPLE"
    assert parse_argv(["-close_distance", "90", "-Xbeam", "1"]).pivot == "BEAM"


def test_cell_stops_at_the_next_flag_and_misset_forms():
    o = parse_argv(["-cell", "70", "80", "-N", "3"])
    assert o.cell == (70.0, 80.0, 0.0, 0.0, 0.0, 0.0) and o.Na == 3
    o = parse_argv(["-misset", "10", "20", "30"])
    assert o.misset == pytest.approx((10 * DEG, 20 * DEG, 30 * DEG)) and not o.misset_random
    o = parse_argv(["-misset_seed", "7", "-misset", "random", "-seed", "7"])
    assert o.misset_random and o.misset_seed == -7 and o.seed == -7


def test_units_as_the_c_stores_them():
    o = parse_argv(["-energy", "12398.42", "-dispersion", "2", "-divergence", "1", "-detector_abs", "500",
                    "-detector_thick", "450", "-water", "100", "-dmin", "2.5", "-beamsize", "0.1"])
    assert o.lambda0 == pytest.approx(1e-10)
    assert (o.dispersion, o.hdivrange, o.vdivrange) == pytest.approx((0.02, 1e-3, 1e-3))
    assert o.detector_mu == pytest.approx(2000.0) and o.detector_thick == pytest.approx(450e-6)
    assert (o.water_size, o.dmin, o.beamsize) == pytest.approx((100e-6, 2.5e-10, 1e-4))
    o = parse_argv(["-detector_thick", "50", "-detector_abs", "inf"])
    assert o.detector_thick == 0.0 and o.detector_mu == 0.0
    assert parse_argv(["-trace_pixel", "3", "4"]).trace_pixel == (3, 4)       # slow, fast
    assert parse_argv(["-dump_pixel", "3", "4"]).trace_pixel == (3, 4)


def test_negative_value_tokens_are_values_not_flags():
    o = parse_argv(["-beam_vector", "0.0005", "0.0", "-0.99", "-roi", "-1", "10", "-1", "20"])
    assert o.beam_vector == (0.0005, 0.0, -0.99) and o.roi == (-1, 10, -1, 20)


def test_every_engine_two_flag_is_accepted():
    argv = ("-mosaic 0.5 -mosaic_dom 3 -mosaic_seed 2 -mosaici 0.4 -mosaic_spread 0.3 -divergence 1 "
            "-hdivrange 1 -vdivrange 1 -hdivstep 0.1 -vdivstep 0.1 -hdivsteps 3 -vdivsteps 3 -divsteps 3 "
            "-round_div -square_div -dispersion 1 -dispsteps 3 -sourcefile s.txt -oversample_thick "
            "-oversample_polar -oversample_omega -dmin 2 -detector_abs 10 -detector_thick 10 "
            "-detector_thicksteps 2 -thicksteps 2 -curved_det -round_xtal -gauss_xtal -tophat_spots "
            "-binary_spots -square_xtal -fudge 2 -xtalsize 0.1 -xtal_size 0.1 -samplesize 0.1 -sample_thick 1 "
            "-sample_width 1 -sample_height 1 -xtal_thick 1 -xtal_width 1 -xtal_height 1 -width 1 -height 1 "
            "-density 1 -MW 1 -molecules 1 -misset random -misset_seed 3 -interpolate -nointerpolate -water 10 "
            "-intfile a -intimage a -noisefile b -noiseimage b -pgmfile c -pgmimage c -floatfile d "
            "-floatimage d -nonoise -nopgm -scale 2 -pgmscale 2 -adc 10 -seed 4 -mask m.img -img i.img "
            "-printout -printout_pixel 1 2 -noprogress -progress -trace_pixel 1 2 -dump_pixel 1 2 -coherent "
            "-stol f -4stol f -Q f -stolout g -pivot beam -ORGX 1 -ORGY 1 -Xclose 1 -Yclose 1 "
            "-detsize 10 -detsize_f 10 -detsize_s 10 -detpixels 10 -detpixels_f 10 -detpixels_s 10 "
            "-detpixels_x 10 -detpixels_y 10 -point_pixel -polar 0.5 -nopolar -flux 1 -exposure 1 -fluence 1 "
            "-phi 1 -osc 1 -phistep 1 -phisteps 1 -mat a.mat -hkl h.hkl -default_F 1 -lambda 1 -wave 1 "
            "-N 2 -Na 2 -Nb 2 -Nc 2 -cell 1 2 3 90 90 90 -denzo -adxv -mosflm -dials -xds").split()
    o = parse_argv(argv)
    assert o.convention == "XDS" and o.curved_det and o.mask_file == "m.img" and o.img_file == "i.img"


@pytest.mark.parametrize("argv, match", [
    (["-distanse", "100"], "unknown flag -distanse"),
    (["-dispstep", "0.1"], "unknown flag -dispstep"),          # the C silently ignores it
    (["-distance", "100", "50"], "unexpected argument '50'"),
    (["-distance"], "-distance needs 1 value"),
    (["-distance", "abc"], "-distance: expected a number"),
    (["-N", "2.5"], "-N: expected an integer"),
    (["-fdet_vector", "1", "0"], "-fdet_vector needs 3 value"),
    (["-pivot", "middle"], "expected 'beam' or 'sample'"),
    (["-cell", "-N", "5"], "-cell: give the cell"),
    (["-detector_thick"], "-detector_thick needs 1 value"),    # the C reads a NULL argument here
])
def test_bad_command_lines_are_one_line_usage_errors(argv, match):
    with pytest.raises(UsageError, match=match) as exc:
        parse_argv(argv)
    assert "\n" not in str(exc.value)


def test_curved_det_as_the_last_token_is_ignored_like_the_c():
    o = parse_argv(["-curved_det"])
    assert not o.curved_det and any("-curved_det" in n for n in o.notes)
    assert parse_argv(["-curved_det", "-noprogress"]).curved_det


def test_long_options():
    argv, found = split_long_options(["--mode", "c-parity", "-N", "2", "--dtype=float32", "--c-threads", "4",
                                      "--device", "cpu"])
    assert argv == ["-N", "2"] and found == {"mode": "c-parity", "dtype": "float32", "c_threads": 4, "device": "cpu"}
    assert split_long_options(["--phi-mode=spec"])[1] == {"mode": "spec"}
    for bad, match in ((["--mode", "fast"], "--mode: expected one of"), (["--colour"], "unknown option --colour"),
                       (["--c-threads", "0"], "thread count"), (["--dtype", "float16"], "--dtype")):
        with pytest.raises(UsageError, match=match):
            split_long_options(bad)
    assert parse_argv(["--mode", "c-parity"]).mode == "c-parity"


def test_smv_header_values_are_defaults_that_argv_overrides():
    header = {"SIZE1": "100", "SIZE2": "80", "PIXEL_SIZE": "0.2", "DISTANCE": "150", "BEAM_CENTER_Y": "3.0"}
    o = parse_argv(["-distance", "90"], headers=[("mask", header)])
    assert (o.fpixels, o.spixels, o.pixel_size) == (100, 80, pytest.approx(2e-4))
    assert o.distance == pytest.approx(0.09)                 # argv beats the header
    assert o.Ybeam == pytest.approx(80 * 2e-4 - 3e-3)        # the mask's Y is flipped
    assert parse_argv([], headers=[("img", header)]).Ybeam == pytest.approx(3e-3)


def test_main_prints_usage_errors_on_one_line_and_returns_2(capsys):
    assert cli.main(["-distanse", "100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-distanse" in err


def test_main_reports_input_file_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.hkl").write_text("1 2 3 100\n1 2 x 4\n")
    rc = cli.main(["-cell", "50", "-hkl", "bad.hkl", "-detpixels", "8", "-floatfile", "f.bin"])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.hkl line 2" in err and err.count("\n") == 1
    rc = cli.main(["-mat", "missing.mat", "-default_F", "1", "-detpixels", "8"])
    err = capsys.readouterr().err
    assert rc == 2 and "missing.mat" in err


def test_main_passes_long_options_to_the_run_api(monkeypatch, capsys):
    import engine.api

    seen = {}

    class Result:
        stdout = "hello from the engine\n"

    def fake_run(argv, **kw):
        seen.update(kw, argv=argv)
        return Result()

    monkeypatch.setattr(engine.api, "run", fake_run)
    assert cli.main(["-cell", "50", "-default_F", "1", "--mode", "c-parity", "--c-threads", "2"]) == 0
    assert seen["argv"] == ["-cell", "50", "-default_F", "1"]
    assert seen["mode"] == "c-parity" and seen["c_threads"] == 2 and seen["dtype"] == "float64"
    assert capsys.readouterr().out == "hello from the engine\n"


def test_options_is_frozen():
    with pytest.raises(Exception):
        Options().distance = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("entry", ["-m engine", "console_main"])
def test_both_entry_points_exit_with_mains_status_and_flush_every_line(tmp_path, entry):
    # Both leave through exit_with (os._exit past torch's teardown): the status must be main's and
    # stdout, piped and so block-buffered, must arrive whole.
    import subprocess
    import sys
    argv = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-N", "2", "-lambda", "1",
            "-distance", "100", "-detpixels", "8", "-pixel", "0.1", "-nonoise", "-nopgm", "-trace_pixel", "3", "3"]
    code = ("import sys; from engine.cli import console_main; sys.argv = ['nanobragg-torch'] + sys.argv[1:]; "
            "console_main()")
    prefix = [sys.executable, "-m", "engine"] if entry == "-m engine" else [sys.executable, "-c", code]
    ok = subprocess.run(prefix + argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("TRACE_PY") > 20 and ok.stdout.rstrip().splitlines()[-1].strip()
    assert (tmp_path / "floatimage.bin").stat().st_size == 8 * 8 * 4
    bad = subprocess.run(prefix + ["-cell", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("nanobragg-torch: usage error")
