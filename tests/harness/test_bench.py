"""The bench's bookkeeping on a tiny case with a fake process runner: statistics, ratios,
parity gating of timings, bench.json shape, evidence and ledger, CLI options.

No test here times anything: walls come from the fake runner, and the one real subprocess
test only checks that a wall and a peak RSS were recorded.
"""
from __future__ import annotations

import argparse
import io
import json
import sqlite3
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from rich.console import Console

from harness.bench import measure as bench
from harness.cli import bench as bench_cli
from harness.cli.common import CliConsole
from harness.model.errors import UsageError
from harness.service import ledger
from tests.harness.conftest import CASES, recorded_image

TINY = "phi_carryover"   # 64x64, registry case with a recording


class FakeProcs:
    """Stands in for run_measured: writes an image to -floatfile and returns a scripted wall.

    walls: (runner, dtype, threads) → seconds; image_edit: (runner, dtype) → edit of the image.
    """

    def __init__(self, image: np.ndarray, walls: dict, image_edit: Optional[dict] = None,
                 fail: Optional[tuple] = None):
        self.image = image
        self.walls = walls
        self.image_edit = image_edit or {}
        self.fail = fail
        self.calls: list[tuple[list[str], dict]] = []

    @staticmethod
    def probe_out(threads: int) -> dict:
        """The probe's JSON: render seconds 0.4 / threads (median), floor 0.1 s, 4096 evaluations."""
        return {"render_s": [0.5 / threads, 0.4 / threads, 0.3 / threads], "evaluations": 4096,
                "floor_s": [0.1, 0.1, 0.1]}

    def __call__(self, cmd, *, cwd, env, timeout_s):
        cmd = list(cmd)
        self.calls.append((cmd, dict(env)))
        threads = int(env["OMP_NUM_THREADS"])
        if "-c" in cmd and "import engine.api, engine.cli" in cmd:
            return bench.ProcResult(0, 0.25, 200 << 20)
        if "harness.bench.probe" in cmd:   # in-process render seconds and the floor's
            return bench.ProcResult(0, 3.0, 300 << 20, stdout=json.dumps(self.probe_out(threads)) + "\n")
        if "--recorded" in cmd:            # `nbparity run CASE --recorded`: its result.json holds the walls
            done = Path(cmd[cmd.index("--results-dir") + 1]) / cmd[cmd.index("run") + 1] / "latest"
            done.mkdir(parents=True, exist_ok=True)
            (done / "result.json").write_text(json.dumps({"engine": {"wall_s": 1.0, "provenance": {"load_s": 0.125}},
                                                          "reference": {"wall_s": 0.25}}))
            return bench.ProcResult(0, 1.75, 300 << 20)
        runner = bench.ENGINE if "engine" in cmd[1:3] else bench.C
        dtype = cmd[cmd.index("--dtype") + 1] if "--dtype" in cmd else "float64"
        if self.fail == (runner, dtype):
            return bench.ProcResult(1, 0.1, 1 << 20, stderr="Traceback...\nRuntimeError: boom\n")
        img = self.image.copy()
        edit = self.image_edit.get((runner, dtype))
        if edit is not None:
            img = edit(img)
        Path(cmd[cmd.index("-floatfile") + 1]).write_bytes(img.astype("<f4").tobytes())
        key = (runner, dtype if runner == bench.ENGINE else "float64", threads)
        return bench.ProcResult(0, self.walls[key], (300 if runner == bench.ENGINE else 50) << 20)


@pytest.fixture
def tiny_image(golden_dir) -> np.ndarray:
    return recorded_image(golden_dir, TINY)


def _walls(**over) -> dict:
    w = {(bench.ENGINE, "float64", 1): 1.0, (bench.ENGINE, "float64", 2): 0.6,
         (bench.ENGINE, "float32", 1): 0.5, (bench.ENGINE, "float32", 2): 0.3,
         (bench.C, "float64", 1): 2.0, (bench.C, "float64", 2): 1.2}
    w.update(over)
    return w


def _bench(golden_dir, procs, *, c_binary: Optional[Path] = Path("/fake/nanoBragg"), repeats=3, warmup=1,
           **kw) -> bench.Bench:
    settings = bench.BenchSettings(cases=(TINY,), threads=(1, 2), dtypes=("float64", "float32"),
                                   devices=("cpu",), repeats=repeats, warmup=warmup, c_binary=c_binary, **kw)
    return bench.Bench(settings=settings, cases_dir=CASES, golden_dir=golden_dir, proc_runner=procs)


