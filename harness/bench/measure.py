"""Benchmark: engine (and C) wall time, peak memory and parity, each run in a fresh process.

This module runs the measurements (``Bench``); the rest of the bench is split by job:
harness.bench.procs (the commands and the child processes), .cases (what is run and its image
bars, from harness.registry.profiles), .measurement (one configuration's numbers), .analysis
(ratios, float32 speed-ups, per-case figures, targets), .records (bench.json and the run ledger),
.per_case with .probe and .floor (render seconds, the floor, the harness overhead of `nbparity
run`) and .figures_table (their table). The names a caller needs are importable from here.

Warm-up runs come first and are kept apart from the steady-state repeats, which give min and
median. Every image is compared with the recorded C image under the case's image bar for the
dtype (the same profile `run` and `gate` use); an engine timing counts only when all its images
pass that bar, and float32's loss, max|Δ|/max|C|, is reported. Ratios and targets only use
timings that count. Nothing here asserts on time.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from engine.io import floatimage
from harness.bench.analysis import (TARGET_F32_SPEEDUP, TARGET_PEAK_RSS_BYTES, TARGET_PEAK_RSS_CASE, TARGET_RATIO,
                                    TARGET_RATIO_CASES, TARGET_TRACE_S, TRACE_CHECK_CASE, case_figures,
                                    engine_c_ratios, float32_speedups, targets, worst_render_ratios)
from harness.bench.cases import BenchCase, image_bars, resolve_case
from harness.bench.measurement import C, ENGINE, Measurement, badness, parity_summary, ratio, summarize
from harness.bench.per_case import measure_overhead, measure_probe
from harness.bench.procs import (FLOAT_NAME, ProcResult, ProcRunner, c_command, child_env, engine_command,
                                 run_measured, stage_inputs, startup_command)
from harness.bench.records import EVIDENCE_NAME, append_ledger, json_safe, ledger_rows, write_evidence
from harness.compare.images import ImageThreshold, image_metrics
from harness.model.errors import UsageError
from harness.model.hashing import sha256_file
from harness.registry import profiles
from harness.runners.external import command_line

SCHEMA = "nbparity-bench/1"

DEFAULT_CASES = ("supervisor", "simple_cubic", "triclinic_P1")
QUICK_CASES = ("simple_cubic", "triclinic_P1")
DEFAULT_THREADS = (1, 2)
DEFAULT_DTYPES = ("float64", "float32")
DEFAULT_REPEATS = 3
DEFAULT_WARMUP = 1


@dataclass
class BenchSettings:
    cases: tuple[str, ...] = DEFAULT_CASES
    threads: tuple[int, ...] = DEFAULT_THREADS
    dtypes: tuple[str, ...] = DEFAULT_DTYPES
    devices: tuple[str, ...] = ("cpu",)
    repeats: int = DEFAULT_REPEATS
    warmup: int = DEFAULT_WARMUP
    c_binary: Optional[Path] = None
    timeout_s: float = 900.0
    trace_check: bool = False
    quick: bool = False
    #: Other registered command implementations to time (`bench --impl`; registry entries).
    impls: tuple[Any, ...] = ()
    #: Per case: the in-process render time and its floor (a probe process per configuration).
    probe: bool = False
    #: Per case: the harness overhead of `nbparity run CASE --recorded`.
    overhead: bool = False


@dataclass
class _Runs:
    """What a configuration's runs add up to: the reference and bar, the worst image, peak RSS."""

    ref: Optional[np.ndarray]
    bar: Optional[ImageThreshold]
    worst: Optional[dict[str, Any]] = None
    all_ok: bool = True
    rss: list[int] = field(default_factory=list)

    def judge(self, met: dict[str, Any]) -> None:
        self.all_ok = self.all_ok and bool(met["ok"])
        if self.worst is None or badness(met) >= badness(self.worst):
            self.worst = met


