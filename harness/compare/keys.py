"""Lookups over the engine's trace key catalog: dataflow rank, aliases and key selectors.

The catalog (engine/outputs/trace.py) is the only source of names; this module only indexes it.
A record is identified by (kind, name) because the per-φ fields F_latt_b and F_latt share their
names with per-pixel keys.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from engine.outputs import trace as catalog
from harness.model.suggest import did_you_mean

STAGE_RANK: dict[str, int] = {s: i for i, s in enumerate(catalog.STAGES)}
#: Records whose key is not in the catalog sort after every known stage.
UNKNOWN_STAGE = "unknown"

_BY_KIND_NAME: dict[tuple[str, str], tuple[int, catalog.TraceKey]] = {}
for _i, _k in enumerate(catalog.KEYS):
    _BY_KIND_NAME.setdefault((_k.kind, _k.name), (_i, _k))

# Unit suffixes dropped to make a short alias for keys that have no explicit one.
_UNIT_SUFFIX = re.compile(r"_(meters|m|angstroms|A_inv|sr)$")


def lookup(kind: str, name: str) -> Optional[catalog.TraceKey]:
    hit = _BY_KIND_NAME.get((kind, name))
    return hit[1] if hit else None


def rank(kind: str, name: str) -> tuple[int, int]:
    """(stage rank, catalog position): the dataflow order the report walks."""
    hit = _BY_KIND_NAME.get((kind, name))
    if hit is None:
        return (len(STAGE_RANK), len(catalog.KEYS))
    return (STAGE_RANK[hit[1].stage], hit[0])


def stage_of(kind: str, name: str) -> str:
    k = lookup(kind, name)
    return k.stage if k else UNKNOWN_STAGE


@dataclass(frozen=True)
class Selector:
    """What one ``--keys`` word selects: a key (any kind unless ``kind`` is set) and optionally
    one component of it (an index into the record's values)."""

    word: str
    name: str
    kind: Optional[str] = None
    component: Optional[int] = None

    def matches(self, kind: str, name: str) -> bool:
        return name == self.name and (self.kind is None or self.kind == kind)


def _alias_table() -> dict[str, list[Selector]]:
    table: dict[str, list[Selector]] = {}

    def add(word: str, sel: Selector) -> None:
        if sel not in table.setdefault(word, []):
            table[word].append(sel)

    for k in catalog.KEYS:
        add(k.name, Selector(k.name, k.name))
        for a in k.aliases:
            add(a, Selector(a, k.name))
    # Automatic short names (unit suffix dropped) only where nothing else claims the word.
    for k in catalog.KEYS:
        short = _UNIT_SUFFIX.sub("", k.name)
        if short != k.name and short not in table:
            add(short, Selector(short, k.name))
    for word, (key, comp) in catalog.COMPONENT_ALIASES.items():
        # A component alias replaces a same-named whole key selector for people (k_frac means
        # "the k component", and the φ-line field of that name), so build it fresh.
        sels = [Selector(word, key, "pixel", comp)]
        if lookup("phi", word) is not None:
            sels.append(Selector(word, word, "phi"))
        table[word] = sels
    return table


ALIASES: dict[str, list[Selector]] = _alias_table()


def canonical_name(word: str) -> Optional[str]:
    """The catalog name a whole-key alias stands for (None for unknown or component aliases)."""
    sels = ALIASES.get(word)
    if not sels or any(s.component is not None for s in sels):
        return None
    return sels[0].name


def resolve(word: str) -> list[Selector]:
    """Resolve one selector word: a name or alias, ``phi:FIELD``, ``source:FIELD`` or ``KEY.COMPONENT``.

    Raises KeyError with a message listing near names when nothing matches.
    """
    word = word.strip()
    if word.startswith("source:"):
        field = word[7:]
        if lookup("source", field) is None:
            raise KeyError(f"unknown per-source field {field!r}; fields: {', '.join(catalog.SOURCE_FIELDS)}")
        return [Selector(word, field, "source")]
    if word.startswith("phi:"):
        field = word[4:]
        if lookup("phi", field) is None:
            raise KeyError(f"unknown φ-line field {field!r}; fields: {', '.join(catalog.PHI_FIELDS)}")
        return [Selector(word, field, "phi")]
    if word in ALIASES:
        return [Selector(word, s.name, s.kind, s.component) for s in ALIASES[word]]
    if "." in word:
        base, comp = word.rsplit(".", 1)
        name = canonical_name(base)
        if name is not None:
            key = next(k for k in catalog.KEYS if k.name == name)
            if comp in key.components:
                return [Selector(word, name, key.kind, key.components.index(comp))]
            if comp.isdigit():
                return [Selector(word, name, key.kind, int(comp))]
            raise KeyError(f"key {name!r} has no component {comp!r}"
                           + (f"; components: {', '.join(key.components)}" if key.components else ""))
    hint = did_you_mean(word, ALIASES, n=8) or "; `nbparity keys` lists them all"
    raise KeyError(f"unknown trace key {word!r}{hint}")


def resolve_all(words: Iterable[str]) -> list[Selector]:
    out: list[Selector] = []
    for w in words:
        if w.strip():
            out.extend(resolve(w))
    return out
