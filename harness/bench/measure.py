"""Benchmark: engine (and C) wall time, peak memory and parity, each run in a fresh process.

Every measurement is one child process, timed from just before it starts to just after it is
reaped, with its peak resident set size taken from the child's own rusage (``os.wait4``):

* engine: ``python -m engine <argv> -floatfile F --mode M --dtype D --device V --c-threads K``
  with ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` set to the thread count (torch sizes its
  intra-op pool from them at start-up; ``--c-threads`` keeps the case's C thread count, so the
  image stays the one the recording holds whatever the number of torch threads);
* C (when a binary is found): ``nanoBragg <argv> -floatfile F`` with ``OMP_NUM_THREADS``;
* start-up baseline: ``python -c 'import engine.api'`` (interpreter and torch import), so that
  the table can show what is left once start-up is taken away (``net``).

Each run gets its own empty temporary directory (inputs linked in) because the C reads and
writes ``Fdump.bin`` and default output files in its cwd. Warm-up runs come first and are kept
apart from the steady-state repeats, which give min and median.

Every image is compared with the recorded C image under the case's image bar
(``harness.compare.primitive.image_metrics``). An engine timing counts only when all its images pass
that bar; float32 is judged against a gross-error bar only (:data:`FLOAT32_RTOL_OF_MAX`,
:data:`FLOAT32_MIN_CORRELATION`) and its loss, max|Δ|/max|C|, is reported. Ratios and targets
only use timings that count.

Nothing here asserts on time: the targets are computed, printed and written to bench.json.
"""
from __future__ import annotations

import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from harness.references import floatimage
from harness.references import recordings
from harness.registry.cases import Case, Registry, strip_output_flags
from harness.compare.primitive import ImageThreshold, image_metrics
from harness.model.errors import HarnessError, UsageError
from harness.report.evidence import EvidenceDir
from harness.runners.base import sha256_file, stage_inputs

SCHEMA = "nbparity-bench/1"
#: Evidence goes to results/<EVIDENCE_NAME>/<stamp>/bench.json.
EVIDENCE_NAME = "bench"

DEFAULT_CASES = ("supervisor", "simple_cubic", "triclinic_P1")
QUICK_CASES = ("simple_cubic", "triclinic_P1")
DEFAULT_THREADS = (1, 2)
DEFAULT_DTYPES = ("float64", "float32")
DEFAULT_REPEATS = 3
DEFAULT_WARMUP = 1

#: float32 is not held to the 1e-6 bar (its loss, max|Δ|/max|C|, is reported: a few % on the
#: sharpest Bragg peaks is expected); this gross-error bar only stops a broken float32 image
#: (NaN, wrong geometry, empty frame) from counting.
FLOAT32_RTOL_OF_MAX = 0.1
FLOAT32_MIN_CORRELATION = 0.9999

# Targets (issue "Performance"); reported, never asserted.
TARGET_RATIO = 0.67               # engine wall / C wall, float64, equal threads
TARGET_RATIO_CASES = ("supervisor", "simple_cubic", "triclinic_P1")
TARGET_F32_SPEEDUP = 1.5          # float64 median / float32 median
TARGET_PEAK_RSS_BYTES = 2 * 1024 ** 3
TARGET_PEAK_RSS_CASE = "supervisor"
TARGET_TRACE_S = 3.0              # `nbparity run supervisor --trace-only`, interpreter start included
TRACE_CHECK_CASE = "supervisor"

ENGINE = "engine"
C = "c"
FLOAT_NAME = "floatimage.bin"


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class ProcResult:
    """One child process: wall seconds around it, its own peak RSS (bytes), how it ended."""

    returncode: Optional[int]
    wall_s: float
    peak_rss_bytes: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False


ProcRunner = Callable[..., ProcResult]


def _maxrss_bytes(ru_maxrss: int) -> int:
    # Linux reports KiB, macOS bytes.
    return int(ru_maxrss) if sys.platform == "darwin" else int(ru_maxrss) * 1024


def run_measured(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], timeout_s: float) -> ProcResult:
    """Run ``cmd`` to completion; wall time around start and reaping, peak RSS from wait4."""
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        timed_out = threading.Event()
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out_f,
                                stderr=err_f, start_new_session=True)

        def _kill() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        timer = threading.Timer(timeout_s, _kill)
        timer.daemon = True
        timer.start()
        try:
            while True:
                try:
                    _, status, usage = os.wait4(proc.pid, 0)
                    break
                except InterruptedError:  # pragma: no cover - retried by Python since 3.5
                    continue
                except KeyboardInterrupt:
                    _kill()
                    raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out_f.seek(0)
        err_f.seek(0)
        return ProcResult(returncode=proc.returncode, wall_s=wall, peak_rss_bytes=_maxrss_bytes(usage.ru_maxrss),
                          stdout=out_f.read().decode("utf-8", "replace"),
                          stderr=err_f.read().decode("utf-8", "replace"), timed_out=timed_out.is_set())


