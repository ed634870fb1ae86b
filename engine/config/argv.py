"""A nanoBragg argv → ``Options``, with the C's matching rules (the table in ``engine.config.c_flags``).

Besides the C's flags the argv may carry our own long options (``--mode``, ``--device``, ...),
which ``split_long_options`` takes out first. Where the C silently ignores a token (unknown
flag, stray word, missing or malformed value) we stop with a one-line ``UsageError`` instead.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

from engine.config.c_flags import BRANCHES, MISSET_RANDOM, Branch, parse_int, read_cell
from engine.config.device import check_device
from engine.config.defects import parse_ids
from engine.config.options import Options, UsageError
from engine.io.smv import header_geometry

#: Our own long options (not C flags): name → canonical field.
LONG_OPTIONS = {"--mode": "mode", "--phi-mode": "mode", "--c-defects": "defects", "--device": "device",
                "--dtype": "dtype", "--c-threads": "c_threads"}
MODES = ("spec", "c-parity")
DTYPES = ("float64", "float32")


def _long_option_value(name: str, val: str) -> object:
    """The canonical value of one of our long options, or a one-line ``UsageError``."""
    field = LONG_OPTIONS[name]
    if field == "mode" and val not in MODES:
        raise UsageError(f"{name}: expected one of {', '.join(MODES)}, got {val!r}")
    if field == "dtype" and val not in DTYPES:
        raise UsageError(f"{name}: expected one of {', '.join(DTYPES)}, got {val!r}")
    if field == "device":
        return check_device(val, flag=name)
    if field == "defects":
        try:
            return parse_ids(val)
        except ValueError as exc:
            raise UsageError(f"{name}: {exc}") from None
    if field == "c_threads":
        n = parse_int(name, val)
        if n < 1:
            raise UsageError(f"{name}: expected a thread count >= 1, got {val!r}")
        return n
    return val


def split_long_options(argv: Sequence[str]) -> tuple[list[str], dict[str, object]]:
    """Remove our ``--mode/--device/--dtype/--c-threads`` options; return (C argv, values)."""
    out: list[str] = []
    found: dict[str, object] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--"):
            name, eq, val = tok.partition("=")
            if name not in LONG_OPTIONS:
                raise UsageError(f"unknown option {name}; ours are {', '.join(sorted(LONG_OPTIONS))}")
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                val = argv[i + 1]
                i += 1
            found[LONG_OPTIONS[name]] = _long_option_value(name, val)
        else:
            out.append(tok)
        i += 1
    return out, found


def find_smv_inputs(argv: Sequence[str]) -> tuple[Optional[str], Optional[str]]:
    """The C's pre-pass: (img file, mask file), last occurrence winning."""
    img = mask = None
    for i, tok in enumerate(argv):
        if tok.startswith("-") and i + 1 < len(argv):
            if "-img" in tok:
                img = argv[i + 1]
            if "-mask" in tok:
                mask = argv[i + 1]
    return img, mask


def apply_smv_header(state: dict, header: Mapping[str, str], *, is_mask: bool) -> None:
    """Header keys of an -img/-mask file as defaults, before argv (the C reads both headers first).

    The look-up rules (substring search, last hit wins, the mask's flipped BEAM_CENTER_Y) live in
    ``engine.io.smv.header_geometry``; TWOTHETA is ignored, as the C reads it into a scratch
    variable and never uses it.
    """
    geo = header_geometry(header, is_mask=is_mask, pixel_size=state["pixel_size"])
    geo.pop("twotheta", None)
    state.update(geo)
    # The C always re-derives the detector size from this header's pixel count and size.
    state["detsize_f"] = state["pixel_size"] * state["fpixels"]
    state["detsize_s"] = state["pixel_size"] * state["spixels"]


@dataclasses.dataclass
class _Walk:
    """What the walk over the C argv has seen: per token, whether a branch matched it or took it
    as a value; and the notes for the console."""

    matched: list[bool]
    consumed: list[bool]
    notes: list[str]


def _branch_fires(br: Branch, argv: Sequence[str], i: int) -> bool:
    if not br.match(argv[i]):
        return False
    # `-misset random`: only when the next token contains "rand".
    return br is not MISSET_RANDOM or (i + 1 < len(argv) and "rand" in argv[i + 1])


def _apply_branch(br: Branch, argv: Sequence[str], i: int, state: dict, walk: _Walk) -> None:
    tok = argv[i]
    walk.matched[i] = True
    if len(argv) - i - 1 < br.nvals:
        if br.consumes == 0:   # -curved_det as the last token: the C ignores it
            walk.notes.append(f"{tok} is the last argument, so the C ignores it")
            return
        if walk.consumed[i]:
            return              # a value token that merely looks like a flag
        raise UsageError(f"{tok} needs {br.nvals} value(s) after it")
    vals = list(argv[i + 1:i + 1 + max(br.nvals, 6 if br.apply is read_cell else 0)])
    used = br.apply(state, tok, vals)
    used = br.consumes if br.consumes is not None else (used if used is not None else br.nvals)
    for j in range(i + 1, i + 1 + used):
        walk.consumed[j] = True


def _walk_branches(argv: Sequence[str], state: dict) -> _Walk:
    """Every token that starts with '-' against every branch, in the C's order."""
    walk = _Walk([False] * len(argv), [False] * len(argv), [])
    for i, tok in enumerate(argv):
        if not tok.startswith("-"):
            continue
        for br in BRANCHES:
            if _branch_fires(br, argv, i):
                _apply_branch(br, argv, i, state, walk)
                if br.stop:
                    break
    return walk


def _refuse_leftovers(argv: Sequence[str], walk: _Walk) -> None:
    """A token no branch matched nor took as a value: the C ignores it, we refuse it."""
    for i, tok in enumerate(argv):
        if walk.consumed[i] or walk.matched[i]:
            continue
        if tok.startswith("-"):
            raise UsageError(f"unknown flag {tok}: not a nanoBragg option (check the spelling; "
                             "nanobragg-torch --help lists the common ones)")
        raise UsageError(f"unexpected argument {tok!r}: it follows no flag that takes a value")


def parse_argv(argv: Sequence[str], *, headers: Sequence[tuple[str, Mapping[str, str]]] = ()) -> Options:
    """Parse a full argv (no program name) into ``Options`` with the C's matching rules.

    ``headers``: ``(kind, header)`` pairs for ``-mask``/``-img`` files, in the order the C reads
    them (mask first, then img); their values are defaults that argv then overrides.
    """
    c_argv, long_opts = split_long_options(argv)
    state = {f.name: f.default for f in dataclasses.fields(Options)}
    state.update(long_opts)
    for kind, header in headers:
        apply_smv_header(state, header, is_mask=(kind == "mask"))
    walk = _walk_branches(c_argv, state)
    _refuse_leftovers(c_argv, walk)
    state["notes"] = tuple(walk.notes)
    return Options(**state)
