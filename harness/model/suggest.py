""""Did you mean …?" for a mistyped name: the nearest known names, by spelling.

One place for the hint so that case names, trace keys, tags and subcommands all phrase it
the same way.
"""
from __future__ import annotations

import difflib
import re
from typing import Iterable


def nearest(word: str, known: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` known names closest to ``word``: close spellings first (difflib ratio ≥ 0.6,
    case-insensitive), then names that contain the word, best first, without repeats."""
    names = sorted(set(known))
    lower = {k.lower(): k for k in names}
    close = [lower[k] for k in difflib.get_close_matches(word.lower(), list(lower), n=n, cutoff=0.6)]
    contains = [k for k in names if word and word.lower() in k.lower() and k not in close]
    return (close + contains)[:n]


def did_you_mean(word: str, known: Iterable[str], n: int = 5) -> str:
    """``"; did you mean: a, b?"`` or ``""`` when nothing is near (append to a one-line error)."""
    near = nearest(word, known, n)
    return f"; did you mean: {', '.join(near)}?" if near else ""


_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.*)$")


def argparse_hint(message: str, options: Iterable[str] = ()) -> str:
    """argparse's "invalid choice: 'rnu' (choose from 'list', 'run', …)" plus the nearest
    choices, and "unrecognized arguments: --no-pictrues" plus the nearest of ``options``; any
    other message unchanged. For an ArgumentParser.error override."""
    m = _CHOICE.search(message)
    if m:
        choices = re.findall(r"'([^']*)'", m.group(2))
        return message + did_you_mean(m.group(1), choices, n=3)
    m = _UNRECOGNIZED.search(message)
    unknown = [w.split("=", 1)[0] for w in m.group(1).split() if w.startswith("--")] if m else []
    if unknown and options:
        return message + did_you_mean(unknown[0], [o for o in options if o.startswith("--")], n=3)
    return message