def child_env(threads: int) -> dict[str, str]:
    """The environment with every thread-count variable pinned to ``threads``."""
    drop = ("OMP_", "MKL_", "OPENBLAS_", "TRACE_C_TAP5")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "OPENBLAS_NUM_THREADS": str(threads), "LC_ALL": "C"})
    return env


# ---------------------------------------------------------------- statistics


def summarize(values: Sequence[float]) -> Optional[dict[str, Any]]:
    """min, median, max, mean of the steady-state runs (None when there are none)."""
    vals = [float(v) for v in values]
    if not vals:
        return None
    return {"n": len(vals), "min": min(vals), "median": statistics.median(vals), "max": max(vals),
            "mean": statistics.fmean(vals)}


def ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
    if num is None or den is None or not math.isfinite(num) or not math.isfinite(den) or den <= 0:
        return None
    return num / den


# ---------------------------------------------------------------- cases


@dataclass(frozen=True)
class BenchCase:
    """What to run and what to compare against: argv without outputs, inputs, the bar."""

    name: str
    source: str                     # "registry" (cases/*.toml) or "recording" (case.json only)
    mode: str
    argv: tuple[str, ...]
    inputs: tuple[str, ...]
    data_root: Path
    threshold: ImageThreshold
    c_threads: int
    recording: recordings.Recording

    @property
    def c_runtime_s(self) -> Optional[float]:
        v = self.recording.manifest.get("runtime_s")
        return float(v) if isinstance(v, (int, float)) else None

    def reference_image(self) -> np.ndarray:
        return recordings.read_image(self.recording)


def _recording_inputs(argv: Sequence[str], root: Path) -> tuple[str, ...]:
    """argv values that are files under the recordings' root (the case.json argv names them so)."""
    out = []
    for tok in argv:
        if tok.startswith("-") or os.path.isabs(tok) or ".." in Path(tok).parts:
            continue
        if "/" in tok and (root / tok).is_file():
            out.append(tok)
    return tuple(dict.fromkeys(out))


def resolve_case(name: str, cases_dir: Path, golden: Path) -> BenchCase:
    """The registry entry when there is one (its reference recording verified), else the recording."""
    registry = Registry(cases_dir)
    if (cases_dir / f"{name}.toml").is_file():
        case: Case = registry.get(name)
        ref = case.reference_for(case.mode)
        if ref.recording is None:
            raise UsageError(f"case {name!r} has no recording for its mode {case.mode!r}: the bench needs one "
                             "to judge parity")
        rec = recordings.load(golden, ref.recording)
        recordings.verify(rec, case, ref, tuple(case.trace_pixels[0]))
        from harness.registry.cases import data_root
        return BenchCase(name=name, source="registry", mode=case.mode, argv=tuple(case.argv),
                         inputs=tuple(case.inputs), data_root=data_root(case, cases_dir, golden),
                         threshold=case.image.threshold(), c_threads=case.c_threads, recording=rec)
    if not (golden / "cases" / name / "case.json").is_file():
        raise UsageError(f"no case {name!r}: neither {cases_dir / (name + '.toml')} nor "
                         f"{golden / 'cases' / name / 'case.json'} exists")
    rec = recordings.load(golden, name)
    if rec.kind != "instrumented-c":
        raise UsageError(f"recording {name!r} is a {rec.kind} image: without a case file the bench "
                         "only uses instrumented-C recordings (mode c-parity)")
    argv = strip_output_flags(rec.argv)
    return BenchCase(name=name, source="recording", mode="c-parity", argv=tuple(argv),
                     inputs=_recording_inputs(argv, golden), data_root=golden, threshold=ImageThreshold(),
                     c_threads=int(rec.manifest.get("omp_num_threads", 1)), recording=rec)


# ---------------------------------------------------------------- measurements


