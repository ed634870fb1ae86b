"""Parse C and engine stdout into trace records.

Both programs print the same three line shapes (``TRACE_C`` / ``TRACE_PY`` prefixes)::

    TRACE_C:key=value            set-up, once (the BEAM pivot re-prints some keys)
    TRACE_C: key v1 v2 v3        traced pixel, once per (layer, subpixel) for most keys
    TRACE_C_PHI phi_tic=N k=v …  one per φ step

A trace line can be glued to the end of another line (the C prints a warning without a
newline), so markers are searched anywhere in a line, not only at its start. Lines that differ
from run to run by nature (heap addresses, clock seeds) are dropped before parsing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional, Union

from engine.outputs import trace as catalog
from harness.compare import keys

Value = Union[float, int, str]

#: Console lines whose content legitimately changes between identical runs.
VOLATILE_LINES: tuple[re.Pattern[str], ...] = (
    re.compile(r"mmap\(.*\)\s*=\s*0x[0-9a-fA-F]+"),
    re.compile(r"^\s*seed:\s*-?\d+\s*$"),
)

# One marker per record; the negative look-ahead keeps TRACE_CONFIG, TRACE_C_SOURCE2 and
# TRACE_C_TAP5 (other, non-aligned line families) out.
_MARKER = re.compile(r"TRACE_(?P<who>C|PY)(?:(?P<phi>_PHI )|(?P<colon>:))")
_SETUP = re.compile(r"(?P<key>[A-Za-z_][\w]*)=(?P<value>.*)")
_PIXEL = re.compile(r" (?P<key>[A-Za-z_][\w]*)(?: (?P<value>.*))?")
_NUMBER_TOKEN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf|infinity)$", re.I)


@dataclass(frozen=True)
class TraceRecord:
    """One key's values at one occurrence.

    kind: 'setup', 'pixel' or 'phi'. occurrence counts earlier records with the same identity
    (for φ lines: the same field at the same phi_tic), from 0. components names the values when
    the catalog or the line labels them.
    """

    source: str
    kind: str
    key: str
    values: tuple[Value, ...]
    occurrence: int
    phi_tic: Optional[int] = None
    components: tuple[str, ...] = ()
    line_no: int = 0
    text: str = ""

    @property
    def ident(self) -> tuple:
        return (self.kind, self.key, self.phi_tic, self.occurrence)

    @property
    def label(self) -> str:
        if self.kind == "phi":
            base = f"phi[{self.phi_tic}].{self.key}"
        else:
            base = self.key
        return base if self.occurrence == 0 else f"{base}#{self.occurrence}"

    @property
    def stage(self) -> str:
        return keys.stage_of(self.kind, self.key)


def is_volatile(line: str) -> bool:
    return any(p.search(line) for p in VOLATILE_LINES)


def _number(tok: str, as_int: bool) -> Value:
    if not _NUMBER_TOKEN.match(tok):
        return tok
    if as_int:
        try:
            return int(tok)
        except ValueError:
            pass
    return float(tok)


def _parse_values(kind: str, key: str, text: str) -> tuple[tuple[Value, ...], tuple[str, ...]]:
    spec = keys.lookup(kind, key)
    value_kind = spec.value if spec else "float"
    components = spec.components if spec else ()
    text = text.strip()
    if value_kind == "text":
        return (text,), ()
    if value_kind == "matrix" or (text.startswith("[") and text.endswith("]")):
        rows = [r.split() for r in text.strip("[]").split(";")]
        vals = tuple(_number(t, False) for r in rows for t in r)
        comps = tuple(f"r{i}c{j}" for i, r in enumerate(rows) for j in range(len(r)))
        return vals, comps
    if value_kind == "labelled" or re.match(r"^\w+:", text):
        pairs = [tok.split(":", 1) for tok in text.split()]
        if all(len(p) == 2 for p in pairs):
            return tuple(_number(v, False) for _, v in pairs), tuple(lbl for lbl, _ in pairs)
    vals = tuple(_number(t, value_kind == "int") for t in text.split())
    if any(isinstance(v, str) for v in vals):
        # Not a list of numbers after all (unknown key, or free text): compare as one string.
        return (text,), ()
    return vals, components if len(components) == len(vals) else ()


def _segments(line: str) -> Iterable[tuple[re.Match[str], str]]:
    """Each trace marker in the line with the text up to the next marker."""
    marks = list(_MARKER.finditer(line))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(line)
        yield m, line[m.end():end].rstrip()


def parse(text: str, source: Optional[str] = None) -> list[TraceRecord]:
    """Parse every TRACE_C/TRACE_PY record in ``text`` (one program's stdout).

    ``source`` keeps only one program's records ('C' or 'PY'); None keeps both.
    """
    records: list[TraceRecord] = []
    seen: dict[tuple, int] = {}

    def add(who: str, kind: str, key: str, values, comps, tic, line_no, raw) -> None:
        ident = (who, kind, key, tic)
        occ = seen.get(ident, 0)
        seen[ident] = occ + 1
        records.append(TraceRecord(who, kind, key, values, occ, tic, comps, line_no, raw))

    for line_no, line in enumerate(text.splitlines(), start=1):
        if "TRACE_" not in line or is_volatile(line):
            continue
        for m, body in _segments(line):
            who = m.group("who")
            if source is not None and who != source:
                continue
            raw = m.group(0) + body
            if m.group("phi"):
                fields = dict(tok.split("=", 1) for tok in body.split() if "=" in tok)
                try:
                    tic = int(fields.pop("phi_tic"))
                except (KeyError, ValueError):
                    continue  # a φ line without its index cannot be aligned
                for fname, fval in fields.items():
                    add(who, "phi", fname, (_number(fval, False),), (), tic, line_no, raw)
                continue
            if body.startswith(" "):
                pm = _PIXEL.match(body)
                if not pm:
                    continue
                key = pm.group("key")
                vals, comps = _parse_values("pixel", key, pm.group("value") or "")
                add(who, "pixel", key, vals, comps, None, line_no, raw)
            else:
                sm = _SETUP.match(body)
                if not sm:
                    continue
                key = sm.group("key")
                vals, comps = _parse_values("setup", key, sm.group("value"))
                add(who, "setup", key, vals, comps, None, line_no, raw)
    return records


def keys_present(records: Iterable[TraceRecord]) -> set[tuple[str, str]]:
    return {(r.kind, r.key) for r in records}


#: Keys whose absence means the trace of the pixel stopped early or never started.
REQUIRED_PIXEL_KEYS: tuple[str, ...] = ("pix0_vector_meters", "I_pixel_final", "floatimage_accumulated")


def missing_required(records: Iterable[TraceRecord]) -> list[str]:
    present = {r.key for r in records if r.kind == "pixel"}
    return [k for k in REQUIRED_PIXEL_KEYS if k not in present]


def to_engine_prefix(c_stdout: str) -> str:
    """Rewrite a C stdout as the engine would print it (test fakes, import of recordings)."""
    return c_stdout.replace(catalog.C_PREFIX, catalog.PY_PREFIX)
