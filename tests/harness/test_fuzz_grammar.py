"""The fuzz grammar comes from the engine's option table, and what it draws is argv the C's
option loop (as the engine models it) accepts."""
from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from engine.config import c_flags  # noqa: E402
from engine.config.argv import parse_argv  # noqa: E402
from engine.config.options import Options  # noqa: E402
from harness.cli.main import main  # noqa: E402
from harness.service.fuzz import grammar  # noqa: E402
from harness.service.fuzz.strategy import examples  # noqa: E402


def test_every_flag_fires_a_branch_of_the_option_table():
    for flag in grammar.flags():
        assert any(br.match(flag.name) for br in c_flags.BRANCHES), flag


def test_every_drawn_field_is_an_options_field():
    fields = {f.name for f in dataclasses.fields(Options)}
    for flag in grammar.flags():
        if flag.field != "misset_random":
            assert flag.field in fields, flag


def test_the_issue_families_are_there():
    wanted = {"conventions", "beam-centre", "vectors", "oversample", "mosaic", "divergence", "dispersion",
              "sources", "thickness", "shapes", "interpolation", "roi", "mask", "img", "seed", "curved"}
    assert wanted <= set(grammar.FAMILIES)
    names = {f.name for f in grammar.flags()}
    assert {"-twotheta", "-pix0_vector", "-roi", "-mask", "-img", "-seed", "-sourcefile", "-curved_det",
            "-binary_spots", "-interpolate"} <= names


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(examples())
def test_drawn_argv_parses_and_stays_small(ex):
    opts = parse_argv(list(ex.argv))  # files are not read by the parser
    assert 1 <= opts.fpixels <= 128 and opts.fpixels == opts.spixels
    assert 0 <= ex.pixel[0] < opts.spixels and 0 <= ex.pixel[1] < opts.fpixels
    for name in ex.files:
        assert name in ex.argv


def test_unknown_family_is_one_line_exit_2(capsys, tmp_path):
    code = main(["--results-dir", str(tmp_path), "fuzz", "--vs", "engine", "--families", "detectr", "--examples", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "detectr" in err[0] and "did you mean" in err[0]


def test_bad_budget_is_a_usage_error(capsys):
    assert main(["fuzz", "--budget", "ten minutes"]) == 2
    assert "--budget" in capsys.readouterr().err


def test_every_family_field_has_a_drawable_flag():
    """A new store_* helper in the option table must not silently drop flags from the draw
    (store_angle once dropped -twotheta, -detector_rot*, -mosaic, -phi, -osc and -phistep)."""
    drawn = {f.field for f in grammar.flags()}
    # -misset's angles are drawn through its branch's 'misset_random' field (values.values).
    assert set(grammar.FAMILY_OF_FIELD) - drawn == {"misset"}
