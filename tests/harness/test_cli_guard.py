"""The command line refuses what the user can fix before anything runs (exit 2, one line, no
evidence folder, no ledger row), and nothing unexpected leaves as a traceback or as exit 0/1."""
from __future__ import annotations

import shutil

import pytest

from harness.cli import main as cli
from harness.cli import list_cases
from harness.model.paths import REPO_ROOT


def _run(tmp_path, capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli.main(["--results-dir", str(tmp_path / "res"), *args])
    return rc, capsys.readouterr().err


def _nothing_written(tmp_path) -> bool:
    res = tmp_path / "res"
    return not res.exists() or not any(p.name != "ledger.sqlite" for p in res.iterdir()) and \
        not (res / "ledger.sqlite").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0", "soon"])
def test_timeout_must_be_positive_finite_seconds(value, tmp_path, capsys):
    rc, err = _run(tmp_path, capsys, "run", "phi_carryover", "--recorded", "--timeout", value)
    assert rc == 2 and "--timeout" in err and "Traceback" not in err
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("extra, says", [
    (("--device", "cuda"), "CUDA is not available"),
    (("--device", "cpux"), "cpux"),
    (("--pixel", "5000", "3"), "outside the"),
    (("--pixel", "-1", "3"), "outside the"),
    (("--live", "--c-bin", "/nonexistent/nanoBragg"), "--live: no C binary"),
])
def test_usage_errors_are_exit_2_without_evidence_or_ledger_row(extra, says, tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover")
    rc, err = _run(tmp_path, capsys, "run", "phi_carryover", "--recorded" if "--live" not in extra else "--trace-only",
                   *extra)
    assert rc == 2, err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _nothing_written(tmp_path)


def test_a_case_argv_the_engine_refuses_is_exit_2_before_any_run(tmp_path, capsys, fake_engine):
    cases = tmp_path / "cases"
    cases.mkdir()
    text = (REPO_ROOT / "cases" / "phi_carryover.toml").read_text()
    assert 'argv = [' in text
    (cases / "phi_carryover.toml").write_text(text.replace('argv = [', 'argv = ["-no_such_flag", ', 1))
    calls = fake_engine("phi_carryover")
    rc, err = _run(tmp_path, capsys, "--cases-dir", str(cases), "run", "phi_carryover", "--recorded")
    assert rc == 2 and "-no_such_flag" in err and len(err.strip().splitlines()) == 1
    assert calls == [] and _nothing_written(tmp_path)


def test_results_path_through_a_file_is_one_line_exit_2(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder\n")
    capsys.readouterr()
    rc = cli.main(["--results-dir", str(blocker / "sub"), "run", "phi_carryover", "--recorded"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(blocker) in err


def test_an_unexpected_error_is_one_line_and_exit_3(tmp_path, capsys, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("registry exploded\nsecond line")
    monkeypatch.setattr(list_cases, "Registry", boom)
    rc, err = _run(tmp_path, capsys, "list")
    assert rc == 3 and err.strip() == ("nbparity: unexpected RuntimeError: registry exploded "
                                       "(rerun with --debug for the traceback)")
    rc, err = _run(tmp_path, capsys, "list", "--debug")
    assert rc == 3 and "Traceback" in err and "registry exploded" in err
    monkeypatch.setenv("NB_DEBUG", "1")
    rc, err = _run(tmp_path, capsys, "list")
    assert rc == 3 and "Traceback" in err


def test_a_sys_exit_inside_a_command_is_not_a_verdict(tmp_path, capsys, monkeypatch):
    def leaves(*a, **k):
        raise SystemExit(1)  # would read as "divergence"
    monkeypatch.setattr(list_cases, "Registry", leaves)
    rc, err = _run(tmp_path, capsys, "list")
    assert rc == 3 and len(err.strip().splitlines()) == 1 and "unexpected exit" in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_before_or_after_the_subcommand(where, tmp_path):
    opts = ["--results-dir", str(tmp_path / "r"), "--cases-dir", str(tmp_path / "c")]
    argv = [*opts, "gate", "--list"] if where == "before" else ["gate", "--list", *opts]
    args = cli.build_parser().parse_args(argv)
    assert (args.results_dir, args.cases_dir, args.command) == (str(tmp_path / "r"), str(tmp_path / "c"), "gate")
    assert args.golden_dir is None and args.debug is False  # not given anywhere: the defaults stay


def test_gate_list_shows_an_invalid_case_file_and_exits_2(tmp_path, capsys):
    cases = tmp_path / "cases"
    shutil.copytree(REPO_ROOT / "cases", cases)
    (cases / "broken.toml").write_text('name = "broken"\nargv = 5\n')
    capsys.readouterr()
    rc = cli.main(["--cases-dir", str(cases), "gate", "--list", "--cases", "phi_carryover"])
    out, err = capsys.readouterr()
    assert rc == 2 and "phi_carryover" in out and "broken.toml" in err
    shutil.rmtree(cases / "broken.toml", ignore_errors=True)
    (cases / "broken.toml").unlink()
    assert cli.main(["--cases-dir", str(cases), "gate", "--list", "--cases", "phi_carryover"]) == 0
