"""`nbparity bisect CASE --good A --bad B`: the first commit where a case's verdict (or a key's |Δ|) went bad.

With ``--impl NAME`` (not the engine) the commits are those of that implementation's own git
checkout (its registry entry's ``repository``, or ``--repo``), each judged by the pair run
``nbparity run CASE --impl NAME --vs B`` with that commit as the implementation's ``{checkout}``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.cli.common import CliConsole, cases_dir, golden_dir
from harness.cli.pairs import add_pair_options, pair_from_args
from harness.compare import keys
from harness.model import paths
from harness.model.errors import UsageError
from harness.registry.cases import Registry
from harness.service import bisect as bis
from harness.service.pair import Pair

NAME = "bisect"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    b = subparsers.add_parser(NAME, help="first commit where a case's verdict (or a key's |Δ|) went bad")
    b.add_argument("case")
    b.add_argument("--good", required=True, help="a revision where the case passes")
    b.add_argument("--bad", required=True, help="a later revision where it fails")
    b.add_argument("--key", help="also call a commit bad when this key's |Δ| exceeds --tolerance")
    b.add_argument("--tolerance", type=float, help="for --key (default: the case's atol for that key)")
    b.add_argument("--repo", help="git repository (default: this project; with --impl, that implementation's "
                                  "`repository`)")
    b.add_argument("--image", action="store_true", help="compare the image too (default: trace only)")
    b.add_argument("--json", action="store_true")
    add_pair_options(b, impl_help="another one's own git repository is bisected, judged by the pair run")
    return b


def _key_tolerance(args: argparse.Namespace) -> Optional[float]:
    if args.key is None or args.tolerance is not None:
        return args.tolerance
    try:
        sels = keys.resolve(args.key)
    except KeyError as e:
        raise UsageError(f"--key: {e.args[0]}") from None
    case = Registry(cases_dir(args)).get(args.case)
    return case.tolerance.table().for_key(sels[0].name).atol


def _impl_repository(args: argparse.Namespace, pair: Pair) -> Path:
    """The git checkout of ``--impl``'s own source, and a check that its command runs that checkout."""
    impl = pair.impl
    if impl.kind != "command":
        raise UsageError(f"--impl {impl.name}: bisect --impl searches a command implementation's repository; "
                         "the bundled engine is bisected over this project (leave out --impl)")
    if not impl.runs_a_checkout():
        raise UsageError(f"--impl {impl.name}: its command does not run a checkout, so every commit would run "
                         "the same code; use {checkout} in its `command` or `checkout_env` (README: "
                         "'Bisecting another implementation')")
    repo = args.repo or impl.repository_path()
    if not repo:
        raise UsageError(f"--impl {impl.name}: its registry entry names no `repository` (a git checkout of "
                         "its source); add one or pass --repo")
    if not (Path(repo) / ".git").exists():
        raise UsageError(f"--impl {impl.name}: {repo} is not a git checkout (its `repository` or --repo)")
    return Path(repo)


def _evaluator(args: argparse.Namespace) -> tuple[Path, bis.Evaluate]:
    extra = () if args.image else ("--trace-only",)
    pair = pair_from_args(args)
    if pair.is_default:
        repo = Path(args.repo) if args.repo else paths.REPO_ROOT
        return repo, bis.harness_evaluator(args.case, key=args.key, extra_args=extra, golden_dir=golden_dir(args))
    return _impl_repository(args, pair), bis.pair_evaluator(
        args.case, pair.impl.name, pair.vs.name, key=args.key, extra_args=extra, impls_file=args.impls,
        golden_dir=golden_dir(args), cases_dir=cases_dir(args))


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    tol = _key_tolerance(args)
    repo, evaluate = _evaluator(args)
    res = bis.bisect(repo, args.case, args.good, args.bad, evaluate=evaluate, key=args.key, tolerance=tol,
                     progress=lambda msg: console.err.print(f"  probed {msg}", markup=False, highlight=False))
    if args.json:
        print(json.dumps(res.as_dict(), indent=2, default=str))
        return 0
    render_bisect(console.out, res)
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
    if v and v.first_key and v.first_delta is not None:
        where = f"first divergent key there: {v.first_key} (|Δ| {v.first_delta:.3g})"
    elif v and v.first_key:
        where = f"first divergent key there: {v.first_key}"
    else:
        where = f"status there: {v.status if v else '?'}"
    out.print(f"first bad commit: {res.first_bad} {res.first_bad_subject}", highlight=False)
    out.print(where, highlight=False)
    if res.ambiguous:
        out.print(f"[yellow]skipped commits hide the exact answer: it is one of "
                  f"{', '.join(c[:10] for c in res.ambiguous)}[/yellow]")
