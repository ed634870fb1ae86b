"""`nbparity record --all --out DIR`: the handler behind record's --all (see harness/service/record_all.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import CliConsole, cases_dir, golden_dir
from harness.model.errors import UsageError
from harness.model.paths import REPO_ROOT
from harness.service import record_all, recordings_cache


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true",
                        help="regenerate every recording the registry names from the live binaries "
                             "(golden_bin/ or NB_C_BIN / NB_C_FIXED_BIN) into --out, in the layout of ../shared/golden")
    parser.add_argument("--cache", action="store_true",
                        help="with --all: record into .cache/recordings/<sha256 of binaries and case files> with a "
                             "registry copy pinned to it (reused while both are unchanged) and print "
                             "NB_GOLDEN_DIR=... and NB_CASES_DIR=... lines (for CI: >> $GITHUB_ENV)")


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    if args.case:
        raise UsageError("record --all takes no CASE (it records every case); drop one or the other")
    if args.cache:
        cached = recordings_cache.ensure(cases_dir(args))
        if cached is None:
            raise UsageError("record --all --cache: no built C in golden_bin/ (run `make c`)")
        print(f"NB_GOLDEN_DIR={cached.golden}\nNB_CASES_DIR={cached.cases}")
        return 0
    if not args.out:
        raise UsageError("record --all needs --out DIR (a new folder; --force replaces it) or --cache")
    golden = golden_dir(args)
    summary = record_all.record_all(Path(args.out).expanduser().resolve(), cases_dir(args),
                                    golden=golden if golden.is_dir() else None, bin_dir=REPO_ROOT / "golden_bin",
                                    force=args.force, log=console.note)
    console.plain(f"recorded {len(summary.names)} cases into {summary.root} in {summary.seconds:.1f} s")
    return 0
