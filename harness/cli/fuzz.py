"""`nbparity fuzz`: property-based search for divergences between the live C and an implementation.

Examples come from the engine's option table (harness.service.fuzz); each new divergence is
shrunk by Hypothesis to a minimal argv and inputs, recorded with the C and written as a case
under cases/fuzz/; every minimal divergence becomes a ledger row (command 'fuzz').
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Callable

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.cli.common import CliConsole, cases_dir, golden_dir, results_dir, split_commas
from harness.cli.pairs import add_pair_options, ledger_command, pair_from_args
from harness.model.errors import HarnessError, UsageError
from harness.model.result import ParityResult
from harness.model.suggest import did_you_mean
from harness.service import ledger

NAME = "fuzz"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def duration(text: str) -> float:
    """argparse type for --budget: '90', '90s', '10m' or '1h' -> seconds (> 0)."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 600, 90s, 10m or 1h, got {text!r}")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="search for divergences with generated argv and inputs (Hypothesis); "
                                         "minimal cases go to cases/fuzz/")
    p.add_argument("--examples", type=int, metavar="N", help="examples to run (default 100 unless --budget)")
    p.add_argument("--budget", type=duration, metavar="TIME", help="stop after this long: 600, 90s, 10m, 1h")
    p.add_argument("--shrink-budget", type=duration, default=60.0, metavar="TIME",
                   help="how long one divergence may shrink (default 60s); past it the smallest failure "
                        "so far is the minimal case (--budget bounds shrinking too)")
    p.add_argument("--seed", type=int, default=0, help="Hypothesis seed (the same seed draws the same examples)")
    p.add_argument("--families", action="append", default=[], metavar="A,B",
                   help="flag families to draw from (default all; unknown names list them)")
    p.add_argument("--max-pixels", type=int, default=128, metavar="N", help="largest detector side drawn (128)")
    p.add_argument("--c-bin", help="instrumented C binary (default: NB_C_BIN, then golden_bin/nanoBragg)")
    p.add_argument("--out", help="where minimal cases and their recordings go (default: cases/fuzz/)")
    p.add_argument("--no-write", action="store_true", help="report minimal divergences without writing cases")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run N campaign slices on a Dask LocalCluster of N one-thread workers (default 1: in-process)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="run the slices on a running Dask cluster, e.g. tcp://host:8786 (one slice per worker)")
    add_pair_options(p)
    return p


def _families(args: argparse.Namespace) -> tuple[str, ...] | None:
    from harness.service.fuzz.grammar import FAMILIES  # noqa: PLC0415 - hypothesis loads only for fuzz

    names = split_commas(args.families)
    for n in names:
        if n not in FAMILIES:
            raise UsageError(f"--families: unknown family {n!r}{did_you_mean(n, FAMILIES)}; "
                             f"families: {', '.join(FAMILIES)}")
    return tuple(names) or None


def _describe(t) -> str:
    shrink = f" | shrinking [bold]{t.shrinking}[/] ({t.shrink_runs} runs)" if t.shrinking else ""
    return (f"{t.done} examples | {t.per_minute():.0f}/min | divergences {len(t.found)} | "
            f"both refused {t.both_refused}{shrink}")


