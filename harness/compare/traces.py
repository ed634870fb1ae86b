"""Parse C and engine stdout into trace records.

Both programs print the same three line shapes (``TRACE_C`` / ``TRACE_PY`` prefixes)::

    TRACE_C:key=value            set-up, once (the BEAM pivot re-prints some keys)
    TRACE_C: key v1 v2 v3        traced pixel, once per (layer, subpixel) for most keys
    TRACE_C_PHI phi_tic=N k=v …  one per φ step
    TRACE_C_SOURCE2: key v       per-source terms, aligned by the source index in the label

A trace line can be glued to the end of another line (the C prints a warning without a
newline), so markers are searched anywhere in a line, not only at its start. Lines that differ
from run to run by nature (heap addresses, clock seeds) are dropped before parsing.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Union

from engine.outputs import trace as catalog
from harness.compare import keys
from harness.model import gcpause

Value = Union[float, int, str]

#: Console lines whose content legitimately changes between identical runs.
VOLATILE_LINES: tuple[re.Pattern[str], ...] = (
    re.compile(r"mmap\(.*\)\s*=\s*0x[0-9a-fA-F]+"),
    re.compile(r"^\s*seed:\s*-?\d+\s*$"),
)

# One marker per record; TRACE_CONFIG and TRACE_C_TAP5 (other, non-aligned line families) stay out.
_MARKER = re.compile(r"TRACE_(?P<who>C|PY)(?:(?P<phi>_PHI )|_SOURCE(?P<source>\d+):|(?P<colon>:))")
_SETUP = re.compile(r"(?P<key>[A-Za-z_][\w]*)=(?P<value>.*)")
_PIXEL = re.compile(r" (?P<key>[A-Za-z_][\w]*)(?: (?P<value>.*))?")
_LABELLED = re.compile(r"^\w+:")
# One search per line instead of one per pattern (traces run to tens of thousands of lines).
_VOLATILE = re.compile("|".join(f"(?:{p.pattern})" for p in VOLATILE_LINES))


@dataclass(frozen=True)
class TraceRecord:
    """One key's values at one occurrence.

    kind: 'setup', 'pixel', 'phi' or 'source'. occurrence counts earlier records with the same
    identity (for φ lines: the same field at the same phi_tic; for per-source lines: the same
    field of the same source_index), from 0. components names the values when
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
    source_index: Optional[int] = None

    @property
    def ident(self) -> tuple:
        return (self.kind, self.key, self.phi_tic, self.occurrence, self.source_index)

    @property
    def label(self) -> str:
        if self.kind == "phi":
            base = f"phi[{self.phi_tic}].{self.key}"
        elif self.kind == "source":
            base = f"source[{self.source_index}].{self.key}"
        else:
            base = self.key
        return base if self.occurrence == 0 else f"{base}#{self.occurrence}"

    @property
    def stage(self) -> str:
        return keys.stage_of(self.kind, self.key)


def is_volatile(line: str) -> bool:
    return _VOLATILE.search(line) is not None


def _number(tok: str, as_int: bool) -> Value:
    # A number is what float() reads, less digit-group underscores ('1_0' stays text): one call
    # per value instead of a regex match (traces hold tens of thousands of values).
    if "_" in tok:
        return tok
    try:
        value = float(tok)
    except ValueError:
        return tok
    if as_int:
        try:
            return int(tok)
        except ValueError:
            pass
    return value


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
    if value_kind == "labelled" or _LABELLED.match(text):
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
    records = _parse(text)
    return list(records) if source is None else [r for r in records if r.source == source]


@functools.lru_cache(maxsize=4)
def _parse(text: str) -> tuple[TraceRecord, ...]:
    """Both programs' records (occurrences count per program, so filtering afterwards is the same
    as skipping); cached because a run parses the reference's stdout twice (the recording's check
    and the comparison) and records are immutable."""
    with gcpause.paused():
        return tuple(_records(text))


def _records(text: str) -> list[TraceRecord]:
    records: list[TraceRecord] = []
    seen: dict[tuple, int] = {}

    def add(who: str, kind: str, key: str, values, comps, tic, line_no, raw, source_index=None) -> None:
        ident = (who, kind, key, tic, source_index)
        occ = seen.get(ident, 0)
        seen[ident] = occ + 1
        records.append(TraceRecord(who, kind, key, values, occ, tic, comps, line_no, raw, source_index))

    for line_no, line in enumerate(text.splitlines(), start=1):
        if "TRACE_" not in line or is_volatile(line):
            continue
        for m, body in _segments(line):
            who = m.group("who")
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
                kind = "pixel" if m.group("source") is None else "source"
                vals, comps = _parse_values(kind, key, pm.group("value") or "")
                index = None if m.group("source") is None else int(m.group("source"))
                add(who, kind, key, vals, comps, None, line_no, raw, index)
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
