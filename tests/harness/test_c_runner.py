"""The live C runner, exercised with a fake nanoBragg that replays a recorded run."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main as cli
from harness.model.errors import InputError, RunnerFailure, UsageError
from harness.runners.c import CRunner
from harness.runners.choose import find_binary
from tests.harness.conftest import recorded_image


def run(fake, request):
    return CRunner(fake).run(request)


def test_replay_gives_stdout_image_and_provenance(fake_c, repo_case, request_for, golden_dir):
    fake = fake_c("phi_carryover")
    out = run(fake, request_for(repo_case("phi_carryover")))
    assert out.exit_code == 0 and "TRACE_C: F_cell" in out.stdout
    np.testing.assert_array_equal(out.image, recorded_image(golden_dir, "phi_carryover"))
    assert len(out.provenance["binary_sha256"]) == 64
    assert out.argv[-3:] == ("-trace_pixel", "10", "12")
    assert "-floatfile" in out.argv and out.wall_s >= 0


def test_each_run_gets_a_fresh_private_cwd(fake_c, repo_case, request_for, tmp_path):
    fake = fake_c("phi_carryover")
    first = run(fake, request_for(repo_case("phi_carryover")))
    second = run(fake, request_for(repo_case("phi_carryover")))
    # The fake drops Fdump.bin into its cwd; the next run must not see it.
    assert "FAKE cwd_before=\n" in second.stderr
    assert first.cwd != second.cwd
    assert not Path(first.cwd).exists() and not Path(second.cwd).exists()
    assert Path(first.cwd).resolve() != Path.cwd().resolve()
    assert not (Path.cwd() / "Fdump.bin").exists()


def test_inputs_are_linked_under_their_relative_names(fake_c, repo_case, request_for):
    case = repo_case("supervisor")
    # Replaying phi_carryover's output is fine here: only the cwd layout is checked.
    fake = fake_c("phi_carryover")
    req = request_for(case.model_copy(update={"references": {"c-parity": case.references["c-parity"]}}))
    out = run(fake, req)
    assert "FAKE cwd_before=inputs" in out.stderr
    assert "inputs/A.mat" in out.argv


def test_threads_pinned_and_tap_variables_removed(fake_c, repo_case, request_for, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("TRACE_C_TAP5", "1")
    out = run(fake_c("phi_carryover"), request_for(repo_case("phi_carryover")))
    assert "FAKE OMP_NUM_THREADS=1" in out.stderr
    assert "FAKE TAP5=\n" in out.stderr
    assert out.env["OMP_NUM_THREADS"] == "1"


def test_timeout_kills_the_process(fake_c, repo_case, request_for, tmp_path):
    pidfile = tmp_path / "pid"
    fake = fake_c("phi_carryover", "hang", pidfile=str(pidfile))
    t0 = time.monotonic()
    with pytest.raises(RunnerFailure, match="timed out after 1 s") as e:
        run(fake, request_for(repo_case("phi_carryover"), timeout_s=1))
    assert time.monotonic() - t0 < 30
    assert e.value.output is not None and e.value.output.exit_code is None
    pid = int(pidfile.read_text())
    time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_crash_is_a_runner_failure_with_partial_stdout(fake_c, repo_case, request_for):
    with pytest.raises(RunnerFailure, match="killed by signal 11") as e:
        run(fake_c("phi_carryover", "crash"), request_for(repo_case("phi_carryover")))
    assert e.value.output.stdout and e.value.exit_code == 3


def test_nonzero_exit(fake_c, repo_case, request_for):
    with pytest.raises(RunnerFailure, match="exited with code 9: ERROR: not enough HKL indices"):
        run(fake_c("phi_carryover", "exit9"), request_for(repo_case("phi_carryover")))


def test_all_nan_image(fake_c, repo_case, request_for):
    with pytest.raises(RunnerFailure, match="all-NaN") as e:
        run(fake_c("phi_carryover", "nan"), request_for(repo_case("phi_carryover")))
    kept = e.value.output.image  # the evidence keeps the image the C wrote, NaN and all
    assert kept is not None and kept.shape == (64, 64) and np.isnan(kept).all()


def test_truncated_trace(fake_c, repo_case, request_for):
    with pytest.raises(RunnerFailure, match="lacks .*floatimage_accumulated"):
        run(fake_c("phi_carryover", "truncated"), request_for(repo_case("phi_carryover")))


def test_an_untraced_binary_gives_an_image_only_reference(fake_c, repo_case, golden_dir, request_for):
    # An upstream C prints no TRACE_C line at all: its image is still the reference.
    out = run(fake_c("phi_carryover", "notrace"), request_for(repo_case("phi_carryover")))
    assert not out.trace_supported and "TRACE_C" not in out.stdout
    assert any("trace is not available from this binary" in n for n in out.notes)
    np.testing.assert_array_equal(out.image, recorded_image(golden_dir, "phi_carryover"))


def test_cli_run_against_an_untraced_binary_compares_the_image(tmp_path, fake_c, fake_engine, capsys):
    fake_engine("phi_carryover")
    rc = cli_run(tmp_path, "phi_carryover", "--live", "--c-bin", str(fake_c("phi_carryover", "notrace")),
                 "--json", "--no-pictures")
    result = json.loads(capsys.readouterr().out)
    assert rc == 0, result
    assert result["trace_compared"] is False and result["image"]["ok"] is True
    assert result["reference"]["trace_supported"] is False
    assert "the trace is not available from this binary" in result["trace_note"]


def test_no_trace_is_fine_for_a_fixed_c_reference(fake_c, repo_case, request_for):
    case = repo_case("phi_carryover")
    out = run(fake_c("phi_carryover", "notrace"), request_for(case, mode="spec"))
    assert not out.trace_supported and "-trace_pixel" not in out.argv


def test_missing_image(fake_c, repo_case, request_for):
    with pytest.raises(RunnerFailure, match="wrote no float image"):
        run(fake_c("phi_carryover", "noimage"), request_for(repo_case("phi_carryover")))


def test_missing_or_unusable_binary_is_the_users_to_fix(tmp_path, repo_case, request_for):
    with pytest.raises(UsageError, match="no C binary at .*nope"):
        CRunner(tmp_path / "nope").run(request_for(repo_case("phi_carryover")))
    with pytest.raises(UsageError, match="no C binary"):
        CRunner(None).run(request_for(repo_case("phi_carryover")))
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(UsageError, match="not executable") as e:
        CRunner(plain).run(request_for(repo_case("phi_carryover")))
    assert e.value.exit_code == 2


def test_missing_input_is_an_input_error(tmp_path, fake_c, repo_case, request_for):
    req = request_for(repo_case("supervisor"))
    req = type(req)(**{**req.__dict__, "data_root": tmp_path})
    with pytest.raises(InputError, match="inputs/A.mat"):
        CRunner(fake_c()).run(req)


def test_binary_lookup_order(monkeypatch, tmp_path):
    monkeypatch.setenv("NB_C_BIN", str(tmp_path / "from-env"))
    assert find_binary("instrumented-c", str(tmp_path / "explicit")) == tmp_path / "explicit"
    assert find_binary("instrumented-c") == tmp_path / "from-env"
    assert find_binary("fixed-c") in (None, Path(__file__).resolve().parents[2] / "golden_bin" / "nanoBragg_fixed")
    monkeypatch.delenv("NB_C_BIN")
    monkeypatch.setenv("NB_C_FIXED_BIN", str(tmp_path / "fixed"))
    assert find_binary("fixed-c") == tmp_path / "fixed"


# ---- through the CLI

def cli_run(tmp_path, *args):
    return cli.main(["--results-dir", str(tmp_path / "res"), "run", *args])


def test_cli_live_crash_exits_3_and_keeps_evidence(tmp_path, fake_c, fake_engine, capsys):
    calls = fake_engine("phi_carryover")
    rc = cli_run(tmp_path, "phi_carryover", "--live", "--c-bin", str(fake_c("phi_carryover", "crash")), "--json")
    assert rc == 3
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "runner-failure" and "signal 11" in result["failure"]
    assert calls == []  # no point running the engine without a reference
    ev = tmp_path / "res" / "phi_carryover" / "latest"
    assert (ev / "c_stdout.log").read_text()  # partial stdout kept
    assert "RUNNER FAILURE" in (ev / "diff_summary.md").read_text()


def test_cli_live_missing_binary_is_a_usage_error(tmp_path, fake_engine, capsys):
    # --live names a binary that is not there: the user's to fix (exit 2), before any run.
    fake_engine("phi_carryover")
    assert cli_run(tmp_path, "phi_carryover", "--live", "--c-bin", str(tmp_path / "none")) == 2
    assert "--live: no C binary at" in capsys.readouterr().err


def test_cli_auto_prefers_a_found_live_binary(tmp_path, fake_c, fake_engine, monkeypatch, capsys):
    fake_engine("phi_carryover")
    monkeypatch.setenv("NB_C_BIN", str(fake_c("phi_carryover")))
    assert cli_run(tmp_path, "phi_carryover", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reference"]["runner"] == "c-live"
    assert result["reference"]["description"].startswith("live C at ")
    monkeypatch.delenv("NB_C_BIN")
    monkeypatch.setattr("harness.runners.choose.REPO_ROOT", tmp_path)  # no golden_bin/nanoBragg either
    assert cli_run(tmp_path, "phi_carryover", "--json") == 0
    assert json.loads(capsys.readouterr().out)["reference"]["runner"] == "c-recorded"


def test_cli_run_ignores_nb_c_fixed_bin_unless_live(tmp_path, fake_c, fake_engine, monkeypatch, capsys):
    fake_engine("phi_carryover")
    monkeypatch.setattr("harness.runners.choose.REPO_ROOT", tmp_path)
    monkeypatch.delenv("NB_C_BIN", raising=False)
    monkeypatch.setenv("NB_C_FIXED_BIN", str(fake_c("phi_carryover__cfixed", "notrace")))
    cli_run(tmp_path, "phi_carryover", "--mode", "spec", "--json", "--no-pictures")
    assert json.loads(capsys.readouterr().out)["reference"]["runner"] == "c-recorded"
    cli_run(tmp_path, "phi_carryover", "--mode", "spec", "--live", "--json", "--no-pictures")
    result = json.loads(capsys.readouterr().out)
    assert result["reference"]["runner"] == "c-live" and "notrace" in result["reference"]["provenance"]["binary"]
