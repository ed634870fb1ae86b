"""`nbparity gate`: every case (or --tags/--cases) against its C reference; JUnit XML, markdown
summary and gate.json; non-zero on any divergence or invalid case file."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from pathlib import Path
from typing import Callable, Sequence

from rich.table import Table
from rich.text import Text

from harness.cli.pairs import add_pair_options, ledger_command, pairs_from_args
from harness.cli.common import CliConsole, cases_dir, golden_dir, results_dir, split_commas
from harness.model.errors import ExitCode, UsageError
from harness.model.suggest import did_you_mean
from harness.pipeline import Context
from harness.registry import importer
from harness.registry.cases import Case, Registry, check_tags
from harness.report.kept_data import KEEP_MAX_PIXELS
from harness.runners.choose import describe
from harness.service import gate, ledger, workers
from harness.service import pair as pairs

NAME = "gate"

_STYLE = {gate.PASS: "green", gate.XFAIL: "yellow", gate.FAIL: "bold red", gate.XPASS: "bold red",
          gate.ERROR: "bold red"}


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    g = subparsers.add_parser(NAME, help="run every case (or --tags/--cases) against its C reference; "
                                         "JUnit XML + markdown summary; non-zero on any divergence")
    g.add_argument("--tags", action="append", default=[],
                   help="only cases with one of these tags (comma-separated, repeatable)")
    g.add_argument("--cases", action="append", default=[], help="only these cases (comma-separated, repeatable)")
    g.add_argument("--exclude-tags", action="append", default=[],
                   help="leave out cases with one of these tags (comma-separated, repeatable)")
    g.add_argument("--mode", action="append", choices=("spec", "c-parity"),
                   help="only runs in this engine mode (default: every mode a case has a reference for)")
    gsrc = g.add_mutually_exclusive_group()
    gsrc.add_argument("--recorded", dest="source", action="store_const", const="recorded",
                      help="always replay the recordings, even when a C binary is found")
    gsrc.add_argument("--live", dest="source", action="store_const", const="live", help="always run the live C")
    g.add_argument("--c-bin", help="live C binary (default: NB_C_BIN, then golden_bin/nanoBragg; "
                                   "without one the recordings are the reference)")
    g.add_argument("--junit", help="JUnit XML path (default: RESULTS/junit.xml)")
    g.add_argument("--summary", help="markdown summary path (default: RESULTS/gate_summary.md)")
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    g.add_argument("--no-pictures", action="store_true", help="no PNGs in the evidence directories")
    g.add_argument("--pictures", action="store_true",
                   help="PNGs for every run (default: only for the runs that do not pass)")
    g.add_argument("--keep-images", action="store_true",
                   help="both float images (images.npz) for every run, full frames too (default: only for the "
                        f"runs that do not pass, frames up to {KEEP_MAX_PIXELS / 1e6:g} Mpixel)")
    g.add_argument("--jobs", "-j", type=int, metavar="N",
                   help="runs at once, each in its own process, the CPU threads shared among them "
                        f"(default: the number of cores, {workers.default_jobs()} here; 1 with --device cuda)")
    g.add_argument("--no-autotrace", action="store_true",
                   help="do not trace extra pixels when only the image diverges")
    g.add_argument("--list", action="store_true",
                   help="print the runs the gate would make and exit (2 when a case file is invalid)")
    add_pair_options(g)
    g.set_defaults(source="auto")
    return g


def _select(args: argparse.Namespace, cases: Sequence[Case], where: Path) -> list[Case]:
    tags, names, excluded = split_commas(args.tags), split_commas(args.cases), split_commas(args.exclude_tags)
    known = {c.name for c in cases}
    missing = [n for n in names if n not in known]
    if missing:
        raise UsageError(f"--cases: no case {', '.join(map(repr, missing))} in {where}"
                         + did_you_mean(missing[0], known))
    check_tags(tags, cases, "--tags")
    check_tags(excluded, cases, "--exclude-tags")
    selected = [c for c in cases if (not tags or set(tags) & set(c.tags)) and (not names or c.name in names)
                and not (set(excluded) & set(c.tags))]
    if not selected:
        raise UsageError(f"no case matches (tags {tags or 'any'}, cases {names or 'any'}, excluded tags {excluded})")
    return selected


def _registry_problems(args: argparse.Namespace, cases: Sequence[Case], golden: Path) -> list[str]:
    """Things wrong with the registry or the recordings; each one fails the gate."""
    narrowed = args.tags or args.cases or args.exclude_tags
    if not (golden / "index.json").is_file() and args.source != "live":
        return [f"recorded C runs not found at {golden} (set NB_GOLDEN_DIR or --golden-dir): "
                "a missing reference fails the gate"]
    if not narrowed and args.source != "live":
        return list(importer.coverage_problems(golden, cases))
    return []


def _list(items: Sequence[gate.GateItem], problems: Sequence[str], console: CliConsole) -> int:
    for it in items:
        xf = it.expected_failure
        console.plain(f"{it.id:50s} {it.reference}" + (f"  [xfail at {it.expected_at}: {xf}]" if xf else ""))
    for p in problems:
        console.note(p)
    return int(ExitCode.USAGE) if problems else 0


def _source_text(args: argparse.Namespace, golden: Path) -> str:
    return describe(args.source or "auto", args.c_bin, golden)


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    where, golden, results = cases_dir(args), golden_dir(args), results_dir(args)
    jobs = _jobs(args)
    cases, load_errors = Registry(where).load_all()
    selected = _select(args, cases, where)
    chosen = pairs_from_args(args)
    default = len(chosen) == 1 and chosen[0].is_default
    items = (gate.plan(selected, args.mode) if default
             else [i for p in chosen for i in pairs.pair_plan(selected, p)])
    if args.list:
        return _list(items, [e.message for e in load_errors], console)
    extra = [e.message for e in load_errors] + _registry_problems(args, cases, golden)
    extra += [] if default else pairs.stale_marks(chosen, cases)
    source_txt = _source_text(args, golden)
    run_id = ledger.new_run_id()
    ctx = Context(golden_dir=golden, results_dir=results, cases_dir=where)
    opts = gate.gate_options(source=args.source, c_bin=args.c_bin, device=args.device, dtype=args.dtype,
                             pictures=not args.no_pictures, pictures_on_pass=args.pictures,
                             keep_images=args.keep_images,
                             autotrace=not args.no_autotrace,
                             command_line=shlex.join(["nbparity", *console.argv]))
    console.err.print(f"gate: {len(items)} runs over {len(selected)} cases against {source_txt}",
                      highlight=False, markup=False)
    t0 = time.monotonic()
    run = gate.run_gate if default else pairs.run_pair_gate
    outcomes = run(items, opts, ctx, on_done=_on_done(args, console, results, run_id, len(items)), jobs=jobs)
    wall = time.monotonic() - t0
    console.out.print(summary_table(outcomes, wall, extra))
    junit, summary, step = _write_reports(args, results, outcomes, wall, source_txt, extra, run_id)
    _print_flips(console, results, run_id)
    for p in ([] if default else chosen):  # per case: the first divergent key and the image metrics
        table = results / f"gate_{p.impl.name}_vs_{p.vs.name}.md"
        mine = [o for o in outcomes if o.item.pair == p]
        table.write_text(pairs.pair_markdown(mine, p, wall), encoding="utf-8")
        console.plain(f"{p.title}: {table}")
    console.plain(f"junit: {junit}\nsummary: {summary}" + (f" (and {step})" if step else ""))
    return gate.exit_code(outcomes, extra)


def _jobs(args: argparse.Namespace) -> int:
    if args.jobs is None:  # one device is not shared by default: each worker would hold a copy
        return workers.default_jobs() if args.device == "cpu" else 1
    if args.jobs < 1:
        raise UsageError(f"--jobs: expected a number of runs at once >= 1, got {args.jobs}")
    return args.jobs


def _on_done(args: argparse.Namespace, console: CliConsole, results: Path, run_id: str,
             total: int) -> Callable[[int, gate.Outcome], None]:
    width = len(str(total))

    def done(i: int, o: gate.Outcome) -> None:
        if o.result is not None:
            ledger.record(o.result, results, command=ledger_command("gate", getattr(o.item, "pair", None)),
                          run_id=run_id, device=args.device, dtype=args.dtype,
                          outcome=o.outcome, notice=console.note)
        console.err.print(Text.assemble(f"[{i + 1:>{width}}/{total}] ", (f"{o.outcome.upper():5s}",
                                                                         _STYLE[o.outcome]),
                                        f" {o.item.id} ({o.wall_s:.1f} s) {o.message}"), highlight=False)
    return done


def _write_reports(args: argparse.Namespace, results: Path, outcomes: Sequence[gate.Outcome], wall: float,
                   source_txt: str, extra: Sequence[str], run_id: str) -> tuple[Path, Path, object]:
    junit = Path(args.junit) if args.junit else results / "junit.xml"
    summary = Path(args.summary) if args.summary else results / "gate_summary.md"
    md = gate.markdown(outcomes, wall, source=source_txt, extra_errors=extra)
    for path, text in ((junit, gate.junit_xml(outcomes, wall, extra)), (summary, md)):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Evidence paths under the report's own folder (the uploaded results/) are written
        # relative to it, so that the links work inside the CI artifact.
        text = text.replace(f"{path.parent.resolve()}{os.sep}", "")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    doc = {"run_id": run_id, "wall_s": round(wall, 3), "source": source_txt, "counts": gate.counts(outcomes),
           "registry_errors": list(extra),
           "runs": [{"case": o.item.case.name, "mode": o.item.mode, "outcome": o.outcome, "message": o.message,
                     "wall_s": round(o.wall_s, 3), "evidence": o.evidence,
                     "expected_failure": o.item.expected_failure} for o in outcomes]}
    results.mkdir(parents=True, exist_ok=True)
    (results / "gate.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return junit, summary, gate.write_step_summary(md)


def summary_table(outcomes: Sequence[gate.Outcome], wall: float, extra: Sequence[str]) -> Table:
    c = gate.counts(outcomes)
    code = gate.exit_code(outcomes, extra)
    t = Table(title=f"nbparity gate: {'GREEN' if code == 0 else 'RED'} — {c['pass']} pass, {c['xfail']} xfail, "
                    f"{c['fail']} fail, {c['xpass']} xpass, {c['error']} error ({len(outcomes)} runs, {wall:.0f} s)")
    for col, kw in (("case", {"no_wrap": True}), ("mode", {}), ("outcome", {}), ("s", {"justify": "right"}),
                    ("first divergence / note", {"overflow": "fold"})):
        t.add_column(col, **kw)
    order = {gate.FAIL: 0, gate.XPASS: 0, gate.ERROR: 0, gate.XFAIL: 1, gate.PASS: 2}
    for o in sorted(outcomes, key=lambda o: (order[o.outcome], o.item.id)):
        t.add_row(o.item.case.name, o.item.mode, Text(o.outcome, style=_STYLE[o.outcome]), f"{o.wall_s:.1f}",
                  o.message)
    for e in extra:
        t.add_row("(registry)", "", Text("error", style="bold red"), "", e)
    return t


def _print_flips(console: CliConsole, results: Path, run_id: str) -> None:
    try:
        df = ledger.Ledger.under(results, notice=console.note).read()
        flips = ledger.gate_flips(df, run_id)
    except Exception:  # noqa: BLE001 - history is a courtesy, never the verdict
        return
    for f in flips:
        console.out.print(f"newly red since the last green run on main ({(f.before_commit or '?')[:10]}): "
                          f"{f.case_name} [{f.mode}] {f.after}"
                          + (f", first divergence {f.first_key}" if f.first_key else ""),
                          style="bold red", highlight=False)