@pytest.fixture
def ratio_cases(monkeypatch):
    from harness.bench import analysis

    monkeypatch.setattr(analysis, "TARGET_RATIO_CASES", (TINY,))
    monkeypatch.setattr(analysis, "TARGET_PEAK_RSS_CASE", TINY)


# ---------------------------------------------------------------- statistics and ratios


def test_summarize_min_median():
    s = bench.summarize([3.0, 1.0, 2.0])
    assert (s["n"], s["min"], s["median"], s["max"]) == (3, 1.0, 2.0, 3.0)
    assert bench.summarize([4.0, 1.0, 2.0, 3.0])["median"] == 2.5
    assert bench.summarize([]) is None


def test_ratio_guards():
    assert bench.ratio(1.0, 2.0) == 0.5
    assert bench.ratio(None, 2.0) is None
    assert bench.ratio(1.0, 0.0) is None
    assert bench.ratio(float("nan"), 1.0) is None


def _m(runner, dtype, threads, walls, parity_ok=True, error=None, device="cpu", loss=1e-9):
    m = bench.Measurement(case="x", runner=runner, device=device, dtype=dtype, threads=threads,
                          runs_s=list(walls), wall=bench.summarize(walls), error=error,
                          parity_ok=parity_ok if runner == bench.ENGINE else True,
                          parity={"rel_to_max": loss, "ok": parity_ok})
    return m


def test_engine_c_ratio_uses_medians_and_mins():
    ms = [_m(bench.ENGINE, "float64", 1, [1.0, 3.0, 2.0]), _m(bench.C, "float64", 1, [4.0, 4.0, 8.0])]
    startup = _m("startup", "-", 1, [0.5, 0.5, 0.5])
    (r,) = bench.engine_c_ratios(ms, startup)
    assert r["counts"] and r["why_not"] is None
    assert r["ratio"] == pytest.approx(2.0 / 4.0)
    assert r["ratio_min"] == pytest.approx(1.0 / 4.0)
    assert r["ratio_net"] == pytest.approx((2.0 - 0.5) / 4.0)


def test_ratio_does_not_count_when_engine_parity_fails():
    ms = [_m(bench.ENGINE, "float64", 1, [1.0], parity_ok=False), _m(bench.C, "float64", 1, [4.0])]
    (r,) = bench.engine_c_ratios(ms)
    assert r["ratio"] is None and r["ratio_min"] is None and not r["counts"]
    assert r["ratio_uncounted"] == pytest.approx(0.25)
    assert "parity" in r["why_not"]


def test_ratio_needs_c_at_the_same_thread_count():
    ms = [_m(bench.ENGINE, "float64", 2, [1.0]), _m(bench.C, "float64", 1, [4.0])]
    assert bench.engine_c_ratios(ms) == []


def test_float32_speedup_and_loss():
    ms = [_m(bench.ENGINE, "float64", 1, [3.0]), _m(bench.ENGINE, "float32", 1, [1.5], loss=2e-3)]
    (f,) = bench.float32_speedups(ms)
    assert f["speedup"] == pytest.approx(2.0) and f["counts"]
    assert f["float32_loss_rel_to_max"] == 2e-3
    ms[1] = _m(bench.ENGINE, "float32", 1, [1.5], parity_ok=False)
    (f,) = bench.float32_speedups(ms)
    assert f["speedup"] is None and f["speedup_uncounted"] == pytest.approx(2.0)


def test_float32_bar_is_the_case_float32_profile(golden_dir):
    """The bench judges float32 as run and gate do: by the case's float32 profile."""
    from harness.registry import profiles
    from harness.registry.cases import load_case

    case = load_case(CASES / f"{TINY}.toml")
    bc = bench.resolve_case(TINY, CASES, golden_dir)
    assert bc.bar("float32") == profiles.for_dtype(case, "float32").image
    assert bc.bar("float64") == bc.threshold == profiles.for_dtype(case, "float64").image
    bare = bench.BenchCase(**{**bc.__dict__, "bars": {"float64": bc.threshold}})
    assert bare.bar("float32") is None  # no profile: timed, not judged


# ---------------------------------------------------------------- a whole bench, faked processes


