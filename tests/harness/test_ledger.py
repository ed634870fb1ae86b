"""Run ledger: rows round-trip, concurrent appends, flips, last green, corruption handling."""
from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from harness.service import ledger
from tests.harness.service_fixtures import append, make_result, silent_ledger


def test_row_round_trips_with_metrics_and_deltas(tmp_path):
    lg = silent_ledger(tmp_path / "ledger.sqlite")
    res = make_result(status="divergence", k_delta=3e-6, image_delta=0.25, evidence_dir="/x/ev")
    row = ledger.row_from_result(res, command="gate", run_id="R1", git=("abc123", True, "feature"))
    rid = lg.append(row)
    df = lg.read()
    assert len(df) == 1 and int(df.iloc[0]["id"]) == rid
    got = df.iloc[0]
    assert got["case_name"] == "phi_carryover" and got["command"] == "gate" and got["run_id"] == "R1"
    assert got["commit_sha"] == "abc123" and bool(got["dirty"]) is True and got["branch"] == "feature"
    assert (got["device"], got["dtype"], got["mode"]) == ("cpu", "float64", "c-parity")
    assert got["reference_runner"] == "c-recorded" and got["reference_id"] == "phi_carryover"
    assert got["reference_sha256"] == "ab" * 32
    assert got["status"] == "divergence" and got["exit_code"] == 1
    assert got["first_key"] == "hkl_frac" and got["first_delta"] == pytest.approx(3e-6)
    assert got["key_deltas"]["hkl_frac"] == pytest.approx(3e-6)
    assert got["key_deltas"]["phi:k_frac"] == pytest.approx(1.5e-6)
    assert got["key_deltas"]["pix0_vector_meters"] == 0.0
    assert got["image_max_abs_diff"] == 0.25 and bool(got["image_ok"]) is False
    assert (got["image_worst_slow"], got["image_worst_fast"]) == (3, 4)
    assert got["image_metrics"]["correlation"] == pytest.approx(0.75)
    assert got["wall_reference_s"] == 0.5 and got["wall_engine_s"] == 1.25
    assert got["evidence_dir"] == "/x/ev"
    assert isinstance(df["time_utc"].dtype, pd.DatetimeTZDtype)


def test_selected_delta_understands_component_and_phi_aliases():
    rows = ledger.row_from_result(make_result(k_delta=4e-6), git=("c", False, "main"))["trace_rows"]
    # k_frac selects hkl_frac's k component (4e-6) and the φ-line field (2e-6): the max wins.
    assert ledger.selected_delta(rows, "k_frac") == pytest.approx(4e-6)
    assert ledger.selected_delta(rows, "phi:k_frac") == pytest.approx(2e-6)
    assert ledger.selected_delta(rows, "hkl_frac.h") == 0.0
    assert ledger.selected_delta(rows, "F_cell") is None
    with pytest.raises(KeyError):
        ledger.selected_delta(rows, "no_such_key")


def test_row_without_required_fields_is_refused(tmp_path):
    lg = silent_ledger(tmp_path / "l.sqlite")
    with pytest.raises(ValueError, match="case_name"):
        lg.append({"run_id": "r", "command": "run", "time_utc": "t", "status": "parity", "exit_code": 0})
    with pytest.raises(ValueError, match="unknown columns"):
        lg.append({**ledger.row_from_result(make_result(), git=("c", False, "main")), "bogus": 1})


def _writer(args):
    path, worker, n = args
    lg = ledger.Ledger(Path(path), notice=lambda m: None)
    for i in range(n):
        row = ledger.row_from_result(make_result(f"case_{worker}", k_delta=i * 1e-7), run_id=f"w{worker}",
                                     git=("c", False, "main"))
        lg.append(row)
    return worker


