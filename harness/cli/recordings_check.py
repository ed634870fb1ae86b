"""`nbparity recordings-check FRESH`: compare a fresh recording set with the reference recordings."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import CliConsole, golden_dir
from harness.model.errors import ExitCode, UsageError
from harness.references import recordings_check

NAME = "recordings-check"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="compare a fresh recording set (`nbparity record --all --out DIR`) with "
                                         "the reference recordings case by case; exit 1 on any difference")
    p.add_argument("fresh", help="the fresh recordings root (index.json, cases/)")
    p.add_argument("--against", help="reference recordings (default: --golden-dir / NB_GOLDEN_DIR)")
    return p


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    fresh = Path(args.fresh).expanduser().resolve()
    reference = Path(args.against).expanduser().resolve() if args.against else golden_dir(args)
    for root, what in ((fresh, "fresh recordings"), (reference, "reference recordings")):
        if not (root / "index.json").is_file():
            raise UsageError(f"{what}: {root}/index.json not found (make one with `nbparity record --all --out DIR`; "
                             "the reference is NB_GOLDEN_DIR or --against)")
    report = recordings_check.check(fresh, reference)
    for case in report.cases:
        if case.identical:
            console.plain(f"  same  {case.name}: {', '.join(case.checked)}")
        else:
            console.plain(f"  DIFF  {case.name}:")
            for d in case.differences:
                console.plain(f"          {d}")
    console.plain(f"compilers: fresh {'; '.join(report.compilers['fresh']) or 'unknown'}; "
                  f"reference {'; '.join(report.compilers['reference']) or 'unknown'}")
    n = len(report.cases)
    console.plain(f"recordings-check: {n - report.n_different} of {n} identical, {report.n_different} differ "
                  f"({fresh} against {reference})")
    return int(ExitCode.DIVERGENCE) if report.n_different else 0
