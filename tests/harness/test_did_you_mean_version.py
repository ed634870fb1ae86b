"""A mistyped case, key, subcommand, option or tag gets the nearest names; --version says what ran."""
from __future__ import annotations

import io
import subprocess

import pytest
from rich.console import Console

from harness.cli import main as cli
from harness.cli.common import CliConsole
from harness.model.paths import REPO_ROOT
from harness.model.suggest import nearest


def _cli(capsys, *argv):
    err = io.StringIO()
    rc = cli.main(list(argv), console=CliConsole(out=Console(file=io.StringIO()), err=Console(file=err, width=300)))
    return rc, err.getvalue() + capsys.readouterr().err


def test_nearest_prefers_close_spellings_then_containment():
    assert nearest("supervisr", ["supervisor", "supervisor_spec_vs_c", "simple_cubic"])[0] == "supervisor"
    assert nearest("cubic", ["simple_cubic", "cubic_tilted_detector", "roi"]) == ["cubic_tilted_detector",
                                                                                  "simple_cubic"]
    assert nearest("zzz", ["a", "b"]) == []


@pytest.mark.parametrize("argv, hint", [
    (["run", "supervisr"], "did you mean: supervisor"),
    (["show", "simple_cubc"], "did you mean: simple_cubic"),
    (["run", "phi_carryover", "--keys", "k_fra"], "did you mean: k_frac"),
    (["rnu", "supervisor"], "did you mean: run?"),
    (["run", "phi_carryover", "--no-pictrues"], "did you mean: --no-pictures"),
    (["list", "--tag", "smal"], "did you mean: small?"),
    (["gate", "--tags", "smal", "--list"], "did you mean: small?"),
    (["gate", "--cases", "supervisr", "--list"], "did you mean: supervisor"),
])
def test_mistyped_names_get_the_nearest_ones(capsys, argv, hint):
    rc, err = _cli(capsys, *argv)
    assert rc == 2, err
    assert hint in err and len([ln for ln in err.splitlines() if "did you mean" in ln]) == 1


def test_version_names_harness_commit_engine_torch_and_c(tmp_path, monkeypatch, capsys):
    fake_c = tmp_path / "nanoBragg"
    fake_c.write_bytes(b"#!/bin/sh\n")
    fake_c.chmod(0o755)
    monkeypatch.setenv("NB_C_BIN", str(fake_c))
    monkeypatch.delenv("NB_C_FIXED_BIN", raising=False)
    err = io.StringIO()
    rc = cli.main(["--version"], console=CliConsole(out=Console(file=io.StringIO()), err=Console(file=err)))
    text = capsys.readouterr().out
    assert rc == 0 and err.getvalue() == ""
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = text.splitlines()
    assert lines[0].startswith("nbparity ") and f"git commit {head} (" in lines[1]
    assert ("dirty" in lines[1]) != ("clean" in lines[1])
    assert lines[2].startswith("engine ") and "C defects registered" in lines[2]
    import torch
    assert lines[3].startswith(f"torch {torch.__version__} (") and ("CPU build" in lines[3] or "CUDA" in lines[3])
    import hashlib
    sha = hashlib.sha256(fake_c.read_bytes()).hexdigest()
    assert f"C (instrumented-c): {fake_c} (from NB_C_BIN), sha256 {sha}" in text


def test_history_of_a_mistyped_case_names_the_cases_in_the_ledger(tmp_path, capsys):
    from harness.service import ledger
    from tests.harness.service_fixtures import append, silent_ledger

    lg = silent_ledger(ledger.ledger_path(tmp_path))
    append(lg, "phi_carryover", "parity", 0)
    rc, err = _cli(capsys, "--results-dir", str(tmp_path), "history", "phi_carryovr", "--no-plot")
    assert rc == 2 and "did you mean: phi_carryover?" in err
