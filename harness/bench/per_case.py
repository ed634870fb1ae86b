"""The bench's per-case figures beyond whole-process wall: the engine's render time with its
floor (one probe process per configuration) and the harness overhead of `nbparity run`.

Render: ``python -m harness.bench.probe`` renders the case warm-up + repeats times in one
process by the engine's own render clock, then times the floor (harness.bench.floor) over as
many evaluations, same dtype and threads. Its Measurement (runner 'probe') keeps the render
seconds in runs_s/wall and the floor's in ``floor``.

Harness overhead: `nbparity run CASE --recorded --no-pictures` in a fresh process; overhead =
process wall − engine wall − engine load − reference wall, the last three from the run's
result.json. The engine load (importing the engine, torch with it) is what a `python -m engine`
process pays inside its own wall; in process the harness pays it on the engine's behalf, so it
is kept apart (``load_s``) rather than counted as overhead. The interpreter start and the
harness's own imports count as overhead: a user pays them. Its Measurement (runner 'harness')
keeps overhead seconds in runs_s/wall (the process walls in ``process_s``).
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from harness.bench.cases import BenchCase
from harness.bench.measurement import HARNESS, PROBE, Measurement, summarize
from harness.bench.procs import ProcResult, child_env, stage_inputs

if TYPE_CHECKING:  # pragma: no cover - typing only (measure imports this module)
    from harness.bench.measure import Bench


def probe_command(bc: BenchCase, *, dtype: str, device: str, warmup: int, repeats: int,
                  python: str = sys.executable) -> list[str]:
    return [python, "-m", "harness.bench.probe", "--warmup", str(warmup), "--repeats", str(repeats), "--floor",
            "--", *bc.argv, "--mode", bc.mode, "--dtype", dtype, "--device", device,
            "--c-threads", str(bc.c_threads)]


def _failed(m: Measurement, res: ProcResult, timeout_s: float) -> bool:
    """Record why a child failed on ``m``; False when it ran."""
    m.exit_codes.append(res.returncode)
    if res.timed_out:
        m.error = f"timed out after {timeout_s:g} s"
    elif res.returncode not in (0, 1):
        tail = (res.stderr.strip().splitlines() or [""])[-1][:300]
        m.error = f"exit code {res.returncode}" + (f": {tail}" if tail else "")
    return m.error is not None


def measure_probe(bench: "Bench", bc: BenchCase, *, dtype: str, threads: int, device: str) -> Measurement:
    """Render seconds (median of the repeats after the warm-up) and the floor's, one process."""
    s = bench.settings
    m = Measurement(case=bc.name, runner=PROBE, device=device, dtype=dtype, threads=threads)
    bench.progress(f"{bc.name}: render probe {device} {dtype} {threads} thread(s)")
    workdir = Path(tempfile.mkdtemp(prefix=f"nbparity-probe-{bc.name}-"))
    try:
        stage_inputs(bc, workdir)
        cmd = probe_command(bc, dtype=dtype, device=device, warmup=max(1, s.warmup), repeats=s.repeats,
                            python=bench.python)
        m.command = " ".join(cmd)
        timeout = s.timeout_s * (max(1, s.warmup) + s.repeats)
        res = bench.proc_runner(cmd, cwd=workdir, env=child_env(threads), timeout_s=timeout)
        m.peak_rss_bytes = res.peak_rss_bytes
        if _failed(m, res, timeout):
            return m
        out = _last_json(res.stdout)
        if out is None:
            m.error = "the probe printed no result"
            return m
        m.runs_s = [float(x) for x in out["render_s"]]
        m.wall = summarize(m.runs_s)
        m.floor = summarize(out.get("floor_s") or [])
        m.evaluations = out.get("evaluations")
        return m
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _last_json(stdout: str) -> Optional[dict[str, Any]]:
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def overhead_command(bench: "Bench", case: str, results_dir: Path) -> list[str]:
    exe = Path(bench.python).with_name("nbparity")
    base = [str(exe)] if exe.is_file() else [bench.python, "-m", "harness"]
    return [*base, "--cases-dir", str(bench.cases_dir), "--golden-dir", str(bench.golden_dir),
            "--results-dir", str(results_dir), "run", case, "--recorded", "--no-pictures"]


def measure_overhead(bench: "Bench", bc: BenchCase) -> Measurement:
    """Harness overhead of `nbparity run CASE` against its recording (warm-up runs kept apart)."""
    s = bench.settings
    m = Measurement(case=bc.name, runner=HARNESS, device="cpu", dtype="float64", threads=1)
    with tempfile.TemporaryDirectory(prefix="nbparity-bench-run-") as tmp:
        cmd = overhead_command(bench, bc.name, Path(tmp))
        m.command = " ".join(cmd).replace(tmp, "$RESULTS_TMP")
        for i in range(s.warmup + s.repeats):
            bench.progress(f"{bc.name}: harness overhead run {i + 1}/{s.warmup + s.repeats}")
            res = bench.proc_runner(cmd, cwd=Path(tmp), env=child_env(1), timeout_s=s.timeout_s)
            if _failed(m, res, s.timeout_s):
                break
            walls = _run_walls(Path(tmp) / bc.name / "latest" / "result.json")
            if walls is None:
                m.error = "the run left no result.json with engine and reference wall times"
                break
            overhead = res.wall_s - sum(walls)
            if i < s.warmup:
                m.warmup_s.append(overhead)
            else:
                m.runs_s.append(overhead)
                m.process_s.append(res.wall_s)
                m.load_s.append(walls[2])
    m.wall = summarize(m.runs_s)
    return m


def _run_walls(result_json: Path) -> Optional[tuple[float, float, float]]:
    """(engine wall, reference wall, engine load) from a run's result.json (load 0 when the run
    does not say)."""
    try:
        doc = json.loads(result_json.read_text())
        load = (doc["engine"].get("provenance") or {}).get("load_s") or 0.0
        return float(doc["engine"]["wall_s"]), float(doc["reference"]["wall_s"]), float(load)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
