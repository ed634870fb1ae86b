"""Which files a case's argv reads, and where they come from (never the caller's cwd)."""
from __future__ import annotations

import json

import pytest

from harness.cli import main as cli
from harness.model.errors import InputError
from harness.registry.cases import load_case
from harness.runners import inputs
from tests.harness.conftest import CASES


def test_the_engines_option_table_says_which_flags_read_files():
    argv = ["-mat", "a.mat", "-hkl", "p.hkl", "-sourcefile", "s.txt", "-mask", "m.img", "-img", "i.img",
            "-stol", "x.stol", "-intfile", "out.img", "-stolout", "o.stol", "-N", "5"]
    assert sorted(inputs.argv_reads(argv)) == sorted(["a.mat", "p.hkl", "s.txt", "m.img", "i.img", "x.stol"])


def test_a_file_the_argv_reads_but_inputs_does_not_list_is_refused(golden_dir):
    case = load_case(CASES / "supervisor.toml")
    undeclared = case.model_copy(update={"inputs": ["inputs/A.mat"]})
    with pytest.raises(InputError, match="argv reads 'inputs/scaled.hkl', which inputs does not list"):
        inputs.resolve(undeclared, golden_dir)
    assert set(inputs.resolve(case, golden_dir)) == {"inputs/A.mat", "inputs/scaled.hkl"}


def test_absolute_argv_rewrites_only_file_values(tmp_path):
    paths = {"inputs/A.mat": tmp_path / "inputs" / "A.mat"}
    argv = inputs.absolute_argv(["-mat", "inputs/A.mat", "-N", "inputs/A.mat"], paths)
    assert argv[1] == str(paths["inputs/A.mat"].resolve())


def test_a_same_named_file_in_the_cwd_is_never_read(tmp_path, monkeypatch, capsys, fake_engine, golden_dir):
    # The case forgets to declare an input; a different file of that name sits in the cwd.
    text = (CASES / "supervisor_brightest_trace.toml").read_text()
    text = text.replace('    "inputs/scaled.hkl",\n', "", 1)
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "supervisor_brightest_trace.toml").write_text(text)
    assert load_case(cases / "supervisor_brightest_trace.toml").inputs == ["inputs/A.mat"]
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "scaled.hkl").write_text("0 0 0 1000\n")
    monkeypatch.chdir(tmp_path)
    calls = fake_engine("supervisor_brightest_trace")
    rc = cli.main(["--cases-dir", str(cases), "--results-dir", str(tmp_path / "res"), "run",
                   "supervisor_brightest_trace", "--recorded", "--trace-only", "--json"])
    out, err = capsys.readouterr()
    assert rc == 2 and calls == []
    message = err + (json.loads(out).get("failure", "") if out.strip() else "")
    assert "which inputs does not list" in message
