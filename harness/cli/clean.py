"""`nbparity clean`: remove old evidence directories (never a case's latest run, nor the last
green run on main that the ledger records)."""
from __future__ import annotations

import argparse

from harness.cli.common import CliConsole, results_dir
from harness.cli.history import read_ledger
from harness.service import clean

NAME = "clean"


def _age(text: str):
    try:
        return clean.parse_age(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    c = subparsers.add_parser(NAME, help="remove old evidence directories under results/ "
                                         "(keeps each case's latest run and its last green run on main)")
    c.add_argument("--keep", type=int, metavar="N", help="keep the newest N runs of each case")
    c.add_argument("--older-than", type=_age, metavar="AGE",
                   help="only remove runs older than AGE (30m, 12h, 7d, 2w)")
    c.add_argument("--case", action="append", default=[], help="only this case (repeatable; default: every case)")
    c.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    return c


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    root = results_dir(args)
    p = clean.plan(root, read_ledger(args, console), keep=args.keep, older_than=args.older_than, cases=args.case)
    verb = "would remove" if args.dry_run else "removing"
    for d in p.delete:
        console.plain(f"{verb} {d}")
    size_mb = p.size_bytes() / 1e6
    if not args.dry_run:
        clean.apply(p)
    kept = sum(1 for why in p.kept.values() if why.startswith("last green"))
    console.plain(f"{'would remove' if args.dry_run else 'removed'} {len(p.delete)} evidence directories "
                  f"({size_mb:.1f} MB) under {root}; kept every case's latest run"
                  + (f" and {kept} last green runs on main" if kept else ""))
    return 0