@dataclass
class Measurement:
    """One configuration (case × runner × device × dtype × threads): warm-up and steady runs."""

    case: str
    runner: str                      # "engine" or "c"
    device: str
    dtype: str
    threads: int
    command: str = ""
    warmup_s: list[float] = field(default_factory=list)
    runs_s: list[float] = field(default_factory=list)
    peak_rss_bytes: Optional[int] = None
    wall: Optional[dict[str, Any]] = None
    parity_ok: Optional[bool] = None  # every image (warm-up included) within the bar
    parity_bar: Optional[dict[str, Any]] = None
    parity: Optional[dict[str, Any]] = None   # metrics of the worst image
    exit_codes: list[Optional[int]] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def counts(self) -> bool:
        """The timing counts: it ran, and (for the engine) every image passed its bar."""
        if self.error is not None or self.wall is None:
            return False
        return self.runner != ENGINE or bool(self.parity_ok)

    @property
    def median(self) -> Optional[float]:
        return self.wall["median"] if self.wall else None

    @property
    def min(self) -> Optional[float]:
        return self.wall["min"] if self.wall else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts
        return d


def _float_bar(threshold: ImageThreshold, dtype: str) -> ImageThreshold:
    if dtype == "float32":
        floor = threshold.min_correlation
        return ImageThreshold(rtol_of_max=max(threshold.rtol_of_max, FLOAT32_RTOL_OF_MAX), atol=threshold.atol,
                              min_correlation=(FLOAT32_MIN_CORRELATION if floor is None
                                               else min(floor, FLOAT32_MIN_CORRELATION)))
    return threshold


def _read_image(path: Path, shape: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"no float image written at {path}")
    return floatimage.from_bytes(path.read_bytes(), shape)


def _stage_inputs(bc: BenchCase, workdir: Path) -> None:
    sources = {rel: bc.data_root / rel for rel in bc.inputs}
    for rel, src in sources.items():
        if not src.is_file():
            raise HarnessError(f"case {bc.name}: input {rel!r} not found at {src}")
    stage_inputs(sources, workdir)


def engine_command(bc: BenchCase, floatfile: Path, *, dtype: str, device: str,
                   python: str = sys.executable) -> list[str]:
    return [python, "-m", "engine", *bc.argv, "-floatfile", str(floatfile), "--mode", bc.mode,
            "--dtype", dtype, "--device", device, "--c-threads", str(bc.c_threads)]


def c_command(bc: BenchCase, floatfile: Path, binary: Path) -> list[str]:
    return [str(binary), *bc.argv, "-floatfile", str(floatfile)]


