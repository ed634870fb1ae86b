"""`--impl A --vs B` through the command line: run, gate, the ledger and `nbparity impls`.

The C against the C (two recordings, a 64x64 case) keeps these fast; the fake port's runs are in
test_impls.py.
"""
from __future__ import annotations

import json
import sqlite3

import pytest

from harness.cli import main as cli


def _run(tmp_path, capsys, *args):
    rc = cli.main(["--results-dir", str(tmp_path / "res"), *args])
    return rc, capsys.readouterr()


def test_c_fixed_against_c_is_a_full_image_comparison_naming_both_sides(tmp_path, capsys, golden_dir):
    rc, cap = _run(tmp_path, capsys, "run", "phi_carryover", "--impl", "c-fixed", "--vs", "c", "--json")
    res = json.loads(cap.out)
    assert rc == 1 and res["status"] == "divergence" and res["sides"] == ["c", "c-fixed"]
    assert not res["trace_compared"] and "c-fixed prints no trace" in res["trace_note"]
    assert res["image"]["n_failed"] > 0 and res["image"]["worst_pixel"] is not None
    assert res["reference"]["runner"] == "c" and res["engine"]["runner"] == "c-fixed"
    db = sqlite3.connect(tmp_path / "res" / "ledger.sqlite")
    assert db.execute("select command from runs").fetchall() == [("run[c-fixed vs c]",)]


def test_the_text_report_names_both_sides(tmp_path, capsys, golden_dir):
    rc, cap = _run(tmp_path, capsys, "run", "phi_carryover", "--impl", "c-fixed", "--vs", "c", "--no-pictures")
    assert rc == 1 and "float image (c-fixed vs c)" in cap.out and "Verdict: DIVERGENCE (exit 1)" in cap.out


def test_unknown_implementation_and_bad_registry_file_are_one_line_exit_2(tmp_path, capsys, golden_dir):
    rc, cap = _run(tmp_path, capsys, "run", "phi_carryover", "--impl", "nope")
    assert rc == 2 and "unknown implementation 'nope'" in cap.err and len(cap.err.strip().splitlines()) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('[x]\nkind = "teleport"\n')
    rc, cap = _run(tmp_path, capsys, "run", "phi_carryover", "--impls", str(bad))
    assert rc == 2 and str(bad) in cap.err and "x.kind" in cap.err


def test_gate_over_a_pair_covers_every_selected_case(tmp_path, capsys, golden_dir):
    rc, cap = _run(tmp_path, capsys, "gate", "--cases", "phi_carryover,oversample_flags", "--impl", "c-fixed",
                   "--vs", "c", "--no-pictures", "-j", "1")
    assert rc == 1
    table = (tmp_path / "res" / "gate_c-fixed_vs_c.md").read_text()
    assert "| phi_carryover | fail |" in table and "| oversample_flags | fail |" in table


@pytest.mark.parametrize("command", [["run", "phi_carryover"], ["gate", "--cases", "phi_carryover"]])
def test_an_unset_required_variable_is_one_line_before_any_run(tmp_path, capsys, monkeypatch, command):
    monkeypatch.delenv("NB_TEST_PORT_PY", raising=False)
    entry = tmp_path / "port.toml"
    entry.write_text('[port]\nkind = "command"\ncommand = ["${NB_TEST_PORT_PY:?point it at the port}"]\n')
    rc, cap = _run(tmp_path, capsys, *command, "--impl", "port", "--impls", str(entry))
    assert rc == 2 and cap.err.strip() == "nbparity: NB_TEST_PORT_PY is not set: point it at the port"
    assert not (tmp_path / "res" / "phi_carryover").exists()
    rc, cap = _run(tmp_path, capsys, "impls", "--impls", str(entry))      # a listing shows it, runs nothing
    assert rc == 0 and "NB_TEST_PORT_PY" in cap.out and "runnable" in cap.out    # (cells wrap)


def test_impls_lists_the_registry(tmp_path, capsys):
    rc, cap = _run(tmp_path, capsys, "impls", "--json")
    listed = json.loads(cap.out)
    assert rc == 0 and {"c", "c-fixed", "c-upstream", "engine", "hoidn"} <= set(listed)


def test_an_untraced_upstream_c_is_an_image_only_pair(tmp_path, capsys, golden_dir, fake_c, monkeypatch):
    monkeypatch.setenv("NB_C_UPSTREAM_BIN", str(fake_c("phi_carryover", "notrace")))
    rc, cap = _run(tmp_path, capsys, "run", "phi_carryover", "--impl", "c-upstream", "--vs", "c", "--json")
    res = json.loads(cap.out)
    assert rc == 0 and res["status"] == "parity" and not res["trace_compared"]
    assert res["image"]["ok"] and res["image"]["max_abs_diff"] == 0


def test_an_upstream_c_that_dies_writing_its_image_is_one_line_exit_3(tmp_path, capsys, golden_dir, fake_c,
                                                                       monkeypatch):
    monkeypatch.setenv("NB_C_UPSTREAM_BIN", str(fake_c("phi_carryover", "half")))
    rc, cap = _run(tmp_path, capsys, "run", "phi_carryover", "--impl", "c-upstream", "--vs", "c", "--json")
    res = json.loads(cap.out)
    assert rc == 3 and res["status"] == "runner-failure"
    assert res["failure"].startswith("c-upstream float image") and "\n" not in res["failure"]


def test_bench_times_a_registered_implementation_with_its_own_command(tmp_path, golden_dir, monkeypatch):
    """`bench --impl NAME`: the implementation's argv (its command, the case, its float flag) is
    what the bench runs and judges; the process itself is replaced here."""
    from harness.bench import measure as bench  # noqa: PLC0415
    from harness.bench.cases import resolve_case  # noqa: PLC0415
    from harness.bench.procs import ProcResult  # noqa: PLC0415
    from harness.model import paths  # noqa: PLC0415
    from harness.registry import implementations as impls  # noqa: PLC0415

    toml = tmp_path / "impls.toml"
    toml.write_text('[port]\nkind = "command"\ncommand = ["/opt/port/bin/nb"]\nfloat_flag = "-out"\n'
                    'dtype_flag = "-dtype"\n[port.can]\ndtypes = ["float64", "float32"]\n')
    port = impls.load_registry(files=[toml])["port"]
    bc = resolve_case("phi_carryover", paths.cases_dir(), golden_dir)
    ref = bc.reference_image()
    seen = []

    def fake_proc(cmd, *, cwd, env, timeout_s):
        seen.append(cmd)
        ref.astype("<f4").tofile(cmd[cmd.index("-out") + 1])
        return ProcResult(returncode=0, wall_s=0.5, peak_rss_bytes=1 << 20)

    b = bench.Bench(settings=bench.BenchSettings(cases=("phi_carryover",), dtypes=("float64",), threads=(1,),
                                                 repeats=1, warmup=0, impls=(port,)),
                    cases_dir=paths.cases_dir(), golden_dir=golden_dir, proc_runner=fake_proc)
    [m] = b.measure_impls(bc, ref)
    assert m.runner == "port" and m.parity_ok and m.error is None
    assert seen[0][0] == "/opt/port/bin/nb" and seen[0][1:1 + len(bc.argv)] == list(bc.argv)
    assert seen[0][seen[0].index("-dtype") + 1] == "float64"