def _progress_sink(console: CliConsole, progress: Progress, task) -> Callable:
    """Update the live display; on a non-terminal (CI logs) also log a line every 25 examples
    and at each new divergence, since the display is drawn only at the end there."""
    seen = {"done": 0, "found": 0}

    def on_change(t) -> None:
        progress.update(task, description=_describe(t))
        if console.err.is_terminal:
            return
        if t.done // 25 > seen["done"] // 25 or len(t.found) > seen["found"]:
            console.note(f"fuzz: {_describe(t)}".replace("[bold]", "").replace("[/]", ""))
        for f in t.found[seen["found"]:]:
            console.note(f"fuzz: minimal divergence {f.verdict.signature}: {_extra(f.example.argv)} "
                         f"(pixel {f.example.pixel})")
        seen.update(done=t.done, found=len(t.found))

    return on_change


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    try:
        from harness.service.fuzz import campaign, sides  # noqa: PLC0415 - optional extra (hypothesis)
    except ImportError as e:
        raise UsageError(f"fuzz needs the 'fuzz' extra ({e.name} missing): pip install -e '.[fuzz]'") from None
    if args.examples is not None and args.examples < 1:
        raise UsageError(f"--examples: expected a count >= 1, got {args.examples}")
    if args.workers < 1:
        raise UsageError(f"--workers: expected a count >= 1, got {args.workers}")
    pair = pair_from_args(args)
    golden, results = golden_dir(args), results_dir(args)
    reference = sides.runner(pair.vs, reference=True, golden=golden, c_bin=args.c_bin)
    impl = sides.runner(pair.impl, reference=False, golden=golden, c_bin=args.c_bin)
    plan = campaign.Plan(examples=args.examples if args.examples or args.budget else 100, budget_s=args.budget,
                         seed=args.seed, families=_families(args), database=results / "fuzz" / "hypothesis",
                         max_pixels=args.max_pixels, shrink_budget_s=args.shrink_budget)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console.err, transient=False) as progress:
        task = progress.add_task("starting …", total=None)
        on_change = _progress_sink(console, progress, task)
        if args.scheduler or args.workers > 1:
            from harness.service.fuzz import cluster  # noqa: PLC0415 - dask loads only for scale-out

            tally = cluster.run_distributed(plan, impl=pair.impl.name, vs=pair.vs.name, c_bin=args.c_bin,
                                            golden=golden, scheduler=args.scheduler, workers=args.workers,
                                            on_change=on_change)
        else:
            tally = campaign.run_campaign(plan, reference, impl, on_change=on_change)
        progress.update(task, description=_describe(tally))
    written = _write_out(args, tally.found, pair) if tally.found and not args.no_write else {}
    _summary(console, tally, written, _out_dir(args))
    for f in tally.found:
        ledger.record(_as_result(f, written.get(id(f))), results, command=ledger_command(NAME, pair),
                      notice=console.note)
    return 1 if tally.found else 0


def _write_out(args: argparse.Namespace, found: list, pair) -> dict[int, str]:
    from harness.service.fuzz import sides, writeout  # noqa: PLC0415 - as in handle

    if pair.vs.name != "c":
        return {}
    out = _out_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    binary = sides.live_c(args.c_bin)
    written = {}
    for f in found:
        try:
            written[id(f)] = writeout.write_case(f, out, binary)[1].name
        except HarnessError as e:  # e.g. a C that hangs on it: the divergence is still reported
            written[id(f)] = f"(not written: {e.message.splitlines()[0]})"
    return written


def _out_dir(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else cases_dir(args) / "fuzz"


def _extra(argv: tuple[str, ...]) -> str:
    return " ".join(argv[argv.index("-noprogress") + 1:]) if "-noprogress" in argv else " ".join(argv)


def _summary(console: CliConsole, tally, written: dict[int, str], out: Path) -> None:
    console.plain(f"{tally.done} examples in {tally.example_s:.0f} s of runs ({tally.per_minute():.1f}/min), "
                  f"{tally.shrink_runs} shrink runs ({tally.shrinks_cut} cut at the shrink budget), "
                  f"{tally.both_refused} refused by both, {tally.slow} skipped (too many evaluations per pixel, or the C ran past its timeout), "
                  f"{tally.explained} explained by known C defects, {len(tally.found)} minimal divergences")
    if not tally.found:
        return
    table = Table(title="minimal divergences")
    for col in ("case", "diverges at", "flags beyond the base argv", "pixel", "shrink"):
        table.add_column(col)
    for f in tally.found:
        shrink = f"{f.shrink_runs} runs, {f.shrink_s:.0f} s" + (" (cut: budget spent)" if f.cut else "")
        table.add_row(written.get(id(f), "(not written)"), f.verdict.signature, _extra(f.example.argv),
                      str(f.example.pixel), shrink)
    console.out.print(table)
    if written:
        console.plain(f"reproduce: nbparity --cases-dir {out} --golden-dir {out / 'recordings'} run CASE")


def _as_result(found, name: str | None) -> ParityResult:
    v = found.verdict
    return ParityResult(case=name or "fuzz-example", mode="c-parity", pixel=found.example.pixel,
                        status="divergence", exit_code=1, label=v.explained or "regression",
                        failure=f"{v.signature}: {v.detail}"[:500])