def test_concurrent_writers_lose_no_rows(tmp_path):
    path = tmp_path / "results" / "ledger.sqlite"
    workers, per = 6, 25
    with mp.get_context("spawn").Pool(workers) as pool:  # fork after torch threads can deadlock
        assert sorted(pool.map(_writer, [(str(path), w, per) for w in range(workers)])) == list(range(workers))
    df = silent_ledger(path).read()
    assert len(df) == workers * per and df["id"].is_unique
    counts = df.groupby("case_name").size()
    assert (counts == per).all() and len(counts) == workers
    # Each worker's rows arrive in its own order: the k deltas grow monotonically per worker.
    for _, g in df.groupby("case_name"):
        deltas = [d["hkl_frac"] for d in g.sort_values("id")["key_deltas"]]
        assert deltas == sorted(deltas) and deltas[-1] == pytest.approx((per - 1) * 1e-7)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_flip_between_last_two_runs(tmp_path):
    lg = silent_ledger(tmp_path / "l.sqlite")
    append(lg, "a", "parity", 0)
    append(lg, "b", "parity", 1)
    append(lg, "a", "parity", 2)
    append(lg, "b", "divergence", 3, k_delta=5e-6)
    append(lg, "c", "divergence", 4)           # only one run: no flip
    append(lg, "d", "divergence", 5, k_delta=5e-6)
    append(lg, "d", "parity", 6)               # recovered: a flip, not a regression
    fl = {f.case_name: f for f in lg.flips()}
    assert set(fl) == {"b", "d"}
    assert (fl["b"].before, fl["b"].after, fl["b"].regressed, fl["b"].first_key) == \
        ("parity", "divergence", True, "hkl_frac")
    assert (fl["d"].before, fl["d"].after, fl["d"].regressed) == ("divergence", "parity", False)
    # Older history does not matter, only the last two runs of each case.
    append(lg, "b", "divergence", 7, k_delta=5e-6)
    assert {f.case_name for f in lg.flips()} == {"d"}