def startup_command(python: str = sys.executable) -> list[str]:
    return [python, "-c", "import engine.api, engine.cli"]


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
        bar = _float_bar(bc.threshold, dtype) if runner == ENGINE else bc.threshold
        m.parity_bar = asdict(bar) if ref is not None else None
        env = child_env(threads)
        worst: Optional[dict[str, Any]] = None
        all_ok = True
        rss: list[int] = []
        total = s.warmup + s.repeats
        for i in range(total):
            warm = i < s.warmup
            self.progress(f"{bc.name}: {runner} {device} {dtype} {threads} thread(s) "
                          f"{'warm-up' if warm else 'run'} {i + 1 - (0 if warm else s.warmup)}/"
                          f"{s.warmup if warm else s.repeats}")
            workdir = Path(tempfile.mkdtemp(prefix=f"nbparity-bench-{bc.name}-"))
            try:
                _stage_inputs(bc, workdir)
                fpath = workdir / FLOAT_NAME
                cmd = make_cmd(fpath)
                if not m.command:
                    m.command = shlex.join(cmd).replace(str(workdir), "$WORKDIR")
                res = self.proc_runner(cmd, cwd=workdir, env=env, timeout_s=s.timeout_s)
                rss.append(res.peak_rss_bytes)
                m.exit_codes.append(res.returncode)
                if res.timed_out or res.returncode not in ok_codes:
                    tail = (res.stderr.strip().splitlines() or [""])[-1][:300]
                    m.error = (f"timed out after {s.timeout_s:g} s" if res.timed_out
                               else f"exit code {res.returncode}" + (f": {tail}" if tail else ""))
                    break
                (m.warmup_s if warm else m.runs_s).append(res.wall_s)
                if ref is not None:
                    try:
                        img = _read_image(fpath, tuple(ref.shape))
                    except ValueError as e:
                        m.error = str(e)
                        break
                    met = image_metrics(ref, img, bar).as_dict()
                    all_ok = all_ok and bool(met["ok"])
                    if worst is None or _badness(met) >= _badness(worst):
                        worst = met
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        m.peak_rss_bytes = max(rss) if rss else None
        m.wall = summarize(m.runs_s)
        if ref is not None and m.error is None:
            m.parity_ok = all_ok
            m.parity = _parity_summary(worst)
        return m

    def measure_startup(self) -> Measurement:
        """Interpreter start plus importing the engine (torch included), one thread."""
        dummy = BenchCase(name="startup", source="-", mode="-", argv=(), inputs=(), data_root=self.golden_dir,
                          threshold=ImageThreshold(), c_threads=1, recording=None)  # type: ignore[arg-type]
        return self.measure(dummy, None, runner="startup", threads=1, dtype="-",
                            make_cmd=lambda f: startup_command(self.python))

    def measure_trace_check(self, results_dir: Path) -> Measurement:
        """`nbparity run supervisor --trace-only` against the recording, as a user would run it."""
        exe = Path(self.python).with_name("nbparity")
        base = [str(exe)] if exe.is_file() else [self.python, "-m", "harness"]
        cmd = [*base, "--cases-dir", str(self.cases_dir), "--golden-dir", str(self.golden_dir),
               "--results-dir", str(results_dir), "run", TRACE_CHECK_CASE, "--trace-only", "--recorded"]
        dummy = BenchCase(name=TRACE_CHECK_CASE, source="-", mode="-", argv=(), inputs=(),
                          data_root=self.golden_dir, threshold=ImageThreshold(), c_threads=1,
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
            all_measurements += ms
            out_cases.append({
                "name": bc.name, "source": bc.source, "mode": bc.mode, "argv": list(bc.argv),
                "shape": list(ref.shape), "image_bar": asdict(bc.threshold),
                "float32_bar": asdict(_float_bar(bc.threshold, "float32")),
                "recording": {"name": bc.recording.name, "runtime_s": bc.c_runtime_s,
                              "manifest_sha256": bc.recording.manifest_sha256,
                              "omp_num_threads": bc.recording.manifest.get("omp_num_threads", 1)},
                "measurements": [m.as_dict() for m in ms],
                "ratios": engine_c_ratios(ms, startup),
                "float32": float32_speedups(ms),
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
                         "quick": s.quick, "timeout_s": s.timeout_s,
                         "c_binary": str(s.c_binary) if s.c_binary else None,
                         "c_binary_sha256": (sha256_file(s.c_binary) if s.c_binary and s.c_binary.is_file()
                                             else None),
                         "python": self.python},
            "startup": startup.as_dict(),
            "cases": out_cases,
            "trace_check": trace,
        }
        doc["targets"] = targets(doc)
        return _clean(doc)


def _loadavg() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return None


def _badness(met: dict[str, Any]) -> tuple[bool, float]:
    """Order image metrics worst last: a failed bar first, then the larger max|Δ| (NaN worst)."""
    d = met.get("max_abs_diff")
    return (not met["ok"], math.inf if d is None else float(d))


def _parity_summary(met: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    if met is None:
        return None
    keep = ("ok", "max_abs_diff", "max_abs_c", "rel_to_max", "allowed", "n_failed", "correlation",
            "sum_ratio", "worst_pixel", "reason")
    return {k: met.get(k) for k in keep}


def _by(ms: Iterable[Measurement], **kw) -> Optional[Measurement]:
    for m in ms:
        if all(getattr(m, k) == v for k, v in kw.items()):
            return m
    return None


def engine_c_ratios(ms: Sequence[Measurement], startup: Optional[Measurement] = None) -> list[dict[str, Any]]:
    """engine/C per engine CPU configuration with a C run at the same thread count.

    ratio (median/median) and ratio_min (min/min) are null unless both timings count;
    ratio_net takes the start-up baseline's median off the engine side (information only).
    """
    out = []
    st = startup.median if startup is not None and startup.counts else None
    for e in ms:
        if e.runner != ENGINE or e.device != "cpu":
            continue
        c = _by(ms, runner=C, threads=e.threads)
        if c is None:
            continue
        counts = e.counts and c.counts
        why = None if counts else ("engine image fails its parity bar" if e.error is None and c.error is None
                                   and e.wall is not None and not e.parity_ok else
                                   f"engine: {e.error}" if e.error else f"C: {c.error}" if c.error else "no timing")
        raw = ratio(e.median, c.median)
        net = ratio(e.median - st, c.median) if (st is not None and e.median is not None) else None
        out.append({"dtype": e.dtype, "threads": e.threads, "engine_median_s": e.median, "c_median_s": c.median,
                    "ratio": raw if counts else None, "ratio_min": ratio(e.min, c.min) if counts else None,
                    "ratio_net": net if counts else None, "ratio_uncounted": None if counts else raw,
                    "counts": counts, "why_not": why})
    return out


def float32_speedups(ms: Sequence[Measurement]) -> list[dict[str, Any]]:
    """float64 median / float32 median per (device, threads), with the float32 parity loss."""
    out = []
    for f32 in ms:
        if f32.runner != ENGINE or f32.dtype != "float32":
            continue
        f64 = _by(ms, runner=ENGINE, dtype="float64", device=f32.device, threads=f32.threads)
        loss = f32.parity.get("rel_to_max") if f32.parity else None
        counts = bool(f64 is not None and f64.counts and f32.counts)
        sp = ratio(f64.median, f32.median) if f64 is not None else None
        out.append({"device": f32.device, "threads": f32.threads, "float64_median_s": f64.median if f64 else None,
                    "float32_median_s": f32.median, "speedup": sp if counts else None,
                    "speedup_uncounted": None if counts else sp, "counts": counts,
                    "float32_loss_rel_to_max": loss})
    return out


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's performance targets over one bench document: value, limit, met (None: not measured)."""
    out: list[dict[str, Any]] = []
    threads = doc["settings"]["threads"]
    by_case = {c["name"]: c for c in doc["cases"]}
    for name in TARGET_RATIO_CASES:
        c = by_case.get(name)
        if c is None:
            continue
        for t in threads:
            r = next((r for r in c["ratios"] if r["dtype"] == "float64" and r["threads"] == t), None)
            out.append({"target": f"engine/C wall ≤ {TARGET_RATIO} (float64, {t} thread{'s' if t > 1 else ''})",
                        "case": name, "value": r["ratio"] if r else None, "limit": TARGET_RATIO,
                        "met": (None if r is None else (r["ratio"] is not None and r["ratio"] <= TARGET_RATIO)),
                        "note": ("no C binary" if not doc["settings"]["c_binary"] else
                                 "not measured" if r is None else (r["why_not"] or ""))})
    for c in doc["cases"]:
        for f in c["float32"]:
            if f["device"] != "cpu":
                continue
            out.append({"target": f"float32 ≥ {TARGET_F32_SPEEDUP}× float64 ({f['threads']} thread"
                                  f"{'s' if f['threads'] > 1 else ''})",
                        "case": c["name"], "value": f["speedup"], "limit": TARGET_F32_SPEEDUP,
                        "met": f["speedup"] is not None and f["speedup"] >= TARGET_F32_SPEEDUP,
                        "note": (f"float32 loss max|Δ|/max|C| = {f['float32_loss_rel_to_max']:.3g}"
                                 if f["float32_loss_rel_to_max"] is not None else "")})
    c = by_case.get(TARGET_PEAK_RSS_CASE)
    if c is not None:
        rss = [m["peak_rss_bytes"] for m in c["measurements"] if m["runner"] == ENGINE and m["device"] == "cpu"
               and m["dtype"] == "float64" and m["peak_rss_bytes"] is not None]
        peak = max(rss) if rss else None
        out.append({"target": "peak RSS ≤ 2 GB (float64 full frame)", "case": TARGET_PEAK_RSS_CASE,
                    "value": peak, "limit": TARGET_PEAK_RSS_BYTES,
                    "met": None if peak is None else peak <= TARGET_PEAK_RSS_BYTES, "note": "bytes"})
    tr = doc.get("trace_check")
    if tr is not None:
        med = (tr.get("wall") or {}).get("max")
        out.append({"target": f"`nbparity run {TRACE_CHECK_CASE} --trace-only` ≤ {TARGET_TRACE_S:g} s",
                    "case": TRACE_CHECK_CASE, "value": med, "limit": TARGET_TRACE_S,
                    "met": None if med is None else med <= TARGET_TRACE_S,
                    "note": tr.get("error") or "slowest steady-state run, interpreter start included"})
    cuda = [m for c in doc["cases"] for m in c["measurements"] if m["device"] == "cuda"]
    if "cuda" in doc["settings"]["devices"]:
        ok = bool(cuda) and all(m["error"] is None for m in cuda)
        out.append({"target": "engine runs unchanged on CUDA", "case": ",".join(by_case), "value": len(cuda),
                    "limit": None, "met": ok, "note": "; ".join(sorted({m['error'] for m in cuda if m['error']}))})
    return out


def _clean(obj: Any) -> Any:
    """JSON-safe: non-finite floats become null, tuples lists, paths strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, np.integer)):
        return _clean(obj.item())
    return obj


# ---------------------------------------------------------------- evidence and ledger


def write_evidence(doc: dict[str, Any], results_dir: Path, report_text: str = "",
                   env: Optional[dict[str, Any]] = None,
                   notice: Callable[[str], None] = lambda msg: None) -> Path:
    """results/bench/<stamp>/ with bench.json (and report.txt, env.json); returns the directory.

    Then one row per case goes into the run ledger (results/ledger.sqlite) when it exists."""
    with EvidenceDir(results_dir, EVIDENCE_NAME) as ev:
        ev.write_json("bench.json", doc)
        if report_text:
            ev.write_text("report.txt", report_text)
        if env is not None:
            ev.write_json("env.json", env)
        final = ev.commit()
    append_ledger(doc, results_dir, final, notice)
    return final


def ledger_rows(doc: dict[str, Any], evidence: Path) -> list[dict[str, Any]]:
    """One run-ledger row per benched case (command "bench"): the float64 CPU engine's parity
    verdict over all its runs against the recording, its median wall and the C's at the same
    thread count (the first thread count benched)."""
    from harness.service import ledger  # noqa: PLC0415 - the ledger is optional for the bench
    from harness.model.paths import REPO_ROOT  # noqa: PLC0415

    run_id = ledger.new_run_id()
    commit, dirty, branch = ledger.git_info(str(REPO_ROOT))
    rows = []
    for c in doc.get("cases", []):
        f64 = [m for m in c["measurements"]
               if m["runner"] == ENGINE and m["device"] == "cpu" and m["dtype"] == "float64"]
        if not f64:
            continue
        main = f64[0]
        if any(m["error"] for m in f64):
            status, code = "runner-failure", 3
        elif all(m["parity_ok"] for m in f64):
            status, code = "parity", 0
        else:
            status, code = "divergence", 1
        cm = next((m for m in c["measurements"] if m["runner"] == C and m["threads"] == main["threads"]), None)
        img = next((m["parity"] for m in f64 if m["parity"] and not m["parity"].get("ok")), main["parity"]) or {}
        worst = img.get("worst_pixel") or (None, None)
        rows.append({
            "run_id": run_id, "command": "bench", "time_utc": doc.get("finished_utc"),
            "case_name": c["name"], "mode": c["mode"], "pixel_slow": None, "pixel_fast": None,
            "commit_sha": commit, "dirty": None if dirty is None else int(bool(dirty)), "branch": branch,
            "device": "cpu", "dtype": "float64", "reference_runner": "c-recorded",
            "reference_id": c["recording"]["name"], "reference_sha256": c["recording"].get("manifest_sha256"),
            "status": status, "exit_code": code, "label": None, "first_key": None, "first_delta": None,
            "key_deltas": None, "trace_rows": None,
            "image_ok": None if not img else int(bool(img.get("ok"))),
            "image_max_abs_diff": img.get("max_abs_diff"), "image_rel_to_max": img.get("rel_to_max"),
            "image_correlation": img.get("correlation"), "image_n_failed": img.get("n_failed"),
            "image_worst_slow": worst[0], "image_worst_fast": worst[1],
            "image_metrics": img or None,
            "wall_reference_s": (cm["wall"] or {}).get("median") if cm else None,
            "wall_engine_s": (main["wall"] or {}).get("median"),
            "evidence_dir": str(evidence),
        })
    return rows


def append_ledger(doc: dict[str, Any], results_dir: Path, evidence: Path,
                  notice: Callable[[str], None] = lambda msg: None) -> int:
    """Append the bench's rows to results/ledger.sqlite if that ledger exists (never creates it).

    Returns the number of rows written; a ledger problem is reported through ``notice`` and
    never changes the bench's outcome.
    """
    try:
        from harness.service import ledger  # noqa: PLC0415
    except ImportError:
        return 0
    path = ledger.ledger_path(results_dir)
    if not path.is_file():
        return 0
    n = 0
    try:
        book = ledger.Ledger(path, notice=notice)
        for row in ledger_rows(doc, evidence):
            book.append(row)
            n += 1
    except (ledger.LedgerError, OSError, ValueError) as e:
        notice(f"ledger not updated: {e}")
    return n


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


__all__ = ["Bench", "BenchCase", "BenchSettings", "Measurement", "ProcResult", "run_measured", "summarize",
           "engine_c_ratios", "float32_speedups", "targets", "write_evidence", "append_ledger", "resolve_case"]
