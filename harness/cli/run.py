"""`nbparity run CASE`: one case against its C reference, with evidence and a ledger row."""
from __future__ import annotations

import argparse
import shlex
from contextlib import contextmanager
from typing import Iterator

from harness.cli.pairs import add_pair_options, ledger_command, pair_from_args
from harness.cli.common import CliConsole, cases_dir, golden_dir, results_dir, seconds
from harness.pipeline import Context, RunOptions
from harness.registry.cases import Registry
from harness.report.kept_data import KEEP_MAX_PIXELS
from harness.report import console as report
from harness.service import ledger
from harness.service.pair import run_pair

NAME = "run"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    r = subparsers.add_parser(NAME, help="run one case against its C reference")
    r.add_argument("case")
    r.add_argument("--keys", default="", help="comma-separated keys/aliases to report, e.g. pix0,rot_b,k_frac")
    r.add_argument("--pixel", nargs=2, type=int, metavar=("S", "F"), help="trace pixel (slow fast)")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--live", dest="source", action="store_const", const="live", help="run the C binary")
    src.add_argument("--recorded", dest="source", action="store_const", const="recorded",
                     help="replay the recorded C run")
    r.add_argument("--c-bin", help="C binary (default: NB_C_BIN, then golden_bin/nanoBragg)")
    r.add_argument("--mode", choices=("spec", "c-parity"), help="engine mode (default: the case's)")
    r.add_argument("--device", default="cpu", help="engine device: cpu, cuda or cuda:N (default cpu)")
    r.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    r.add_argument("--trace-only", action="store_true", help="compare the trace only, skip the image")
    r.add_argument("--timeout", type=seconds, help="seconds per C run, > 0 (default: the case's timeout_s)")
    r.add_argument("--allow-known-defects", action="store_true",
                   help="exit 0 when every divergence is labelled a known C defect")
    r.add_argument("--only-divergent", action="store_true", help="table rows: divergent keys only")
    r.add_argument("--full", action="store_true",
                   help="show every trace row (default: the rows around the first divergence, repeats collapsed)")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.add_argument("--no-pictures", action="store_true",
                   help="no PNGs of the images in the evidence (saves seconds on a full detector)")
    r.add_argument("--keep-images", action=argparse.BooleanOptionalAction, default=None,
                   help="keep both float images in the evidence (images.npz); default: only frames up to "
                        f"{KEEP_MAX_PIXELS / 1e6:g} Mpixel, --keep-images for full frames too, --no-keep-images never")
    add_pair_options(r)
    r.set_defaults(source="auto")
    return r


@contextmanager
def _spinner(console: CliConsole, message: str) -> Iterator[None]:
    if not console.err.is_terminal:  # a transient spinner shows nothing there, and each one costs a thread
        yield
        return
    with console.err.status(message, spinner="dots"):
        yield


def options(args: argparse.Namespace, console: CliConsole) -> RunOptions:
    return RunOptions(mode=args.mode, pixel=tuple(args.pixel) if args.pixel else None,
                      keys=tuple(k for k in args.keys.split(",") if k.strip()), source=args.source,
                      c_bin=args.c_bin, device=args.device, dtype=args.dtype, trace_only=args.trace_only,
                      timeout_s=args.timeout, allow_known_defects=args.allow_known_defects,
                      command_line=shlex.join(["nbparity", *console.argv]), pictures=not args.no_pictures,
                      keep_images=args.keep_images)


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    case = Registry(cases_dir(args)).get(args.case)
    ctx = Context(golden_dir=golden_dir(args), results_dir=results_dir(args), cases_dir=cases_dir(args),
                  progress=lambda msg: _spinner(console, msg),
                  done=lambda msg: console.err.print(f"[green]✓[/green] {msg}", highlight=False))
    pair = pair_from_args(args)
    result = run_pair(case, pair, options(args, console), ctx)  # the default pair is run_case
    ledger.record(result, ctx.results_dir, command=ledger_command("run", pair), device=args.device,
                  dtype=args.dtype,
                  notice=console.note)
    if args.json:
        print(report.to_json(result))
    else:
        report.render(console.out, result, only_divergent=args.only_divergent, full=args.full)
        console.out.print(f"evidence: {result.evidence_dir}", highlight=False)
    if result.exit_code >= 2:  # a run that could not reach a verdict says why on stderr too, in one line
        console.note(f"{result.status}: {result.failure} (evidence: {result.evidence_dir})")
    return result.exit_code
