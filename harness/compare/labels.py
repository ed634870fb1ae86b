"""Label a divergence as a known C defect (engine.config.defects) or as a regression.

A spec-mode run computes what the physics says; against an instrumented-C reference it must
differ exactly where a registered defect predicts. Divergent rows that all fall inside the
signatures of defects that apply to this argv (and, for φ-conditional signatures, to this
trace) are a "known C defect"; anything else is a "regression".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from engine.config import defects as registry
from harness.compare.primitive import Row

REGRESSION = "regression"
_PHI_ENTRY = re.compile(r"^phi:(?P<field>\w+)@(?P<where>zero|any|\d+)$")


@dataclass(frozen=True)
class Label:
    text: str                       # "regression" or "known C defect <id>[, <id>]"
    defect_ids: tuple[str, ...] = ()
    unexplained: tuple[str, ...] = ()  # labels of rows no applicable defect explains

    @property
    def known_defect(self) -> bool:
        return bool(self.defect_ids)


def _zero_tics(rows: Iterable[Row]) -> set[int]:
    """φ steps where the C's phi_deg is exactly 0."""
    return {r.phi_tic for r in rows if r.kind == "phi" and r.key == "phi_deg" and r.c
            and isinstance(r.c[0], (int, float)) and r.c[0] == 0 and r.phi_tic is not None}


def _triggered(defect: registry.CDefect, argv: Sequence[str]) -> bool:
    if any(t in argv for t in defect.blockers):
        return False
    return not defect.triggers or any(t in argv for t in defect.triggers)


def _explains(defect: registry.CDefect, row: Row, zero_tics: set[int]) -> bool:
    for entry in defect.signature:
        m = _PHI_ENTRY.match(entry)
        if m:
            if row.kind != "phi" or row.key != m.group("field"):
                continue
            where = m.group("where")
            if (where == "any" or (where == "zero" and row.phi_tic in zero_tics)
                    or (where.isdigit() and row.phi_tic == int(where))):
                return True
        elif row.kind != "phi" and row.key == entry:
            return True
    return False


def _applies(defect: registry.CDefect, argv: Sequence[str], zero_tics: set[int]) -> bool:
    if not _triggered(defect, argv):
        return False
    # A defect whose signature is conditional on φ = 0 cannot act on a trace without such a step.
    needs_zero = any(_PHI_ENTRY.match(e) and e.endswith("@zero") for e in defect.signature)
    return not needs_zero or bool(zero_tics)


def label(rows: Sequence[Row], argv: Sequence[str], mode: str, reference_traced: bool,
          defects: Optional[Sequence[registry.CDefect]] = None,
          context: Optional[Sequence[Row]] = None) -> Optional[Label]:
    """None when nothing diverges; otherwise the label of the divergence.

    context: the full alignment when ``rows`` is a narrowed selection (φ steps at 0 are read
    from its phi_deg rows).
    """
    bad = [r for r in rows if not r.ok]
    if not bad:
        return None
    if mode != "spec" or not reference_traced:
        # c-parity must match the C bit for bit (defects reproduced); a fixed C has no defects.
        return Label(REGRESSION, (), tuple(r.label for r in bad))
    zero_tics = _zero_tics(context if context is not None else rows)
    applicable = [d for d in (defects if defects is not None else registry.DEFECTS)
                  if _applies(d, argv, zero_tics)]
    for d in applicable:
        if all(_explains(d, r, zero_tics) for r in bad):
            return Label(f"known C defect {d.id}", (d.id,))
    used, unexplained = [], []
    for r in bad:
        hits = [d.id for d in applicable if _explains(d, r, zero_tics)]
        if hits:
            used.extend(h for h in hits if h not in used)
        else:
            unexplained.append(r.label)
    if not unexplained and used:
        return Label("known C defect " + ", ".join(used), tuple(used))
    return Label(REGRESSION, (), tuple(unexplained))


def label_image_only(argv: Sequence[str], mode: str, fixed: Sequence[str],
                     defects: Optional[Sequence[registry.CDefect]] = None) -> Label:
    """Label an image divergence against an image-only (fixed C) reference.

    Without a trace nothing can be matched to a signature, so the label only names the
    registered defects this argv triggers that the reference build has not fixed: spec mode
    corrects them, the reference does not. It stays a regression unless such a defect exists.
    """
    if mode != "spec":
        return Label(REGRESSION)
    unfixed = [d.id for d in (defects if defects is not None else registry.DEFECTS)
               if d.triggers and _triggered(d, argv) and d.id not in fixed]
    if not unfixed:
        return Label(REGRESSION)
    return Label(f"possible known C defect {', '.join(unfixed)} (not fixed in the reference build; "
                 "image only, not verified by a trace)", ())
