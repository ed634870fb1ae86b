"""The `--impl A --vs B --impls FILE` options that `run` and `gate` share, and their pair."""
from __future__ import annotations

import argparse
from typing import Optional

from harness.model.errors import UsageError
from harness.registry import implementations as impls
from harness.service.pair import Pair


def add_pair_options(p: argparse.ArgumentParser, impl_help: str = "gate takes a comma-separated list") -> None:
    p.add_argument("--impl", default=impls.DEFAULT_IMPL, metavar="NAME",
                   help=f"implementation under test (default {impls.DEFAULT_IMPL}; `nbparity impls` lists them; "
                        f"{impl_help})")
    p.add_argument("--vs", default=impls.DEFAULT_VS, metavar="NAME",
                   help=f"implementation it is compared with, the reference (default {impls.DEFAULT_VS})")
    p.add_argument("--impls", metavar="FILE",
                   help="TOML file with more implementations (default: $NB_IMPLS; implementations/*.toml "
                        "are always read)")


def pairs_from_args(args: argparse.Namespace) -> list[Pair]:
    """One pair per name in ``--impl A[,B…]`` against ``--vs`` (a one-line UsageError for an
    unknown name or a bad registry file)."""
    registry = impls.load_registry(getattr(args, "impls", None))
    vs = impls.resolve(args.vs, registry)
    names = [n.strip() for n in args.impl.split(",") if n.strip()]
    if not names:
        raise UsageError("--impl: expected an implementation name (`nbparity impls` lists them)")
    pairs = [Pair(impls.resolve(n, registry), vs) for n in names]
    for impl in (vs, *(p.impl for p in pairs)):
        if impl.kind == "command" and impl.reference_kind is None:
            impl.argv_prefix()  # an unset ${VAR:?…} is one usage line now, not an error per case
    return pairs


def pair_from_args(args: argparse.Namespace) -> Pair:
    """The one pair of ``--impl A --vs B`` (`run` compares one pair)."""
    pairs = pairs_from_args(args)
    if len(pairs) > 1:
        raise UsageError(f"--impl: {args.command} compares one implementation, got {args.impl!r} "
                         "(gate takes a list)")
    return pairs[0]


def ledger_command(kind: str, pair: Optional[Pair]) -> str:
    """The ledger's run kind: pairs other than the default are kept apart by history and flips."""
    return kind if pair is None or pair.is_default else f"{kind}[{pair.title}]"


def bench_impls(names: str) -> tuple[impls.Implementation, ...]:
    """`bench --impl A,B`: registered command implementations to time beside the engine and the C
    (the engine and the C are timed anyway)."""
    registry = impls.load_registry()
    chosen = tuple(impls.resolve(n.strip(), registry) for n in names.split(",") if n.strip())
    for impl in chosen:
        if impl.kind != "command" or impl.reference_kind is not None:
            raise UsageError(f"--impl {impl.name}: bench times other command implementations; the engine "
                             "and the C are timed anyway")
    return chosen
