"""Usage errors: exit 2, one line, and nothing run: no evidence directory, no ledger row."""
from __future__ import annotations

import pytest

from tests.faults import support as s

pytestmark = pytest.mark.faults

USAGE = {
    "device-cuda-without-cuda": ["--device", "cuda"],
    "device-misspelt": ["--device", "cdua"],
    "timeout-nan": ["--timeout", "nan"],
    "timeout-inf": ["--timeout", "inf"],
    "timeout-negative": ["--timeout", "-5"],
    "timeout-zero": ["--timeout", "0"],
    "unknown-key": ["--keys", "not_a_key"],
    "unknown-mode": ["--mode", "fast"],
    "mode-without-reference": ["--mode", "spec"],
}


@pytest.mark.parametrize("name", sorted(USAGE))
def test_usage_error(world, name):
    res = world.nbparity("run", s.CASE, "--recorded", "--no-pictures", *USAGE[name])
    s.assert_contract(world, res, 2, evidence=False)


def test_live_without_any_binary(world):
    res = world.nbparity_without_default_binary("run", s.CASE, "--live", "--no-pictures")
    s.assert_contract(world, res, 2, evidence=False)
    assert "--c-bin" in s.error_lines(res.stderr)[0] or "NB_C_BIN" in s.error_lines(res.stderr)[0]


@pytest.mark.parametrize("pixel", [("4", "0"), ("0", "4000")])
def test_pixel_outside_the_detector(world, pixel):
    c = world.fake_c("ok")
    res = world.nbparity("run", s.CASE, "--live", "--c-bin", str(c), "--no-pictures", "--pixel", *pixel)
    s.assert_contract(world, res, 2, evidence=False)
    assert "--pixel" in s.error_lines(res.stderr)[0]


def test_pixel_not_a_number(world):
    res = world.nbparity("run", s.CASE, "--no-pictures", "--pixel", "1", "x")
    s.assert_contract(world, res, 2, evidence=False)
