"""`nbparity record CASE`: run a live C on a case and store the run as a new recording."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli import record_all
from harness.cli.common import CliConsole, cases_dir, golden_dir, seconds
from harness.model.errors import UsageError
from harness.service import record
from harness.registry.cases import Registry, data_root
from harness.runners.choose import find_binary

NAME = "record"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    rc = subparsers.add_parser(NAME, help="run a live C on a case and store the run as a new recording")
    rc.add_argument("case", nargs="?", help="the case to record (or --all)")
    rc.add_argument("--c-bin", help="C binary (default: NB_C_BIN, then golden_bin/nanoBragg; "
                                    "NB_C_FIXED_BIN / golden_bin/nanoBragg_fixed with --fixed)")
    rc.add_argument("--out", help="recordings root to write into (default: --golden-dir / NB_GOLDEN_DIR)")
    rc.add_argument("--name", help="recording name (default: the case's; CASE__cfixed with --fixed)")
    rc.add_argument("--pixel", nargs=2, type=int, metavar=("S", "F"), help="trace pixel (default: the case's)")
    rc.add_argument("--fixed", action="store_true", help="the binary is a fixed C: image only, no trace")
    rc.add_argument("--force", action="store_true", help="replace an existing recording of that name")
    rc.add_argument("--timeout", type=seconds, help="seconds, > 0 (default: the case's timeout_s)")
    record_all.add_options(rc)
    return rc


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    if args.all:
        return record_all.handle(args, console)
    if not args.case:
        raise UsageError("record needs a CASE (or --all --out DIR for every case)")
    reg = Registry(cases_dir(args))
    case = reg.get(args.case)
    golden = golden_dir(args)
    kind = "fixed-c" if args.fixed else "instrumented-c"
    binary = find_binary(kind, args.c_bin)
    if binary is None:
        raise UsageError("no C binary: pass --c-bin, set NB_C_BIN (NB_C_FIXED_BIN with --fixed) or put one in "
                         "golden_bin/")
    out_root = Path(args.out).expanduser().resolve() if args.out else golden
    name = args.name or (f"{case.name}__cfixed" if args.fixed else case.name)
    with console.err.status(f"recording {name} with {binary} …", spinner="dots"):
        rec = record.record(case, binary=binary, out_root=out_root,
                            source_root=data_root(case, reg.root, golden), name=name, kind=kind,
                            pixel=tuple(args.pixel) if args.pixel else None, force=args.force,
                            timeout_s=args.timeout, derived_from=case.name if args.fixed else None)
    m = rec.manifest
    console.plain(f"recorded {rec.directory}: {m['detpixels'][0]}x{m['detpixels'][1]} image, "
                  f"{'trace of pixel ' + str(m['trace_pixel']) if m['trace_pixel'] else 'no trace'}, "
                  f"{m['runtime_s']:.2f} s; case.json sha256 {rec.manifest_sha256}")
    console.plain(f"next: nbparity import-recordings {out_root} {name}   (pins it in cases/{case.name}.toml)")
    return 0
