"""Recording pins (``manifest_sha256``): which ones an import changes, and saying so.

A pin is what makes a re-recorded reference visible: a run against a recording whose case.json
no longer has the pinned sha256 stops with "stale reference". Re-importing moves a pin only for
the recordings named on the command line (all of them when none is named), and every pin it
moves is listed old -> new, so a changed recording is never accepted silently.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Optional

#: recording name -> (parsed case.json, sha256 of its bytes)
Manifests = dict[str, tuple[dict[str, Any], str]]

_PIN = re.compile(r'^(recording\s*=\s*"(?P<rec>[^"]+)"\s*\n(?:[^\[\n]*\n)*?manifest_sha256\s*=\s*")'
                  r'(?P<sha>[0-9a-f]{64})"', re.M)


@dataclass(frozen=True)
class PinChange:
    """One reference whose pin an import moves (old is None for a new reference)."""

    case: str
    mode: str
    recording: str
    old: Optional[str]
    new: str

    def __str__(self) -> str:
        return f"{self.case} [{self.mode}] {self.recording}: {self.old or '(none)'} -> {self.new}"


def _pins(text: Optional[str]) -> dict[str, tuple[Optional[str], Optional[str]]]:
    """mode -> (recording, manifest_sha256) of a case file's references (empty if unreadable)."""
    if text is None:
        return {}
    try:
        refs = tomllib.loads(text).get("references") or {}
    except tomllib.TOMLDecodeError:
        return {}
    return {str(m): (r.get("recording"), r.get("manifest_sha256")) for m, r in refs.items() if isinstance(r, dict)}


def changes(case: str, old_text: Optional[str], new_text: str) -> tuple[PinChange, ...]:
    """The pins that differ between a case file's old and new text."""
    before = _pins(old_text)
    out = []
    for mode, (rec, sha) in _pins(new_text).items():
        old_rec, old_sha = before.get(mode, (None, None))
        if rec is not None and sha is not None and (old_sha != sha or old_rec != rec):
            out.append(PinChange(case, mode, rec, old_sha if old_rec == rec else None, sha))
    return tuple(out)


def keep_unnamed(existing: dict[str, Any], fresh: dict[str, Any], wanted: Collection[str]) -> None:
    """In ``fresh`` (an entry about to be merged over ``existing``), put back the old pin of every
    reference whose recording was not named: importing one recording never re-pins another."""
    old_refs = existing.get("references") or {}
    for mode, ref in fresh.get("references", {}).items():
        old = old_refs.get(mode) or {}
        if ref.get("recording") not in wanted and old.get("recording") == ref.get("recording") \
                and old.get("manifest_sha256"):
            ref["manifest_sha256"] = old["manifest_sha256"]


def refresh_text(text: str, manifests: Manifests, wanted: Collection[str]) -> tuple[str, list[str]]:
    """A hand-written case file's text with the pins of the named recordings refreshed, and the
    recordings it refers to among them."""
    used: list[str] = []

    def swap(m: re.Match) -> str:
        rec = m.group("rec")
        if rec in manifests and rec in wanted:
            used.append(rec)
            return m.group(1) + manifests[rec][1] + '"'
        return m.group(0)

    return _PIN.sub(swap, text), used


def hand_written(cases_dir: Path, generated: set[Path]) -> list[Path]:
    """Case files no recording is named after (only their pins follow the recordings)."""
    if not cases_dir.is_dir():
        return []
    return [p for p in sorted(cases_dir.glob("*.toml")) if p not in generated and not p.name.startswith(".")]
