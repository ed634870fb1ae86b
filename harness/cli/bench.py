"""`nbparity bench`: the benchmark's sub-command and its rich table.

Listed in harness/cli/registry.py: ``register(subparsers)`` and ``handle(args, console)``.

Exit codes: 0 the bench ran (targets missed and parity failures are reported, not fatal, unless
--strict), 1 with --strict when an engine image fails its bar or a measured target is missed,
2 usage/case/input error, 3 a run failed (crash, timeout, no image).
"""
from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
from typing import Any, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.bench import fuzz_rate
from harness.bench import measure as bench
from harness.bench.figures_table import FIGURE_RUNNERS, figures_table, worst_lines
from harness.model import paths
from harness.cli.common import CliConsole, seconds
from harness.cli.pairs import bench_impls
from harness.model.environment import snapshot
from harness.model.errors import ExitCode, UsageError
from harness.runners.choose import find_binary

HELP = "benchmark the engine (and the C when a binary is found): times, peak RSS, parity, ratios"


NAME = "bench"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    b = subparsers.add_parser(NAME, help=HELP, description=HELP)
    b.add_argument("--cases", help=f"comma-separated case names, or all (every case file; `make bench`) "
                                   f"(default: {','.join(bench.DEFAULT_CASES)}; --quick: {','.join(bench.QUICK_CASES)})")
    b.add_argument("--repeats", type=int, help=f"steady-state runs per configuration (default "
                                               f"{bench.DEFAULT_REPEATS}; --quick: 1)")
    b.add_argument("--warmup", type=int, help=f"warm-up runs per configuration, kept apart (default {bench.DEFAULT_WARMUP})")
    b.add_argument("--threads", default=",".join(map(str, bench.DEFAULT_THREADS)),
                   help="comma-separated thread counts, the same for engine and C (default: 1,2)")
    b.add_argument("--dtypes", default=",".join(bench.DEFAULT_DTYPES), help="engine dtypes (default: float64,float32)")
    b.add_argument("--devices", default="auto",
                   help="engine devices: cpu, cuda (default auto: cpu, plus cuda when torch sees one)")
    b.add_argument("--quick", action="store_true",
                   help="small cases, 1 repeat, no trace check (CI: a few minutes, engine side only)")
    b.add_argument("--c-bin", help="C binary (default: NB_C_BIN, then golden_bin/nanoBragg)")
    b.add_argument("--no-c", action="store_true", help="engine only, even when a C binary is found")
    b.add_argument("--impl", default="", metavar="NAME[,NAME]",
                   help="also time these registered command implementations (`nbparity impls`), e.g. hoidn")
    b.add_argument("--no-figures", action="store_true",
                   help="skip the per-case figures: in-process render time with its floor, and the harness "
                        "overhead of `nbparity run CASE --recorded`")
    b.add_argument("--timeout", type=seconds, default=900.0, help="seconds per run, > 0 (default 900)")
    tc = b.add_mutually_exclusive_group()
    tc.add_argument("--trace-check", dest="trace_check", action="store_const", const=True,
                    help=f"time `nbparity run {bench.TRACE_CHECK_CASE} --trace-only` "
                         f"(default: on when {bench.TRACE_CHECK_CASE} is benched, off with --quick)")
    tc.add_argument("--no-trace-check", dest="trace_check", action="store_const", const=False)
    b.add_argument("--strict", action="store_true", help="exit 1 when parity fails or a measured target is missed")
    b.add_argument("--json", action="store_true", help="print bench.json instead of the table")
    b.add_argument("--fuzz-rate", action="store_true",
                   help="also measure `nbparity fuzz` examples/min, in-process and on a two-worker LocalCluster "
                        "(--quick: in-process only; `make bench` passes it)")
    b.set_defaults(trace_check=None)
    return b


def _cuda_available() -> bool:
    try:
        import torch  # noqa: PLC0415 - torch loads in seconds; only --devices auto asks for it
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no torch, no CUDA
        return False


