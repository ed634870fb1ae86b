"""Write case files people can read: argv one flag per line, pixels inline.

Used to generate cases from recordings; hand-written case files need not follow it.
"""
from __future__ import annotations

import json
from typing import Any

import tomli_w


def _argv_lines(argv: list[str]) -> str:
    groups: list[list[str]] = []
    for tok in argv:
        # A new group at each flag; negative numbers are values, not flags.
        if tok.startswith("-") and not _is_number(tok) or not groups:
            groups.append([tok])
        else:
            groups[-1].append(tok)
    body = "".join("    " + ", ".join(json.dumps(t) for t in g) + ",\n" for g in groups)
    return "argv = [\n" + body + "]\n"


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def dump_case(data: dict[str, Any], header: str = "") -> str:
    """TOML text for a case dict (same keys as harness.registry.cases.Case)."""
    data = dict(data)
    argv = data.pop("argv")
    pixels = data.pop("trace_pixels")
    tables = {k: data.pop(k) for k in list(data) if isinstance(data[k], dict)}
    out = "".join(f"# {line}\n" for line in header.splitlines())
    out += tomli_w.dumps(data)
    out += _argv_lines(argv)
    out += "trace_pixels = [" + ", ".join(f"[{s}, {f}]" for s, f in pixels) + "]\n"
    if tables:
        out += "\n" + tomli_w.dumps(tables)
    return out
