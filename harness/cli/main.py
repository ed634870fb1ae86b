"""nbparity: list, show and run parity cases, gate the registry, import and record C runs
(also ``python -m harness``).

Exit codes: 0 parity holds, 1 divergence, 2 usage/case/input error, 3 runner failure.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

from rich.console import Console
from rich.table import Table

from engine.outputs import trace as catalog
from harness.cli import bench as bench_cli
from harness.service import ledger
from harness.cli import service as service_cli
from harness.compare import keys as keymod
from harness.model import paths
from harness.report import console as report
from harness.registry.cases import Case, Registry
from harness.model.errors import ExitCode, HarnessError
from harness.runners.c import find_binary
from harness.pipeline import Context, RunOptions, run_case


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep it one line
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nbparity", description="Parity harness: C nanoBragg vs the PyTorch engine.")
    p.add_argument("--cases-dir", help="case files (default: cases/ or NB_CASES_DIR)")
    p.add_argument("--golden-dir", help="recorded C runs (default: ../shared/golden or NB_GOLDEN_DIR)")
    p.add_argument("--results-dir", help="evidence root (default: results/ or NB_RESULTS_DIR)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ls = sub.add_parser("list", help="list cases")
    ls.add_argument("--tag", action="append", default=[], help="only cases with this tag (repeatable)")
    ls.add_argument("--json", action="store_true")

    sh = sub.add_parser("show", help="show one case")
    sh.add_argument("case")
    sh.add_argument("--json", action="store_true")

    ks = sub.add_parser("keys", help="list trace keys, stages and aliases")
    ks.add_argument("--json", action="store_true")

    r = sub.add_parser("run", help="run one case against its C reference")
    r.add_argument("case")
    r.add_argument("--keys", default="", help="comma-separated keys/aliases to report, e.g. pix0,rot_b,k_frac")
    r.add_argument("--pixel", nargs=2, type=int, metavar=("S", "F"), help="trace pixel (slow fast)")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--live", dest="source", action="store_const", const="live", help="run the C binary")
    src.add_argument("--recorded", dest="source", action="store_const", const="recorded",
                     help="replay the recorded C run")
    r.add_argument("--c-bin", help="C binary (default: NB_C_BIN, then golden_bin/nanoBragg)")
    r.add_argument("--mode", choices=("spec", "c-parity"), help="engine mode (default: the case's)")
    r.add_argument("--device", default="cpu")
    r.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    r.add_argument("--trace-only", action="store_true", help="compare the trace only, skip the image")
    r.add_argument("--timeout", type=float, help="seconds per C run (default: the case's timeout_s)")
    r.add_argument("--allow-known-defects", action="store_true",
                   help="exit 0 when every divergence is labelled a known C defect")
    r.add_argument("--only-divergent", action="store_true", help="table rows: divergent keys only")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.add_argument("--no-pictures", action="store_true", help="no PNGs of the images in the evidence")
    r.set_defaults(source="auto")

    g = sub.add_parser("gate", help="run every case (or --tags/--cases) against its C reference; "
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
    g.add_argument("--no-autotrace", action="store_true",
                   help="do not trace extra pixels when only the image diverges")
    g.add_argument("--list", action="store_true", help="print the runs the gate would make and exit")
    g.set_defaults(source="auto")

    im = sub.add_parser("import-recordings", help="make/refresh registry entries (cases/*.toml) from recorded C runs")
    im.add_argument("dir", nargs="?", help="recordings root (default: --golden-dir / NB_GOLDEN_DIR)")
    im.add_argument("names", nargs="*", help="only these recordings (default: all)")
    im.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 when an entry is missing or out of date")
    im.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")

    rc = sub.add_parser("record", help="run a live C on a case and store the run as a new recording")
    rc.add_argument("case")
    rc.add_argument("--c-bin", help="C binary (default: NB_C_BIN, then golden_bin/nanoBragg; "
                                    "NB_C_FIXED_BIN / golden_bin/nanoBragg_fixed with --fixed)")
    rc.add_argument("--out", help="recordings root to write into (default: --golden-dir / NB_GOLDEN_DIR)")
    rc.add_argument("--name", help="recording name (default: the case's; CASE__cfixed with --fixed)")
    rc.add_argument("--pixel", nargs=2, type=int, metavar=("S", "F"), help="trace pixel (default: the case's)")
    rc.add_argument("--fixed", action="store_true", help="the binary is a fixed C: image only, no trace")
    rc.add_argument("--force", action="store_true", help="replace an existing recording of that name")
    rc.add_argument("--timeout", type=float, help="seconds (default: the case's timeout_s)")

    service_cli.register_subcommands(sub)
    bench_cli.register_subcommand(sub)
    return p


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(paths.cases_dir(args.cases_dir))


def cmd_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    cases, errors = _registry(args).select(args.tag or None)
    for e in errors:
        err.print(e.message, markup=False, highlight=False)
    if args.json:
        print(json.dumps([{"name": c.name, "mode": c.mode, "tags": c.tags, "description": c.description,
                                  "references": {m: r.model_dump() for m, r in c.references.items()}}
                                 for c in cases], indent=2))
    else:
        t = Table(title=f"{len(cases)} cases" + (f" ({len(errors)} invalid case files)" if errors else ""))
        for col in ("name", "mode", "pixel", "references", "tags", "description"):
            t.add_column(col, overflow="fold")
        for c in cases:
            refs = "; ".join(f"{m}: {r.recording or 'live'} ({r.kind})" for m, r in c.references.items())
            t.add_row(c.name, c.mode, " ".join(f"({s},{f})" for s, f in c.trace_pixels), refs,
                      ", ".join(c.tags), c.description[:80] + ("…" if len(c.description) > 80 else ""))
        out.print(t)
    return int(ExitCode.USAGE) if errors else 0


def cmd_show(args: argparse.Namespace, out: Console, err: Console) -> int:
    case = _registry(args).get(args.case)
    if args.json:
        print(json.dumps(case.model_dump(mode="json"), indent=2))
        return 0
    _show(case, out, args)
    return 0


def _show(case: Case, out: Console, args: argparse.Namespace) -> None:
    t = Table(title=f"case {case.name}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("description", case.description)
    t.add_row("mode", case.mode)
    t.add_row("argv", shlex.join(case.argv))
    t.add_row("inputs", ", ".join(case.inputs) + f"  (data root: {case.data_root})")
    t.add_row("trace pixels", ", ".join(f"slow {s} fast {f}" for s, f in case.trace_pixels))
    t.add_row("threads / timeout", f"{case.c_threads} / {case.timeout_s:g} s")
    tol = case.tolerance
    t.add_row("trace tolerance", f"|Δ| ≤ {tol.atol:g} + {tol.rtol:g}·|C|" +
              "".join(f"; {k}: atol {v.atol} rtol {v.rtol}" for k, v in tol.keys.items()))
    t.add_row("image bar", f"max|Δ| ≤ {case.image.atol:g} + {case.image.rtol_of_max:g}·max|C|" +
              (f", correlation ≥ {case.image.min_correlation}" if case.image.min_correlation is not None else ""))
    for m, r in case.references.items():
        binary = find_binary(r.kind)
        live = (f"live allowed ({binary} found)" if binary else "live allowed (no binary found)") if r.live else "no live C"
        t.add_row(f"reference ({m})", f"{r.kind}; recording {r.recording or '—'}"
                  f"{' sha256 ' + r.manifest_sha256 if r.manifest_sha256 else ''}; {live}")
    t.add_row("tags", ", ".join(case.tags))
    if case.expected_failure:
        t.add_row("expected failure", case.expected_failure)
    out.print(t)


def cmd_keys(args: argparse.Namespace, out: Console, err: Console) -> int:
    rows = []
    for k in catalog.KEYS:
        aliases = sorted(w for w, sels in keymod.ALIASES.items()
                         if w != k.name and any(s.name == k.name and (s.kind in (None, k.kind)) for s in sels))
        rows.append({"stage": k.stage, "kind": k.kind, "key": k.name, "components": list(k.components),
                     "aliases": aliases, "doc": k.doc})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    out.print(report.rows_table(((r["stage"], r["kind"], r["key"], " ".join(r["components"]),
                                  ", ".join(r["aliases"]), r["doc"]) for r in rows),
                                ("stage", "kind", "key", "components", "aliases", "note"),
                                title="trace keys in dataflow order (KEY.COMPONENT and phi:FIELD also work)"))
    return 0


@contextmanager
def _spinner(err: Console, enabled: bool, message: str) -> Iterator[None]:
    if not enabled:
        yield
        return
    with err.status(message, spinner="dots"):
        yield


def cmd_run(args: argparse.Namespace, out: Console, err: Console, argv: Sequence[str]) -> int:
    case = _registry(args).get(args.case)
    ctx = Context(golden_dir=paths.golden_dir(args.golden_dir), results_dir=paths.results_dir(args.results_dir),
                  cases_dir=paths.cases_dir(args.cases_dir),
                  progress=lambda msg: _spinner(err, True, msg),
                  done=lambda msg: err.print(f"[green]✓[/green] {msg}", highlight=False))
    opts = RunOptions(mode=args.mode, pixel=tuple(args.pixel) if args.pixel else None,
                      keys=tuple(k for k in args.keys.split(",") if k.strip()), source=args.source,
                      c_bin=args.c_bin, device=args.device, dtype=args.dtype, trace_only=args.trace_only,
                      timeout_s=args.timeout, allow_known_defects=args.allow_known_defects,
                      command_line=shlex.join(["nbparity", *argv]), pictures=not args.no_pictures)
    result = run_case(case, opts, ctx)
    ledger.record(result, ctx.results_dir, command="run", device=args.device, dtype=args.dtype,
                  notice=lambda m: err.print(f"nbparity: {m}", markup=False, highlight=False))
    if args.json:
        print(report.to_json(result))
    else:
        report.render(out, result, only_divergent=args.only_divergent)
        out.print(f"evidence: {result.evidence_dir}", highlight=False)
    return result.exit_code


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Piped output (make, CI logs) gets a wide console so the value columns are not folded.
    out = Console() if sys.stdout.isatty() else Console(width=220)
    err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=220)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0)
    try:
        if args.command == "list":
            return cmd_list(args, out, err)
        if args.command == "show":
            return cmd_show(args, out, err)
        if args.command == "keys":
            return cmd_keys(args, out, err)
        if args.command == "run":
            return cmd_run(args, out, err, argv)
        if args.command == "gate":
            from harness.cli import gate as gate_cli  # noqa: PLC0415

            return gate_cli.cmd_gate(args, out, err, argv)
        if args.command == "import-recordings":
            from harness.cli import gate as gate_cli  # noqa: PLC0415

            return gate_cli.cmd_import(args, out, err)
        if args.command == "record":
            from harness.cli import gate as gate_cli  # noqa: PLC0415

            return gate_cli.cmd_record(args, out, err)
        if args.command == "bench":
            return bench_cli.handle(args, out, err)
        rc = service_cli.handle(args, out, err)
        if rc is not None:
            return rc
        raise AssertionError(f"unhandled command {args.command!r}")  # pragma: no cover
    except HarnessError as e:
        err.print(f"nbparity: {e.message}", markup=False, highlight=False)
        return int(e.exit_code)
    except KeyboardInterrupt:
        err.print("nbparity: interrupted", markup=False)
        return 130