def settings_from_args(args: argparse.Namespace) -> bench.BenchSettings:
    quick = bool(getattr(args, "quick", False))
    cases = (bench.parse_list(args.cases, what="case") if getattr(args, "cases", None)
             else (bench.QUICK_CASES if quick else bench.DEFAULT_CASES))
    if cases == ("all",):
        cases = tuple(sorted(p.stem for p in paths.cases_dir(getattr(args, "cases_dir", None)).glob("*.toml")))
    repeats = args.repeats if args.repeats is not None else (1 if quick else bench.DEFAULT_REPEATS)
    warmup = args.warmup if args.warmup is not None else bench.DEFAULT_WARMUP
    if repeats < 1:
        raise UsageError(f"--repeats: expected at least 1, got {repeats}")
    if warmup < 0:
        raise UsageError(f"--warmup: expected 0 or more, got {warmup}")
    threads = bench.parse_list(args.threads, int, what="thread count")
    if any(t < 1 for t in threads):
        raise UsageError(f"--threads: expected counts >= 1, got {args.threads!r}")
    dtypes = bench.parse_list(args.dtypes, allowed=("float64", "float32"), what="dtype")
    if args.devices == "auto":
        devices: tuple[str, ...] = ("cpu", "cuda") if _cuda_available() else ("cpu",)
    else:
        devices = bench.parse_list(args.devices, allowed=("cpu", "cuda"), what="device")
    c_binary = None
    if not args.no_c:
        c_binary = find_binary("instrumented-c", args.c_bin)
        if c_binary is not None and not c_binary.is_file():
            raise UsageError(f"C binary {c_binary} does not exist (check --c-bin / NB_C_BIN, or pass --no-c)")
        c_binary = c_binary.resolve() if c_binary is not None else None
    trace = args.trace_check if args.trace_check is not None else (not quick and bench.TRACE_CHECK_CASE in cases)
    if args.timeout <= 0:
        raise UsageError(f"--timeout: expected seconds > 0, got {args.timeout}")
    return bench.BenchSettings(cases=tuple(cases), threads=tuple(threads), dtypes=tuple(dtypes),
                               impls=bench_impls(getattr(args, "impl", "")),
                               devices=tuple(devices), repeats=repeats, warmup=warmup, c_binary=c_binary,
                               timeout_s=args.timeout, trace_check=bool(trace), quick=quick,
                               probe=not getattr(args, "no_figures", False),
                               overhead=not getattr(args, "no_figures", False))


# ---------------------------------------------------------------- table


