"""Shell metacharacters in names and argv, and sizes no machine can hold."""
from __future__ import annotations

import pytest

from tests.faults import support as s

pytestmark = pytest.mark.faults

HOSTILE_NAMES = ["tiny case", "tiny;ls", "$(touch pwned)", "`touch pwned`", "../tiny", "tiny\nx"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["space", "semicolon", "dollar-paren", "backtick",
                                                      "dotdot", "newline"])
def test_hostile_case_name_is_refused(world, name):
    res = world.nbparity("run", name, "--no-pictures")
    s.assert_contract(world, res, 2, evidence=False)
    assert not (world.root / "pwned").exists()
    assert not list(world.results.glob("*pwned*")) and not (world.results / "tiny case").exists()


def test_case_file_with_a_hostile_name_is_one_line_in_list(world):
    (world.cases / "$(touch pwned);x.toml").write_text(s.case_toml(name="$(touch pwned);x"))
    res = world.nbparity("list")
    s.assert_contract(world, res, 2, evidence=False)
    assert "pwned" in s.error_lines(res.stderr)[0]
    assert not (world.root / "pwned").exists()


def test_argv_values_with_metacharacters_reach_the_c_literally(world):
    hostile = "inputs/a b;$(touch pwned)`id`.hkl"
    (world.golden / "inputs").mkdir(exist_ok=True)
    (world.golden / hostile).write_text("0 0 0 10\n")
    argv = [*s.ARGV, "-hkl", hostile]
    text = s.case_toml(argv=argv).replace("timeout_s = 60.0", "timeout_s = 60.0\ninputs = " + f'["{hostile}"]')
    world.write_case(text)
    record = world.root / "argv.txt"
    c = world.fake_c("argv", f'printf "%s\\n" "$@" > "{record}"\necho "ERROR: stop here" >&2\nexit 1\n')
    res = world.nbparity("run", s.CASE, "--live", "--c-bin", str(c), "--no-pictures")
    s.assert_contract(world, res, 3, evidence=True)
    got = record.read_text().splitlines()
    assert got[got.index("-hkl") + 1] == hostile
    assert not any(p.name == "pwned" for p in world.root.rglob("pwned"))


@pytest.mark.parametrize("flags", [["-detpixels", "200000"], ["-oversample", "100000"]],
                         ids=["detpixels-200000", "oversample-100000"])
def test_engine_refuses_sizes_it_cannot_hold(world, flags):
    res = world.engine(*s.ARGV, *flags, "-floatfile", str(world.root / "out.bin"), timeout=60)
    assert res.rc == 2, res.show()
    assert "Traceback" not in res.stderr + res.stdout, res.show()
    lines = s.error_lines(res.stderr)
    assert len(lines) == 1 and flags[0] in lines[0], res.show()
    assert res.seconds < s.GRACE_S + 20, res.show()  # refused up front, nothing allocated
    assert not (world.root / "out.bin").exists()