def test_bench_document_shape_and_ratios(golden_dir, tiny_image, ratio_cases):
    procs = FakeProcs(tiny_image, _walls())
    doc = _bench(golden_dir, procs).run(command_line="nbparity bench --cases phi_carryover")
    json.dumps(doc, allow_nan=False)  # strictly JSON
    assert doc["schema"] == bench.SCHEMA
    assert set(doc) >= {"settings", "host", "startup", "cases", "targets", "trace_check", "started_utc", "finished_utc"}
    (case,) = doc["cases"]
    assert case["name"] == TINY and case["source"] == "registry" and case["shape"] == [64, 64]
    ms = case["measurements"]
    # 2 dtypes x 2 thread counts for the engine, 2 thread counts for the C
    assert [(m["runner"], m["dtype"], m["threads"]) for m in ms] == [
        ("engine", "float64", 1), ("engine", "float64", 2), ("engine", "float32", 1), ("engine", "float32", 2),
        ("c", "float64", 1), ("c", "float64", 2)]
    for m in ms:
        assert len(m["warmup_s"]) == 1 and len(m["runs_s"]) == 3   # warm-up kept apart
        assert m["parity_ok"] is True and m["counts"] is True and m["error"] is None
        assert m["parity"]["max_abs_diff"] == 0.0
    eng = ms[0]
    assert eng["peak_rss_bytes"] == 300 << 20 and eng["wall"]["median"] == 1.0
    r = {(x["dtype"], x["threads"]): x for x in case["ratios"]}
    assert r[("float64", 1)]["ratio"] == pytest.approx(0.5)
    assert r[("float64", 2)]["ratio"] == pytest.approx(0.5)
    assert r[("float64", 1)]["ratio_net"] == pytest.approx((1.0 - 0.25) / 2.0)
    f = {x["threads"]: x for x in case["float32"]}
    assert f[1]["speedup"] == pytest.approx(2.0) and f[2]["speedup"] == pytest.approx(2.0)
    t = {x["target"]: x for x in doc["targets"]}
    ratio_t = [x for x in doc["targets"] if x["target"].startswith("engine/C")]
    assert len(ratio_t) == 2 and all(x["met"] is True for x in ratio_t)
    assert all(x["met"] is True for x in doc["targets"] if x["target"].startswith("float32"))
    rss = [x for x in t.values() if "RSS" in x["target"]]
    assert rss[0]["value"] == 300 << 20 and rss[0]["met"] is True


def test_engine_commands_are_fresh_processes_with_pinned_threads(golden_dir, tiny_image):
    procs = FakeProcs(tiny_image, _walls())
    _bench(golden_dir, procs, repeats=1, warmup=0).run()
    engine_calls = [(c, e) for c, e in procs.calls if c[1:3] == ["-m", "engine"]]
    assert len(engine_calls) == 4
    for cmd, env in engine_calls:
        assert cmd[0] == sys.executable
        assert cmd[cmd.index("--mode") + 1] == "c-parity" and cmd[cmd.index("--c-threads") + 1] == "1"
        assert "-trace_pixel" not in cmd
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"]
    assert {e["OMP_NUM_THREADS"] for _, e in engine_calls} == {"1", "2"}
    c_calls = [c for c, _ in procs.calls if c[0] == "/fake/nanoBragg"]
    assert len(c_calls) == 2 and all("-floatfile" in c for c in c_calls)


def test_timing_counts_only_when_parity_passes(golden_dir, tiny_image, ratio_cases):
    def off(img):
        img = img.copy()
        img.flat[int(np.argmax(img))] *= 1.01   # 1 % on the brightest pixel: far over 1e-6 of max
        return img

    procs = FakeProcs(tiny_image, _walls(), image_edit={(bench.ENGINE, "float64"): off})
    doc = _bench(golden_dir, procs).run()
    (case,) = doc["cases"]
    f64 = [m for m in case["measurements"] if m["runner"] == "engine" and m["dtype"] == "float64"]
    assert all(m["parity_ok"] is False and m["counts"] is False for m in f64)
    assert all(m["parity"]["n_failed"] == 1 for m in f64)
    r = {(x["dtype"], x["threads"]): x for x in case["ratios"]}
    assert r[("float64", 1)]["ratio"] is None and r[("float64", 1)]["ratio_uncounted"] == pytest.approx(0.5)
    ratio_t = [x for x in doc["targets"] if x["target"].startswith("engine/C")]
    assert all(x["met"] is False and "parity" in x["note"] for x in ratio_t)
    # float32 (not perturbed here) is judged by its own profile and still counts
    f32 = [m for m in case["measurements"] if m["dtype"] == "float32"]
    assert all(m["parity_ok"] for m in f32)
    assert bench_cli.exit_code(doc, strict=False) == 0
    assert bench_cli.exit_code(doc, strict=True) == 1


