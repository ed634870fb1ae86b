"""The README's printed examples, and whether a real run still prints them.

An example is a fenced block right after a marker comment naming the command that printed it
and its exit code::

    <!-- docs-check: exit 1: nbparity run phi_carryover_spec_vs_c --recorded -->

Every line of the block must be in the output, in order, compared token by token (table
borders and padding ignored, so the console width does not matter). ``…`` stands for left-out
text: a line ``a … b`` matches an output line holding ``a`` and later ``b``; a line that is only
``…`` (or a table row of ``…``) is skipped.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(r"<!-- docs-check: exit (\d+): (.+?) -->\s*\n```[a-z]*\n(.*?)\n```", re.S)
_BORDERS = re.compile(r"[│┃║╭╮╰╯─━┌┐└┘┬┴┼┏┓┗┛┳┻╋┡┩╇═╞╡╪\s]+")


@dataclass(frozen=True)
class Example:
    command: list[str]       # argv, starting with nbparity
    exit_code: int
    lines: list[str]         # the block, one printed line each
    line_no: int             # where the marker is in the README (for the failure message)


def examples(readme: str) -> list[Example]:
    return [Example(shlex.split(m.group(2)), int(m.group(1)), m.group(3).splitlines(),
                    readme.count("\n", 0, m.start()) + 1)
            for m in MARKER.finditer(readme)]


def normalise(line: str) -> str:
    return _BORDERS.sub(" ", line).strip()


def _fragments(line: str) -> list[str]:
    return [f for f in (normalise(p) for p in line.split("…")) if f]


def _matches(fragments: list[str], line: str) -> bool:
    at = 0
    for f in fragments:
        at = line.find(f, at)
        if at < 0:
            return False
        at += len(f)
    return True


def missing_lines(block: list[str], output: str) -> list[str]:
    """The block's lines that the output does not print (in order, one output line each)."""
    out = [normalise(ln) for ln in output.splitlines()]
    missing, i = [], 0
    for line in block:
        frags = _fragments(line)
        if not frags:
            continue
        j = next((k for k in range(i, len(out)) if _matches(frags, out[k])), None)
        if j is None:
            missing.append(line)
        else:
            i = j + 1
    return missing


def readme_path() -> Path:
    return Path(__file__).resolve().parents[2] / "README.md"