def test_last_green_ignores_other_branches_and_dirty_runs(tmp_path):
    lg = silent_ledger(tmp_path / "l.sqlite")
    append(lg, "a", "parity", 0, commit="good1")
    append(lg, "a", "parity", 1, commit="good2")
    append(lg, "a", "parity", 2, commit="feat", branch="feature")
    append(lg, "a", "parity", 3, commit="wip", dirty=True)
    append(lg, "a", "divergence", 4, commit="bad", run_id="gate9", k_delta=1e-5)
    g = lg.last_green("a")
    assert g["commit_sha"] == "good2"
    assert lg.last_green("a", clean_only=False)["commit_sha"] == "wip"
    assert lg.last_green("a", branch="feature")["commit_sha"] == "feat"
    assert lg.last_green("zzz") is None
    gf = ledger.gate_flips(lg.read(), "gate9")
    assert len(gf) == 1 and gf[0].before_commit == "good2" and gf[0].after_commit == "bad"
    assert gf[0].after == "divergence" and gf[0].first_key == "hkl_frac"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_ledger_is_set_aside_not_truncated(tmp_path, damage):
    path = tmp_path / "ledger.sqlite"
    lg = ledger.Ledger(path, notice=lambda m: None)
    for i in range(40):
        append(lg, f"case{i}", "parity", i)
    with sqlite3.connect(path) as con:  # fold the WAL into the main file before damaging it
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = path.read_bytes()
    damaged = b"this is not a database at all" * 100 if damage == "garbage" else raw[: len(raw) // 2]
    path.write_bytes(damaged)
    seen: list[str] = []
    lg2 = ledger.Ledger(path, notice=seen.append)
    append(lg2, "after", "parity", 99)
    aside = sorted(tmp_path.glob("ledger.sqlite.corrupt-*"))
    assert [p for p in aside if not p.name.endswith(("-wal", "-shm"))], "corrupt ledger was not kept"
    main_aside = next(p for p in aside if not p.name.endswith(("-wal", "-shm")))
    assert main_aside.read_bytes() == damaged
    assert len(seen) == 1 and "corrupt" in seen[0] and main_aside.name in seen[0]
    df = lg2.read()
    assert list(df["case_name"]) == ["after"]


def test_record_never_raises_and_reports(tmp_path):
    seen: list[str] = []
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results directory should be")
    assert ledger.record(make_result(), blocker, notice=seen.append, git=("c", False, "main")) is None
    assert seen and seen[0].startswith("ledger not updated")
    ok_dir = tmp_path / "ok"
    assert ledger.record(make_result(), ok_dir, notice=seen.append, git=("c", False, "main")) == 1
    assert len(silent_ledger(ok_dir / "ledger.sqlite").read()) == 1


def test_reading_a_missing_ledger_is_empty(tmp_path):
    df = silent_ledger(tmp_path / "nothing.sqlite").read()
    assert df.empty and "case_name" in df.columns
    assert ledger.flips(df) == []
    assert not (tmp_path / "nothing.sqlite").exists()


def _row(case: str, status: str, i: int, **fields):
    """A ledger row of ``case`` made some way (command, dtype, device, mode, outcome overridden)."""
    from datetime import timedelta

    from tests.harness.service_fixtures import T0

    result = make_result(case, status=status, k_delta=fields.pop("k_delta", 0.0))
    row = ledger.row_from_result(result, run_id=f"run{i}", git=("c0", False, "main"),
                                 now=T0 + timedelta(hours=i), outcome=fields.pop("outcome", None))
    row.update(fields)
    return row


def test_flips_compare_like_with_like(tmp_path):
    """A float32 experiment, a failed CUDA try and a bench row are never the previous run of a
    float64 CPU gate run, and a pass with known C defects is green."""
    lg = silent_ledger(tmp_path / "l.sqlite")
    lg.append(_row("a", "parity", 0, command="gate"))
    lg.append(_row("a", "divergence", 1, command="gate", dtype="float32"))       # float32 experiment
    lg.append(_row("a", "runner-failure", 2, command="run", device="cuda"))       # failed CUDA try
    lg.append(_row("a", "divergence", 3, command="bench"))
    lg.append(_row("a", "parity", 4, command="gate"))
    # a spec run against the instrumented C that only diverges by known C defects: green
    lg.append(_row("k", "parity", 5, command="gate", mode="spec"))
    lg.append(_row("k", "divergence", 6, command="gate", mode="spec", exit_code=0, outcome="pass",
                   label="known C defect (phi0-stale-rotation)"))
    assert lg.flips() == []
    # same series: a real regression, named with what made the series
    lg.append(_row("a", "divergence", 7, command="gate", k_delta=5e-6, outcome="fail"))
    fl = lg.flips()
    assert len(fl) == 1 and fl[0].regressed and (fl[0].before_outcome, fl[0].after_outcome) == ("pass", "fail")
    assert (fl[0].kind, fl[0].dtype, fl[0].device, fl[0].mode) == ("gate", "float64", "cpu", "c-parity")
    # the gate's look back finds the last green of the same series only
    gf = ledger.gate_flips(lg.read(), "run7")
    assert len(gf) == 1 and gf[0].before_time.startswith("2030-01-01 04:00")
    df = lg.read()
    assert len(ledger.select(df, dtype="float32")) == 1 and len(ledger.select(df, kind="gate", mode="spec")) == 2
    assert set(ledger.select(df, device="cuda")["status"]) == {"runner-failure"}


def test_flips_strict_ignores_other_dtypes_and_devices(tmp_path, capsys):
    from harness.cli import main as cli

    res = tmp_path / "res"
    lg = silent_ledger(ledger.ledger_path(res))
    lg.append(_row("a", "parity", 0, command="gate"))
    lg.append(_row("a", "divergence", 1, command="run", dtype="float32"))
    lg.append(_row("a", "runner-failure", 2, command="run", device="cuda"))
    assert cli.main(["--results-dir", str(res), "flips", "--strict"]) == 0
    lg.append(_row("a", "divergence", 3, command="run", dtype="float32", k_delta=1e-3))
    lg.append(_row("a", "parity", 4, command="run", dtype="float32"))
    assert cli.main(["--results-dir", str(res), "flips", "--strict", "--dtype", "float32"]) == 0
    lg.append(_row("a", "divergence", 5, command="run", dtype="float32"))
    capsys.readouterr()
    assert cli.main(["--results-dir", str(res), "flips", "--strict", "--dtype", "float32", "--json"]) == 1
    assert cli.main(["--results-dir", str(res), "flips", "--strict", "--dtype", "float64"]) == 0
    assert cli.main(["--results-dir", str(res), "flips", "--strict", "--kind", "gate"]) == 0
