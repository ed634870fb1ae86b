"""CLI subcommands of the regression service: history, flips, report, bisect.

harness.cli.main wires them in with two calls: ``register_subcommands(sub)`` in build_parser, and
``handle(args, out, err)`` in main (it returns None for commands that are not its own).
They read the global ``--results-dir`` / ``--golden-dir`` / ``--cases-dir`` options.
"""
from __future__ import annotations

import argparse
import json
import webbrowser
from pathlib import Path
from typing import Any, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.service import history
from harness.report import html as html_report
from harness.service import ledger
from harness.model import paths
from harness.model.errors import ExitCode, UsageError

COMMANDS = ("history", "flips", "report", "bisect")


def register_subcommands(sub: "argparse._SubParsersAction[Any]") -> None:
    h = sub.add_parser("history", help="trend of one case over the run ledger (table and PNG)")
    h.add_argument("case")
    h.add_argument("--key", help="also show this trace key's |Δ| (a --keys word, e.g. k_frac)")
    h.add_argument("--limit", type=int, default=0, help="only the last N runs")
    h.add_argument("--plot", help="PNG path (default: RESULTS/history/CASE[__KEY].png)")
    h.add_argument("--no-plot", action="store_true", help="table only")
    h.add_argument("--json", action="store_true")

    f = sub.add_parser("flips", help="cases whose verdict changed between their last two runs")
    f.add_argument("--strict", action="store_true", help="exit 1 when a case went from parity to not")
    f.add_argument("--json", action="store_true")

    r = sub.add_parser("report", help="static HTML page over the run ledger")
    r.add_argument("--out", help="output directory (default: the results directory)")
    r.add_argument("--open", action="store_true", help="open the page in a browser")
    r.add_argument("--title", default="nbparity report")

    b = sub.add_parser("bisect", help="first commit where a case's verdict (or a key's |Δ|) went bad")
    b.add_argument("case")
    b.add_argument("--good", required=True, help="a revision where the case passes")
    b.add_argument("--bad", required=True, help="a later revision where it fails")
    b.add_argument("--key", help="also call a commit bad when this key's |Δ| exceeds --tolerance")
    b.add_argument("--tolerance", type=float, help="for --key (default: the case's atol for that key)")
    b.add_argument("--repo", help="git repository (default: this project)")
    b.add_argument("--image", action="store_true", help="compare the image too (default: trace only)")
    b.add_argument("--json", action="store_true")


def handle(args: argparse.Namespace, out: Console, err: Console) -> Optional[int]:
    """Run one of COMMANDS; None when ``args.command`` is not one of them."""
    fn = {"history": cmd_history, "flips": cmd_flips, "report": cmd_report, "bisect": cmd_bisect}.get(
        getattr(args, "command", None))
    return None if fn is None else fn(args, out, err)


def _ledger(args: argparse.Namespace, err: Console) -> ledger.Ledger:
    note = lambda msg: err.print(f"nbparity: {msg}", markup=False, highlight=False)  # noqa: E731
    return ledger.Ledger.under(paths.results_dir(getattr(args, "results_dir", None)), notice=note)


def _read(args: argparse.Namespace, err: Console):
    try:
        return _ledger(args, err).read()
    except ledger.LedgerError as e:
        raise UsageError(str(e)) from None


def cmd_history(args: argparse.Namespace, out: Console, err: Console) -> int:
    df = _read(args, err)
    try:
        h = history.history_frame(df, args.case, key=args.key, limit=args.limit or None)
    except KeyError as e:
        raise UsageError(f"--key: {e.args[0]}") from None
    if h.empty:
        raise UsageError(f"no runs of {args.case!r} in the ledger "
                         f"{ledger.ledger_path(paths.results_dir(args.results_dir))} (run it first)")
    if args.json:
        cols = ["id", "time_utc", "commit_sha", "dirty", "branch", "mode", "device", "dtype", "status",
                "first_key", "first_delta", "image_max_abs_diff", "wall_reference_s", "wall_engine_s",
                "evidence_dir"] + (["key_delta"] if args.key else [])
        rows = h[cols].astype(object).where(h[cols].notna(), None).to_dict("records")
        print(json.dumps([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                          for r in rows], indent=2, default=str))
        return 0
    out.print(history.history_table(h, args.case, args.key))
    if not args.no_plot:
        target = Path(args.plot) if args.plot else history.default_plot_path(
            paths.results_dir(args.results_dir), args.case, args.key)
        try:
            png = history.plot_history(h, args.case, target, key=args.key)
        except ImportError:
            err.print("nbparity: matplotlib is not installed: no plot (pip install matplotlib)", markup=False)
        else:
            out.print(f"plot: {png}", highlight=False)
    return 0


