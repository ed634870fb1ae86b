"""Broken case files: exit 2, one line naming the file and the field, no run, no evidence."""
from __future__ import annotations

import pytest

from tests.faults import support as s

pytestmark = pytest.mark.faults


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} not in the case file"
    return text.replace(old, new, 1)


BROKEN = {
    "bad-toml": lambda t: _edit(t, 'name = "tiny"', 'name = "tiny'),
    "unknown-field": lambda t: t + 'colour = "red"\n',
    "wrong-type": lambda t: _edit(t, "timeout_s = 60.0", 'timeout_s = "sixty"'),
    "missing-argv": lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("argv")) + "\n",
    "negative-pixel": lambda t: _edit(t, "trace_pixels = [[1, 2]]", "trace_pixels = [[-1, 2]]"),
    "pixel-not-a-pair": lambda t: _edit(t, "trace_pixels = [[1, 2]]", "trace_pixels = [[1]]"),
    "name-not-file-name": lambda t: _edit(t, 'name = "tiny"', 'name = "other"'),
    "output-flag-in-argv": lambda t: _edit(t, '"-nopgm"]', '"-nopgm", "-floatfile", "x.bin"]'),
    "input-outside-root": lambda t: _edit(t, "timeout_s = 60.0", 'timeout_s = 60.0\ninputs = ["../../etc/passwd"]'),
    "bad-sha-pin": lambda t: t.replace(t[t.index('manifest_sha256 = "'):].splitlines()[0],
                                       'manifest_sha256 = "not-a-sha"'),
}
#: What the one line must name (besides the file) for each breakage.
FIELD = {"bad-toml": "TOML", "unknown-field": "colour", "wrong-type": "timeout_s", "missing-argv": "argv",
         "negative-pixel": "trace_pixels", "pixel-not-a-pair": "trace_pixels", "name-not-file-name": "name",
         "output-flag-in-argv": "argv", "input-outside-root": "inputs", "bad-sha-pin": "manifest_sha256"}


@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_broken_case_file_is_one_line_exit_2(world, breakage):
    path = world.cases / f"{s.CASE}.toml"
    path.write_text(BROKEN[breakage](path.read_text()))
    res = world.nbparity("run", s.CASE, "--no-pictures")
    s.assert_contract(world, res, 2, evidence=False)
    line = s.error_lines(res.stderr)[0]
    assert f"{s.CASE}.toml" in line and FIELD[breakage] in line, line


def test_case_file_that_is_not_utf8(world):
    (world.cases / f"{s.CASE}.toml").write_bytes(b'name = "tiny"\n\xff\xfe\x00garbage\n')
    res = world.nbparity("run", s.CASE, "--no-pictures")
    s.assert_contract(world, res, 2, evidence=False)
    assert f"{s.CASE}.toml" in s.error_lines(res.stderr)[0]


def test_unknown_case(world):
    res = world.nbparity("run", "tinny", "--no-pictures")
    s.assert_contract(world, res, 2, evidence=False)
    assert "tinny" in s.error_lines(res.stderr)[0]
