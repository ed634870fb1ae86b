"""`nbparity report`: a static HTML page over the run ledger."""
from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path

from harness.cli.common import CliConsole, results_dir
from harness.cli.history import add_run_filters, read_ledger
from harness.service import html as html_report

NAME = "report"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    r = subparsers.add_parser(NAME, help="static HTML page over the run ledger")
    r.add_argument("--out", help="output directory (default: the results directory); evidence outside it is "
                                 "copied under OUT/_evidence/ so OUT can be moved or uploaded as it is")
    r.add_argument("--open", action="store_true", help="open the page in a browser")
    r.add_argument("--title", default="nbparity report")
    add_run_filters(r)
    return r


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    df = read_ledger(args, console)
    target = Path(args.out) if args.out else results_dir(args)
    page = html_report.write_report(df, target, title=args.title)
    console.plain(f"report: {page} ({df['case_name'].nunique() if not df.empty else 0} cases, {len(df)} runs)")
    if args.open:
        webbrowser.open(page.resolve().as_uri())
    return 0