@dataclass
class Bench:
    """Runs the measurements; ``proc_runner`` is the seam the tests replace."""

    settings: BenchSettings
    cases_dir: Path
    golden_dir: Path
    python: str = sys.executable
    proc_runner: ProcRunner = run_measured
    progress: Callable[[str], None] = lambda msg: None

    # -- one configuration
    def measure(self, bc: BenchCase, ref: Optional[np.ndarray], *, runner: str, threads: int,
                dtype: str = "float64", device: str = "cpu",
                make_cmd: Optional[Callable[[Path], list[str]]] = None,
                ok_codes: tuple[int, ...] = (0,)) -> Measurement:
        s = self.settings
        m = Measurement(case=bc.name, runner=runner, device=device, dtype=dtype, threads=threads)
        if make_cmd is None:
            if runner == ENGINE:
                make_cmd = lambda f: engine_command(bc, f, dtype=dtype, device=device, python=self.python)  # noqa: E731
            else:
                assert s.c_binary is not None
                make_cmd = lambda f: c_command(bc, f, s.c_binary)  # noqa: E731
        bar = bc.bar(dtype) if runner == ENGINE else bc.threshold
        if bar is None:  # no profile for this dtype: timed, not judged
            ref = None
        m.parity_bar = asdict(bar) if ref is not None and bar is not None else None
        env = child_env(threads)
        runs = _Runs(ref=ref, bar=bar)
        for i in range(s.warmup + s.repeats):
            warm = i < s.warmup
            self.progress(f"{bc.name}: {runner} {device} {dtype} {threads} thread(s) "
                          f"{'warm-up' if warm else 'run'} {i + 1 - (0 if warm else s.warmup)}/"
                          f"{s.warmup if warm else s.repeats}")
            if not self._one_run(bc, m, runs, make_cmd, env, warm, ok_codes):
                break
        m.peak_rss_bytes = max(runs.rss) if runs.rss else None
        m.wall = summarize(m.runs_s)
        if ref is not None and m.error is None:
            m.parity_ok = runs.all_ok
            m.parity = parity_summary(runs.worst)
        return m

    def _one_run(self, bc: BenchCase, m: Measurement, runs: "_Runs", make_cmd: Callable[[Path], list[str]],
                 env: dict[str, str], warm: bool, ok_codes: tuple[int, ...]) -> bool:
        """One child process of a configuration, its image judged; False when the configuration stops."""
        s = self.settings
        workdir = Path(tempfile.mkdtemp(prefix=f"nbparity-bench-{bc.name}-"))
        try:
            stage_inputs(bc, workdir)
            fpath = workdir / FLOAT_NAME
            cmd = make_cmd(fpath)
            if not m.command:
                m.command = shlex.join(cmd).replace(str(workdir), "$WORKDIR")
            res = self.proc_runner(cmd, cwd=workdir, env=env, timeout_s=s.timeout_s)
            runs.rss.append(res.peak_rss_bytes)
            m.exit_codes.append(res.returncode)
            if res.timed_out or res.returncode not in ok_codes:
                tail = (res.stderr.strip().splitlines() or [""])[-1][:300]
                m.error = (f"timed out after {s.timeout_s:g} s" if res.timed_out
                           else f"exit code {res.returncode}" + (f": {tail}" if tail else ""))
                return False
            (m.warmup_s if warm else m.runs_s).append(res.wall_s)
            if runs.ref is None:
                return True
            try:
                img = floatimage.read_floatimage(fpath, tuple(runs.ref.shape))
            except floatimage.FloatImageError as e:
                m.error = str(e)
                return False
            runs.judge(image_metrics(runs.ref, img, runs.bar).as_dict())
            return True
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def measure_impls(self, bc: BenchCase, ref: Optional[np.ndarray]) -> list[Measurement]:
        """Each implementation of `bench --impl`, one thread, in each of the dtypes it runs."""
        out = []
        for impl in self.settings.impls:
            for dtype in (d for d in self.settings.dtypes if d in impl.can.dtypes):
                def make(f: Path, impl=impl, dtype=dtype) -> list[str]:
                    return command_line(impl, bc.argv, mode=bc.mode, dtype=dtype, floatfile=str(f))
                out.append(self.measure(bc, ref, runner=impl.name, threads=1, dtype=dtype, make_cmd=make))
        return out

    def measure_figures(self, bc: BenchCase) -> list[Measurement]:
        """The render probe per engine configuration, then the harness overhead (as settings ask)."""
        s = self.settings
        out = []
        if s.probe:
            for device in s.devices:
                for dtype in s.dtypes:
                    for t in (s.threads if device == "cpu" else (1,)):
                        out.append(measure_probe(self, bc, dtype=dtype, threads=t, device=device))
        if s.overhead and bc.source == "registry":  # `nbparity run` needs a case file
            out.append(measure_overhead(self, bc))
        return out

    def measure_startup(self) -> Measurement:
        """Interpreter start plus importing the engine (torch included), one thread."""
        dummy = BenchCase(name="startup", source="-", mode="-", argv=(), inputs=(), data_root=self.golden_dir,
                          bars={profiles.BASE_DTYPE: ImageThreshold()}, c_threads=1, recording=None)  # type: ignore[arg-type]
        return self.measure(dummy, None, runner="startup", threads=1, dtype="-",
                            make_cmd=lambda f: startup_command(self.python))

    def measure_trace_check(self, results_dir: Path) -> Measurement:
        """`nbparity run supervisor --trace-only` against the recording, as a user would run it."""
        exe = Path(self.python).with_name("nbparity")
        base = [str(exe)] if exe.is_file() else [self.python, "-m", "harness"]
        cmd = [*base, "--cases-dir", str(self.cases_dir), "--golden-dir", str(self.golden_dir),
               "--results-dir", str(results_dir), "run", TRACE_CHECK_CASE, "--trace-only", "--recorded"]
        dummy = BenchCase(name=TRACE_CHECK_CASE, source="-", mode="-", argv=(), inputs=(),
                          data_root=self.golden_dir, bars={profiles.BASE_DTYPE: ImageThreshold()}, c_threads=1,
                          recording=None)  # type: ignore[arg-type]
        # Exit 1 (a divergence) still times the check; only a failure to run does not.
        m = self.measure(dummy, None, runner="trace-only", threads=1, dtype="float64",
                         make_cmd=lambda f: cmd, ok_codes=(0, 1))
        m.command = m.command.replace(str(results_dir), "$RESULTS_TMP")
        return m

    # -- everything
    def run(self, *, command_line: str = "", results_dir: Optional[Path] = None) -> dict[str, Any]:
        s = self.settings
        started = datetime.now(timezone.utc)
        load_start = _loadavg()
        cases = [resolve_case(n, self.cases_dir, self.golden_dir) for n in s.cases]
        startup = self.measure_startup()
        out_cases: list[dict[str, Any]] = []
        all_measurements: list[Measurement] = []
        for bc in cases:
            ref = bc.reference_image()
            ms: list[Measurement] = []
            for device in s.devices:
                for dtype in s.dtypes:
                    for t in (s.threads if device == "cpu" else (1,)):
                        ms.append(self.measure(bc, ref, runner=ENGINE, threads=t, dtype=dtype, device=device))
            if s.c_binary is not None:
                for t in s.threads:
                    ms.append(self.measure(bc, ref, runner=C, threads=t))
            ms += self.measure_impls(bc, ref)
            ms += self.measure_figures(bc)
            all_measurements += ms
            out_cases.append({
                "name": bc.name, "source": bc.source, "mode": bc.mode, "argv": list(bc.argv),
                "shape": list(ref.shape), "image_bar": asdict(bc.threshold),
                "float32_bar": asdict(bc.bar("float32")) if bc.bar("float32") else None,
                "recording": {"name": bc.recording.name, "runtime_s": bc.c_runtime_s,
                              "manifest_sha256": bc.recording.manifest_sha256,
                              "omp_num_threads": bc.recording.manifest.get("omp_num_threads", 1)},
                "measurements": [m.as_dict() for m in ms],
                "ratios": engine_c_ratios(ms, startup),
                "float32": float32_speedups(ms),
                **({"figures": case_figures(ms, s.threads)} if s.probe or s.overhead else {}),
            })
        trace = None
        if s.trace_check:
            with tempfile.TemporaryDirectory(prefix="nbparity-bench-trace-") as tmp:
                trace = self.measure_trace_check(Path(tmp)).as_dict()
        doc = {
            "schema": SCHEMA,
            "started_utc": started.isoformat(),
            "finished_utc": datetime.now(timezone.utc).isoformat(),
            "command_line": command_line,
            # Other work on the machine skews wall times: the load averages say how busy it was.
            "host": {"cpu_count": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": _loadavg()},
            "settings": {"cases": list(s.cases), "threads": list(s.threads), "dtypes": list(s.dtypes),
                         "devices": list(s.devices), "repeats": s.repeats, "warmup": s.warmup,
                         "quick": s.quick, "timeout_s": s.timeout_s, "probe": s.probe, "overhead": s.overhead,
                         "c_binary": str(s.c_binary) if s.c_binary else None,
                         "c_binary_sha256": (sha256_file(s.c_binary) if s.c_binary and s.c_binary.is_file()
                                             else None),
                         "python": self.python},
            "startup": startup.as_dict(),
            "cases": out_cases,
            "worst_render_ratio": worst_render_ratios(out_cases),
            "trace_check": trace,
        }
        doc["targets"] = targets(doc)
        return json_safe(doc)


def _loadavg() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return None


def parse_list(text: str, kind: Callable[[str], Any] = str, allowed: Optional[Sequence[Any]] = None,
               what: str = "value") -> tuple[Any, ...]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"expected a comma-separated list of {what}s, got {text!r}")
    out = []
    for t in items:
        try:
            v = kind(t)
        except ValueError:
            raise UsageError(f"expected {what}s, got {t!r}") from None
        if allowed is not None and v not in allowed:
            raise UsageError(f"{what} {t!r} is not one of {', '.join(map(str, allowed))}")
        out.append(v)
    return tuple(dict.fromkeys(out))


__all__ = ["Bench", "BenchCase", "BenchSettings", "Measurement", "ProcResult", "run_measured", "summarize", "ratio",
           "engine_c_ratios", "float32_speedups", "targets", "write_evidence", "append_ledger", "ledger_rows",
           "resolve_case", "image_bars", "engine_command", "c_command", "startup_command", "child_env", "C", "ENGINE",
           "EVIDENCE_NAME", "SCHEMA", "TARGET_F32_SPEEDUP", "TARGET_PEAK_RSS_BYTES", "TARGET_PEAK_RSS_CASE",
           "TARGET_RATIO", "TARGET_RATIO_CASES", "TARGET_TRACE_S", "TRACE_CHECK_CASE", "parse_list", "UsageError"]
