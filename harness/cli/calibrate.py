"""`nbparity calibrate [CASE ...]`: measure the engine's float32 error against the recordings and
store each case's float32 bars (with the error they came from) in its case file."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness.bench import calibrate
from harness.cli.common import CliConsole, cases_dir, golden_dir
from harness.model.errors import UsageError
from harness.pipeline import Context
from harness.registry.cases import Registry
from harness.service import workers

NAME = "calibrate"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="measure the engine's float32 error on every reference of the cases and "
                                         "store the float32 bars derived from it in the case files")
    p.add_argument("cases", nargs="*", help="only these cases (default: all)")
    p.add_argument("--dtype", default="float32", choices=("float32",))
    p.add_argument("--jobs", "-j", type=int, default=workers.default_jobs(), metavar="N",
                   help="runs at once (default: the number of cores)")
    p.add_argument("--dry-run", action="store_true", help="measure and print; write no case file")
    return p


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    reg = Registry(cases_dir(args))
    cases = [reg.get(n) for n in args.cases] if args.cases else reg.load_all()[0]
    if not cases:
        raise UsageError(f"no case files in {reg.root}")
    with tempfile.TemporaryDirectory(prefix="nbparity-calibrate-") as tmp:
        ctx = Context(golden_dir=golden_dir(args), results_dir=Path(tmp), cases_dir=reg.root)

        def done(i: int, s: calibrate.Sample) -> None:
            console.err.print(f"[{i + 1}] {s.run}: |dC| {s.abs_small:.3g} (|C|<1), |dC|/|C| {s.rel:.3g}, image "
                              f"{s.image_rel if s.image_rel is not None else '-'} {s.note}", markup=False,
                              highlight=False)

        measured = calibrate.calibrate(cases, args.dtype, ctx, jobs=max(1, args.jobs), on_done=done)
    for case in cases:
        m = measured[case.name]
        if not m.runs:
            console.note(f"{case.name}: nothing measured; its {args.dtype} profile is left as it was")
            continue
        if not args.dry_run:
            calibrate.store(reg.root / f"{case.name}.toml", case, args.dtype, m)
        console.plain(f"{case.name}: trace |dC| {m.trace_max_abs_small:.3g} (|C|<1), rel {m.trace_max_rel:.3g}; "
                      f"image max|dC|/max|C| {m.image_rel_to_max if m.image_rel_to_max is not None else '-'}"
                      + (f"; cancelling keys with bars of their own: {', '.join(m.keys)}" if m.keys else ""))
    return 0