@pytest.mark.parametrize("fraction, counts", [(0.5, True), (2.0, False)])
def test_float32_loss_is_reported_and_judged_by_the_float32_profile(golden_dir, tiny_image, fraction, counts):
    from harness.registry import profiles
    from harness.registry.cases import load_case

    bar = profiles.for_dtype(load_case(CASES / f"{TINY}.toml"), "float32").image.rtol_of_max

    def loose(img):
        return img * np.float32(1 + fraction * bar)

    procs = FakeProcs(tiny_image, _walls(), image_edit={(bench.ENGINE, "float32"): loose})
    doc = _bench(golden_dir, procs, repeats=1).run()
    f = doc["cases"][0]["float32"]
    assert all(x["counts"] is counts for x in f)
    if counts:
        assert all(x["float32_loss_rel_to_max"] == pytest.approx(fraction * bar, rel=1e-2) for x in f)


def test_engine_failure_is_an_error_not_a_timing(golden_dir, tiny_image):
    procs = FakeProcs(tiny_image, _walls(), fail=(bench.ENGINE, "float32"))
    doc = _bench(golden_dir, procs, repeats=2).run()
    bad = [m for m in doc["cases"][0]["measurements"] if m["dtype"] == "float32"]
    assert all("exit code 1" in m["error"] and "RuntimeError: boom" in m["error"] for m in bad)
    assert all(m["wall"] is None and not m["counts"] for m in bad)
    assert bench_cli.exit_code(doc, strict=False) == 3


def test_no_c_binary_means_engine_only(golden_dir, tiny_image, ratio_cases):
    procs = FakeProcs(tiny_image, _walls())
    doc = _bench(golden_dir, procs, c_binary=None, repeats=1).run()
    (case,) = doc["cases"]
    assert {m["runner"] for m in case["measurements"]} == {"engine"} and case["ratios"] == []
    ratio_t = [x for x in doc["targets"] if x["target"].startswith("engine/C")]
    assert all(x["met"] is None and x["note"] == "no C binary" for x in ratio_t)


# ---------------------------------------------------------------- evidence, ledger, cases


def _tiny_doc(golden_dir, tiny_image) -> dict:
    return _bench(golden_dir, FakeProcs(tiny_image, _walls()), repeats=1, warmup=0).run()


def test_evidence_dir_written_and_no_ledger_created(tmp_path, golden_dir, tiny_image):
    doc = _tiny_doc(golden_dir, tiny_image)
    final = bench.write_evidence(doc, tmp_path, "table\n", env={"python": "x"})
    assert final.parent == tmp_path / bench.EVIDENCE_NAME
    assert sorted(p.name for p in final.iterdir()) == ["bench.json", "env.json", "report.txt"]
    assert json.loads((final / "bench.json").read_text())["schema"] == bench.SCHEMA
    assert sorted(p.name for p in tmp_path.iterdir()) == [bench.EVIDENCE_NAME]   # no ledger created


def test_ledger_row_per_case_when_the_ledger_exists(tmp_path, golden_dir, tiny_image):
    sqlite3.connect(ledger.ledger_path(tmp_path)).close()   # an existing, empty ledger
    book = ledger.Ledger.under(tmp_path)
    doc = _tiny_doc(golden_dir, tiny_image)
    final = bench.write_evidence(doc, tmp_path)
    df = book.read()
    assert len(df) == 1
    row = df.iloc[0]
    assert row["command"] == "bench" and row["case_name"] == TINY and row["status"] == "parity"
    assert row["exit_code"] == 0 and row["evidence_dir"] == str(final) and row["dtype"] == "float64"
    assert row["reference_id"] == TINY and row["wall_engine_s"] == 1.0 and row["wall_reference_s"] == 2.0


def test_ledger_row_says_divergence_when_an_image_fails(tmp_path, golden_dir, tiny_image):
    procs = FakeProcs(tiny_image, _walls(), image_edit={(bench.ENGINE, "float64"): lambda im: im * 2})
    doc = _bench(golden_dir, procs, repeats=1, warmup=0).run()
    (row,) = bench.ledger_rows(doc, tmp_path)
    assert row["status"] == "divergence" and row["exit_code"] == 1 and row["image_ok"] == 0


def test_case_from_recording_when_no_case_file(golden_dir, tmp_path):
    # every recording has a registry entry now: an empty cases directory has none
    bc = bench.resolve_case("hkl_interpolate", tmp_path, golden_dir)
    assert bc.source == "recording" and bc.mode == "c-parity"
    assert "-floatfile" not in bc.argv and "-trace_pixel" not in bc.argv
    assert bc.inputs == ("inputs/synthetic_P1_m10_p10.hkl",)
    reg = bench.resolve_case(TINY, CASES, golden_dir)
    assert reg.source == "registry"
    with pytest.raises(UsageError):
        bench.resolve_case("no_such_case", CASES, golden_dir)