def cmd_flips(args: argparse.Namespace, out: Console, err: Console) -> int:
    fl = ledger.flips(_read(args, err))
    if args.json:
        print(json.dumps([{**f.__dict__, "regressed": f.regressed} for f in fl], indent=2))
    elif not fl:
        out.print("no verdict flips: every case has the verdict of its previous run")
    else:
        t = Table(title=f"{len(fl)} cases changed verdict between their last two runs")
        for c in ("case", "mode", "before", "after", "commits", "first divergence now"):
            t.add_column(c, overflow="fold")
        for f in fl:
            t.add_row(f.case_name, f.mode or "", f.before,
                      Text(f.after, style="bold red" if f.regressed else "green"),
                      f"{(f.before_commit or '?')[:10]} → {(f.after_commit or '?')[:10]}", f.first_key or "—")
        out.print(t)
    return int(ExitCode.DIVERGENCE) if args.strict and any(f.regressed for f in fl) else 0


def cmd_report(args: argparse.Namespace, out: Console, err: Console) -> int:
    df = _read(args, err)
    target = Path(args.out) if args.out else paths.results_dir(args.results_dir)
    page = html_report.write_report(df, target, title=args.title)
    out.print(f"report: {page} ({df['case_name'].nunique() if not df.empty else 0} cases, {len(df)} runs)",
              highlight=False)
    if args.open:
        webbrowser.open(page.resolve().as_uri())
    return 0


def _key_tolerance(args: argparse.Namespace) -> Optional[float]:
    if args.key is None or args.tolerance is not None:
        return args.tolerance
    from harness.compare import keys  # noqa: PLC0415
    from harness.registry.cases import Registry  # noqa: PLC0415

    try:
        sels = keys.resolve(args.key)
    except KeyError as e:
        raise UsageError(f"--key: {e.args[0]}") from None
    case = Registry(paths.cases_dir(getattr(args, "cases_dir", None))).get(args.case)
    return case.tolerance.table().for_key(sels[0].name).atol


def cmd_bisect(args: argparse.Namespace, out: Console, err: Console) -> int:
    from harness.service import bisect as bis  # noqa: PLC0415

    tol = _key_tolerance(args)
    repo = Path(args.repo) if args.repo else paths.REPO_ROOT
    evaluate = bis.harness_evaluator(args.case, key=args.key, extra_args=() if args.image else ("--trace-only",),
                                     golden_dir=paths.golden_dir(getattr(args, "golden_dir", None)))
    res = bis.bisect(repo, args.case, args.good, args.bad, evaluate=evaluate, key=args.key, tolerance=tol,
                     progress=lambda msg: err.print(f"  probed {msg}", markup=False, highlight=False))
    if args.json:
        print(json.dumps(res.as_dict(), indent=2, default=str))
        return 0
    render_bisect(out, res)
    return 0


def render_bisect(out: Console, res: Any) -> None:
    t = Table(title=f"bisect {res.case}: {res.candidates} commits after {res.good[:10]}, "
                    f"bad = {res.criterion}")
    for c in ("commit", "subject", "judged", "status", "first divergence", "|Δ|"):
        t.add_column(c, overflow="fold")
    for p in res.probes:
        v = p.verdict
        judged = Text("skip" if p.bad is None else ("bad" if p.bad else "good"),
                      style="yellow" if p.bad is None else ("bold red" if p.bad else "green"))
        t.add_row(p.commit[:10], p.subject[:60], judged, v.status, v.first_key or "—",
                  "—" if v.first_delta is None else f"{v.first_delta:.3g}")
    out.print(t)
    v = res.verdict
    where = f"first divergent key there: {v.first_key} (|Δ| {v.first_delta:.3g})" if v and v.first_key and \
        v.first_delta is not None else (f"first divergent key there: {v.first_key}" if v and v.first_key
                                         else f"status there: {v.status if v else '?'}")
    out.print(f"first bad commit: {res.first_bad} {res.first_bad_subject}", highlight=False)
    out.print(where, highlight=False)
    if res.ambiguous:
        out.print(f"[yellow]skipped commits hide the exact answer: it is one of "
                  f"{', '.join(c[:10] for c in res.ambiguous)}[/yellow]")
