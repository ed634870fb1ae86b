"""Key alignment across implementations that print the catalog's keys their own way.

A port may use its own trace prefix (``TRACE_X:``), call a key by another name, print a key in
other units (metres against Å) or not print a key at all. A :class:`Convention` says how one
implementation prints; :func:`parse` turns its stdout into catalog records (catalog names, catalog
units), and :func:`align_pair` pairs two implementations' records with the one comparison
primitive, calling a key that one side never prints "not traced by X": listed, never a pass, and
never the first divergence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Optional, Sequence

from engine.outputs import trace as catalog
from harness.compare import keys, traces
from harness.compare.primitive import (VERDICT_C_ONLY, VERDICT_PY_ONLY, Divergence, Row, ToleranceTable,
                                       align, first_divergence, narrow)
from harness.compare.traces import TraceRecord
from harness.compare.verdict import Outcome, row_model

NOT_TRACED = "not traced by "


@dataclass(frozen=True)
class UnitConversion:
    """The implementation prints ``key`` in ``unit``; its value × ``factor`` is in ``catalog_unit``."""

    unit: str
    factor: float
    catalog_unit: str = ""

    def describe(self, who: str) -> str:
        to = f" → {self.catalog_unit}" if self.catalog_unit else ""
        return f"{who} prints {self.unit}, ×{self.factor:g}{to}"


@dataclass(frozen=True)
class Convention:
    """How one implementation prints its trace."""

    name: str
    prefix: str = catalog.PY_PREFIX
    phi_prefix: str = catalog.PY_PREFIX + "_PHI"
    #: its key name -> catalog name
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: catalog name -> how it prints that key
    units: Mapping[str, UnitConversion] = field(default_factory=dict)

    @property
    def native(self) -> Optional[str]:
        """'C' or 'PY' when it prints one of the two catalog prefixes as they are."""
        for who, prefix in (("C", catalog.C_PREFIX), ("PY", catalog.PY_PREFIX)):
            if self.prefix == prefix and self.phi_prefix == prefix + "_PHI":
                return who
        return None


def canonical_text(stdout: str, conv: Convention) -> tuple[str, str]:
    """(stdout with its trace lines in the catalog's format and names, 'C' or 'PY')."""
    who = conv.native or "PY"
    marker = f"TRACE_{who}"
    lines = []
    for line in stdout.splitlines():
        if conv.native is None:
            if conv.prefix not in line and conv.phi_prefix not in line:
                continue
            line = line.replace(conv.phi_prefix + " ", "\0PHI ").replace(conv.prefix + ":", marker + ":")
            line = line.replace("\0PHI ", marker + "_PHI ")
        lines.append(_rename(line, marker, conv.aliases) if conv.aliases else line)
    return "\n".join(lines) + "\n", who


def _rename(line: str, marker: str, aliases: Mapping[str, str]) -> str:
    for theirs, ours in aliases.items():
        t = re.escape(theirs)
        line = re.sub(rf"({re.escape(marker)}:){t}=", rf"\g<1>{ours}=", line)
        line = re.sub(rf"({re.escape(marker)}: ){t}(?= |$)", rf"\g<1>{ours}", line)
        if marker + "_PHI " in line:
            line = re.sub(rf"(?<= ){t}=", f"{ours}=", line)
    return line


def parse(stdout: str, conv: Convention) -> list[TraceRecord]:
    """The implementation's trace records under catalog names, in catalog units."""
    text, who = canonical_text(stdout, conv)
    return [_convert(r, conv.units.get(r.key)) for r in traces.parse(text, who)]


def _convert(rec: TraceRecord, rule: Optional[UnitConversion]) -> TraceRecord:
    if rule is None or not all(isinstance(v, (int, float)) for v in rec.values):
        return rec
    return replace(rec, values=tuple(float(v) * rule.factor for v in rec.values))


def align_pair(ref_records: Sequence[TraceRecord], other_records: Sequence[TraceRecord],
               tolerances: ToleranceTable, ref: Convention, other: Convention) -> list[Row]:
    """Rows in dataflow order, ``ref`` in the C column and ``other`` in the torch column.

    A value that one side does not print (a key it never prints, or an occurrence it does not
    repeat: the C traces every subpixel, a port may trace the pixel once) is "not traced by"
    that side: listed, not compared, never a pass.
    """
    rows = []
    for row in align(ref_records, other_records, tolerances):
        if row.verdict == VERDICT_C_ONLY:
            row = replace(row, verdict=NOT_TRACED + other.name)
        elif row.verdict == VERDICT_PY_ONLY:
            row = replace(row, verdict=NOT_TRACED + ref.name)
        note = unit_note(row.key, ref, other)
        rows.append(replace(row, note=note) if note else row)
    return rows


def unit_note(key: str, *convs: Convention) -> str:
    return "; ".join(c.units[key].describe(c.name) for c in convs if key in c.units)


def is_not_traced(row: Row) -> bool:
    return row.verdict.startswith(NOT_TRACED)


def pair_divergence(rows: Iterable[Row]) -> Divergence:
    """The first divergence among keys both sides trace ("not traced by" rows are only listed)."""
    return first_divergence([r for r in rows if not is_not_traced(r)])


def compare_pair_traces(ref_stdout: str, other_stdout: str, ref: Convention, other: Convention,
                        tolerances: ToleranceTable, selectors: Sequence[keys.Selector] = ()) -> Outcome:
    """What a pair's trace comparison decides (ParityResult fields), every aligned row and the
    records of each side under catalog names ("c": the reference, "torch": the one under test)."""
    ref_recs, other_recs = parse(ref_stdout, ref), parse(other_stdout, other)
    all_rows = align_pair(ref_recs, other_recs, tolerances, ref, other)
    rows = narrow(all_rows, selectors) if selectors else all_rows
    div = pair_divergence(rows)
    # "total" counts the values both sides print (what "all N values within tolerance" means).
    counts: dict[str, int] = {"total": sum(1 for r in rows if not is_not_traced(r))}
    for r in rows:
        k = r.verdict.replace(" ", "_")
        counts[k] = counts.get(k, 0) + 1
    out = Outcome(all_rows=[row_model(r) for r in all_rows], records={"c": ref_recs, "torch": other_recs})
    out.update = dict(trace_compared=True, rows=[row_model(r) for r in rows] if selectors else out.all_rows,
                      first_divergence=row_model(div.first) if div.first else None,
                      downstream=[r.label for r in div.downstream], counts=counts)
    notes = [f"{c.name} printed no {c.prefix} lines" for c, recs in ((ref, ref_recs), (other, other_recs)) if not recs]
    untraced = sum(1 for r in rows if is_not_traced(r))
    if untraced:
        notes.append(f"{untraced} values are traced by one side only (listed as 'not traced by …', not compared)")
    if notes:
        out.update["trace_note"] = "; ".join(notes)
    return out