def test_run_measured_real_subprocess(tmp_path):
    script = "import sys; b = bytearray(20 << 20); print('hi'); sys.stderr.write('err'); sys.exit(3)"
    res = bench.run_measured([sys.executable, "-c", script], cwd=tmp_path, env=bench.child_env(1), timeout_s=60)
    assert res.returncode == 3 and res.stdout.strip() == "hi" and res.stderr == "err"
    assert res.wall_s > 0 and res.peak_rss_bytes >= 20 << 20 and not res.timed_out


def test_run_measured_kills_on_timeout(tmp_path):
    res = bench.run_measured([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path,
                             env=bench.child_env(1), timeout_s=0.5)
    assert res.timed_out and res.returncode != 0


# ---------------------------------------------------------------- CLI


def _parse(*argv: str) -> argparse.Namespace:
    """Parsed by nbparity's own parser, so the bench wiring in harness/cli/main.py is tested too."""
    from harness.cli.main import build_parser
    return build_parser().parse_args(list(argv))


def test_cli_defaults_and_quick(monkeypatch):
    monkeypatch.setattr(bench_cli, "_cuda_available", lambda: False)
    s = bench_cli.settings_from_args(_parse("bench", "--no-c"))
    assert s.cases == bench.DEFAULT_CASES and s.repeats == bench.DEFAULT_REPEATS and s.threads == (1, 2)
    assert s.dtypes == ("float64", "float32") and s.devices == ("cpu",) and s.trace_check
    q = bench_cli.settings_from_args(_parse("bench", "--quick", "--no-c"))
    assert q.cases == bench.QUICK_CASES and q.repeats == 1 and not q.trace_check
    c = bench_cli.settings_from_args(_parse("bench", "--cases", "a,b", "--threads", "2", "--dtypes", "float32",
                                            "--repeats", "5", "--warmup", "0", "--no-c", "--devices", "cpu"))
    assert (c.cases, c.threads, c.dtypes, c.repeats, c.warmup) == (("a", "b"), (2,), ("float32",), 5, 0)


@pytest.mark.parametrize("argv", [("--dtypes", "float16"), ("--threads", "0"), ("--threads", "x"),
                                  ("--repeats", "0"), ("--c-bin", "/nonexistent/nanoBragg")])
def test_cli_rejects_bad_options(argv, monkeypatch):
    monkeypatch.setattr(bench_cli, "_cuda_available", lambda: False)
    with pytest.raises(UsageError):
        bench_cli.settings_from_args(_parse("bench", *argv))


def test_cli_handle_prints_table_and_writes_evidence(tmp_path, golden_dir, tiny_image, monkeypatch, capsys):
    monkeypatch.setattr(bench_cli, "_cuda_available", lambda: False)
    procs = FakeProcs(tiny_image, _walls())

    class FakeBench(bench.Bench):
        def __init__(self, **kw):
            super().__init__(proc_runner=procs, **kw)

    fake_c = tmp_path / "nanoBragg"
    fake_c.write_text("#!/bin/sh\n")
    args = _parse("--golden-dir", str(golden_dir), "--results-dir", str(tmp_path / "results"), "bench",
                  "--cases", TINY, "--repeats", "1", "--c-bin", str(fake_c))
    out = Console(file=io.StringIO(), width=240, color_system=None)
    err = Console(file=io.StringIO(), width=240, color_system=None)
    assert bench_cli.handle(args, CliConsole(out, err), bench_cls=FakeBench) == 0
    text = out.file.getvalue()
    assert TINY in text and "engine/C" in text and "targets" in text and "evidence:" in text
    (final,) = (tmp_path / "results" / "bench").glob("2*")
    assert "engine/C" in (final / "report.txt").read_text()
    doc = json.loads((final / "bench.json").read_text())
    assert doc["settings"]["c_binary"] == str(fake_c.resolve())

    args = _parse("--golden-dir", str(golden_dir), "--results-dir", str(tmp_path / "results"), "bench",
                  "--cases", TINY, "--repeats", "1", "--no-c", "--json")
    capsys.readouterr()
    assert bench_cli.handle(args, CliConsole(out, err), bench_cls=FakeBench) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["schema"] == bench.SCHEMA and printed["settings"]["c_binary"] is None
