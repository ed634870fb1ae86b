"""The C's text-table reader (read_text_file in nanoBragg.c 4137-4236), token for token.

c-parity reads a -sourcefile exactly as the C does, junk included: every line that is not
blank after the delimiters ``" \\t,;:!"`` is a row; a field is whatever atof() makes of the
text there (0 for a word); after a field the C skips the characters of ``0123456789-+.EGeg``,
then up to the next delimiter (a trailing word swallows the newline, so every later column of
that row reads as 0); columns never reached stay NaN, for the caller's defaults. Spec mode uses
the strict reader in ``engine.sample.sources`` instead.
"""
from __future__ import annotations

import math
import re

DELIMITERS = " \t,;:!"
NUMBER_CHARS = "0123456789-+.EGeg"

# strtod()'s longest prefix: optional white space, then a decimal, hex, inf or nan number.
_STRTOD = re.compile(
    r"[ \t\n\v\f\r]*([+-]?)(?:(inf(?:inity)?)|(nan(?:\([0-9A-Za-z_]*\))?)"
    r"|(0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?)"
    r"|((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))", re.IGNORECASE)


def atof(text: str) -> float:
    """C atof(): the longest number at the start of ``text`` (after white space), else 0."""
    m = _STRTOD.match(text)
    if m is None:
        return 0.0
    sign = -1.0 if m.group(1) == "-" else 1.0
    if m.group(2):
        return sign * math.inf
    if m.group(3):
        return math.nan
    if m.group(4):
        return sign * float.fromhex(m.group(4))
    return sign * float(m.group(5))


def _skip(text: str, i: int, chars: str, inside: bool) -> int:
    """strspn (inside=True) or strcspn (inside=False) from position i."""
    while i < len(text) and (text[i] in chars) == inside:
        i += 1
    return i


def _row(line: str, ncols: int) -> list[float]:
    row = [math.nan] * ncols
    t = _skip(line, 0, DELIMITERS, True)
    for col in range(ncols):
        row[col] = atof(line[t:])
        t = _skip(line, t, NUMBER_CHARS, True)
        if line[t:] == "\n":
            break
        t = _skip(line, _skip(line, t, DELIMITERS, False), DELIMITERS, True)
        if line[t:] == "\n":
            break
    return row


def read_rows(text: str, ncols: int) -> list[list[float]]:
    """The rows the C reads from ``text`` (fgets lines; a NUL ends a line's string)."""
    pieces = text.split("\n")
    lines = [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    rows = []
    for line in lines:
        line = line.split("\0", 1)[0]
        if line[_skip(line, 0, DELIMITERS, True):] == "\n":
            continue
        rows.append(_row(line, ncols))
    return rows
