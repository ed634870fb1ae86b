"""`nbparity history CASE`: the trend of one case over the run ledger (table and PNG)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli.common import CliConsole, results_dir
from harness.model.errors import UsageError
from harness.model.suggest import did_you_mean
from harness.service import history, ledger

NAME = "history"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    h = subparsers.add_parser(NAME, help="trend of one case over the run ledger (table and PNG)")
    h.add_argument("case")
    h.add_argument("--key", help="also show this trace key's |Δ| (a --keys word, e.g. k_frac)")
    h.add_argument("--limit", type=int, default=0, help="only the last N runs")
    h.add_argument("--plot", help="PNG path (default: RESULTS/history/CASE[__KEY].png)")
    h.add_argument("--no-plot", action="store_true", help="table only")
    h.add_argument("--json", action="store_true")
    add_run_filters(h)
    return h


def add_run_filters(p: argparse.ArgumentParser) -> None:
    """--mode/--dtype/--device/--kind: only the runs made that way (flips always compare like with like)."""
    p.add_argument("--mode", choices=("spec", "c-parity"), help="only runs in this engine mode")
    p.add_argument("--dtype", choices=("float64", "float32"), help="only runs with this engine dtype")
    p.add_argument("--device", help="only runs on this device (cpu, cuda, ...)")
    p.add_argument("--kind", choices=("run", "gate", "bench"), help="only runs made by this command")


def read_ledger(args: argparse.Namespace, console: CliConsole):
    """The run ledger under the results directory as a frame, narrowed by the run filters;
    an unreadable ledger is exit 2."""
    try:
        df = ledger.Ledger.under(results_dir(args), notice=console.note).read()
    except ledger.LedgerError as e:
        raise UsageError(str(e)) from None
    return ledger.select(df, **{name: getattr(args, name, None) for name in ledger.FILTERS})


_JSON_COLUMNS = ["id", "time_utc", "commit_sha", "dirty", "branch", "command", "mode", "device", "dtype", "status",
                 "outcome", "label", "first_key", "first_delta", "image_max_abs_diff", "wall_reference_s", "wall_engine_s",
                 "evidence_dir"]


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    df = read_ledger(args, console)
    try:
        h = history.history_frame(df, args.case, key=args.key, limit=args.limit or None)
    except KeyError as e:
        raise UsageError(f"--key: {e.args[0]}") from None
    if h.empty:
        known = [] if df.empty else df["case_name"].dropna().astype(str).unique()
        raise UsageError(f"no runs of {args.case!r} in the ledger "
                         f"{ledger.ledger_path(results_dir(args))}"
                         + (did_you_mean(args.case, known) or " (run it first)"))
    if args.json:
        cols = _JSON_COLUMNS + (["key_delta"] if args.key else [])
        rows = h[cols].astype(object).where(h[cols].notna(), None).to_dict("records")
        print(json.dumps([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                          for r in rows], indent=2, default=str))
        return 0
    console.out.print(history.history_table(h, args.case, args.key))
    if not args.no_plot:
        target = Path(args.plot) if args.plot else history.default_plot_path(results_dir(args), args.case, args.key)
        try:
            png = history.plot_history(h, args.case, target, key=args.key)
        except ImportError:
            console.note("matplotlib is not installed: no plot (pip install matplotlib)")
        else:
            console.plain(f"plot: {png}")
    return 0