def _s(x: Optional[float], digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _mb(b: Optional[int]) -> str:
    return "—" if b is None else f"{b / 2 ** 20:,.0f} MiB"


def _parity_cell(m: dict[str, Any]) -> Text:
    if m["error"]:
        return Text(f"error: {m['error']}"[:60], style="bold red")
    p = m.get("parity")
    if p is None:
        return Text("—")
    loss = p.get("rel_to_max")
    loss_s = "—" if loss is None else f"{loss:.2g}"
    if m["parity_ok"]:
        return Text(f"✓ {loss_s}", style="green")
    return Text(f"✗ {p.get('n_failed')} px, {loss_s}", style="bold red")


def tables(doc: dict[str, Any]) -> list[Table]:
    st = doc["startup"]
    st_med = (st.get("wall") or {}).get("median")
    t = Table(title="nbparity bench: wall seconds per fresh process (steady state; warm-up apart); "
                    "parity = max|Δ|/max|C| vs the recorded C image", title_justify="left")
    for col, kw in (("case", {}), ("runner", {}), ("dev", {}), ("dtype", {}), ("thr", {"justify": "right"}),
                    ("warm-up", {"justify": "right"}), ("min", {"justify": "right"}),
                    ("median", {"justify": "right"}), ("net", {"justify": "right"}),
                    ("peak RSS", {"justify": "right"}), ("C median", {"justify": "right"}),
                    ("engine/C", {"justify": "right"}), ("f32 ×", {"justify": "right"}), ("parity", {})):
        t.add_column(col, **kw)
    for c in doc["cases"]:
        c_med = {m["threads"]: (m["wall"] or {}).get("median") for m in c["measurements"] if m["runner"] == bench.C}
        ratios = {(r["dtype"], r["threads"]): r for r in c["ratios"]}
        f32 = {(f["device"], f["threads"]): f for f in c["float32"]}
        first = True
        timed = [m for m in c["measurements"] if m["runner"] not in FIGURE_RUNNERS]
        for m in timed:
            w = m["wall"] or {}
            eng = m["runner"] == bench.ENGINE
            r = ratios.get((m["dtype"], m["threads"])) if eng and m["device"] == "cpu" else None
            if r is None:
                ratio_cell = Text("—")
            elif r["ratio"] is None:
                ratio_cell = Text(f"({_s(r['ratio_uncounted'], 2)}) no parity" if r["ratio_uncounted"] else "—",
                                  style="dim")
            else:
                good = m["dtype"] != "float64" or r["ratio"] <= bench.TARGET_RATIO
                ratio_cell = Text(f"{r['ratio']:.2f}", style="green" if good else "red")
            f = f32.get((m["device"], m["threads"])) if eng and m["dtype"] == "float32" else None
            if f is None or (f["speedup"] is None and f["speedup_uncounted"] is None):
                f_cell = Text("—")
            elif f["speedup"] is None:
                f_cell = Text(f"({f['speedup_uncounted']:.2f})", style="dim")
            else:
                f_cell = Text(f"{f['speedup']:.2f}", style="green" if f["speedup"] >= bench.TARGET_F32_SPEEDUP else "red")
            net = (w.get("median") - st_med) if (eng and st_med is not None and w.get("median") is not None) else None
            warm = m["warmup_s"]
            other = m["runner"] not in (bench.ENGINE, bench.C)  # a `bench --impl` implementation
            t.add_row(c["name"] if first else "", "engine" if eng else (m["runner"] if other else "C"),
                      m["device"] if eng else "—", m["dtype"] if eng or other else "—", str(m["threads"]),
                      ", ".join(f"{x:.2f}" for x in warm) if warm else "—", _s(w.get("min")), _s(w.get("median")),
                      ("~0" if net is not None and net < 0 else _s(net)), _mb(m["peak_rss_bytes"]),
                      _s(c_med.get(m["threads"])) if eng and m["device"] == "cpu" else "—",
                      ratio_cell, f_cell, _parity_cell(m),
                      end_section=(m is timed[-1]))
            first = False
    out = [t]
    ft = figures_table(doc)
    if ft is not None:
        out.append(ft)
    tg = Table(title="targets (reported, never asserted)", title_justify="left")
    for col in ("target", "case", "value", "limit", "met", "note"):
        tg.add_column(col, overflow="fold")
    for x in doc["targets"]:
        v, lim = x["value"], x["limit"]
        if "RSS" in x["target"]:
            vs, ls = _mb(v), _mb(lim)
        else:
            vs = "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
            ls = "—" if lim is None else f"{lim:g}"
        met = x["met"]
        tg.add_row(x["target"], x["case"], vs, ls,
                   Text("—" if met is None else ("yes" if met else "no"),
                        style="" if met is None else ("green" if met else "red")), x["note"] or "")
    out.append(tg)
    return out


def footer_lines(doc: dict[str, Any]) -> list[str]:
    s = doc["settings"]
    st = doc["startup"]
    w = st.get("wall") or {}
    lines = [f"start-up (python -c 'import engine.api'): median {_s(w.get('median'))} s, min {_s(w.get('min'))} s "
             "— 'net' is the engine median less this (~0: within the noise)",
             f"repeats {s['repeats']}, warm-up {s['warmup']}; C: {s['c_binary'] or 'none (engine side only)'}; "
             f"devices: {', '.join(s['devices'])}"]
    host = doc.get("host") or {}
    loads = [x for x in (host.get("loadavg_start"), host.get("loadavg_end")) if x]
    if loads:
        busy = max(x[0] for x in loads)
        ncpu = host.get("cpu_count") or 1
        lines.append(f"load average (1 min) at start/end: {' / '.join(f'{x[0]:.2f}' for x in loads)} on {ncpu} CPUs"
                     + (" — the machine was busy: times are inflated and noisy" if busy > 0.5 * ncpu else ""))
    lines += worst_lines(doc)
    lines += fuzz_rate.summary_lines(doc.get("fuzz_throughput"))
    tr = doc.get("trace_check")
    if tr is not None:
        tw = tr.get("wall") or {}
        lines.append(f"trace check `{tr['command']}`: min {_s(tw.get('min'))} s, median {_s(tw.get('median'))} s"
                     + (f" (error: {tr['error']})" if tr.get("error") else ""))
    return lines


def render(console: Console, doc: dict[str, Any]) -> None:
    for t in tables(doc):
        console.print(t)
    for line in footer_lines(doc):
        console.print(line, markup=False, highlight=False)


def export_text(doc: dict[str, Any], width: int = 220) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    render(console, doc)
    return console.export_text()


# ---------------------------------------------------------------- entry point


def exit_code(doc: dict[str, Any], strict: bool) -> int:
    ms = [m for c in doc["cases"] for m in c["measurements"]]
    if any(m["error"] for m in ms) or (doc["startup"] or {}).get("error"):
        return int(ExitCode.RUNNER_FAILURE)
    if strict and (any(m["parity_ok"] is False for m in ms) or any(t["met"] is False for t in doc["targets"])):
        return int(ExitCode.DIVERGENCE)
    return 0


def handle(args: argparse.Namespace, console: CliConsole, bench_cls: type = bench.Bench) -> int:
    out, err = console.out, console.err
    settings = settings_from_args(args)
    golden = paths.golden_dir(getattr(args, "golden_dir", None))
    results = paths.results_dir(getattr(args, "results_dir", None))
    cases_dir = paths.cases_dir(getattr(args, "cases_dir", None))
    argv = console.argv or getattr(args, "argv", None) or sys.argv[1:]
    status = err.status("bench", spinner="dots") if err.is_terminal else None

    def progress(msg: str) -> None:
        if status is not None:
            status.update(msg)
        else:
            err.print(f"bench: {msg}", markup=False, highlight=False)

    runner = bench_cls(settings=settings, cases_dir=cases_dir, golden_dir=golden, progress=progress)
    if status is not None:
        status.start()
    try:
        doc = runner.run(command_line=shlex.join(["nbparity", *argv]))
        if getattr(args, "fuzz_rate", False):
            progress("fuzz throughput (examples/min)")
            doc["fuzz_throughput"] = fuzz_rate.measure(settings.quick)
    finally:
        if status is not None:
            status.stop()
    final = bench.write_evidence(doc, results, export_text(doc), env=snapshot(),
                                 notice=lambda msg: err.print(f"nbparity: {msg}", markup=False, highlight=False))
    if args.json:
        print(json.dumps(doc, indent=2, allow_nan=False))
    else:
        render(out, doc)
        out.print(f"evidence: {final / 'bench.json'}", highlight=False)
    return exit_code(doc, args.strict)
