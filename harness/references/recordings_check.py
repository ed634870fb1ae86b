"""`nbparity recordings-check FRESH`: a fresh recording set against the reference set, case by case.

Float images bit for bit, trace lines value for value (every stdout line that carries ``TRACE``),
the other stdout lines and stderr line for line (except the two kinds of line the recordings'
README says change from run to run: the ``mmap(...) = 0x...`` heap address and a clock-taken
``seed:``), SMV and PGM outputs byte for byte, and the argv. Each difference is listed with what
differs, so a user learns exactly which recordings went stale and why.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from engine.io import floatimage

#: Lines that differ between two runs of the same binary (see shared/golden/README.md).
VOLATILE = (re.compile(r"mmap\(.*\) = 0x[0-9a-f]+"), re.compile(r"^\s*seed:"))
SIDE_SUFFIXES = (".img", ".pgm")
MAX_LISTED = 3


@dataclass
class CaseCheck:
    name: str
    differences: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences


@dataclass
class Report:
    reference: Path
    fresh: Path
    cases: list[CaseCheck]
    compilers: dict[str, list[str]]

    @property
    def n_different(self) -> int:
        return sum(not c.identical for c in self.cases)


def _manifest(directory: Path) -> Optional[dict[str, Any]]:
    try:
        return json.loads((directory / "case.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _index_names(root: Path) -> list[str]:
    try:
        doc = json.loads((root / "index.json").read_text(encoding="utf-8"))
        return [c["name"] for c in doc.get("cases", [])]
    except (OSError, ValueError, KeyError, TypeError):
        return sorted(p.parent.name for p in (root / "cases").glob("*/case.json"))


def _image(directory: Path, manifest: dict[str, Any]) -> np.ndarray:
    raw = floatimage.read_raw(directory / "floatimage.bin")
    return floatimage.from_bytes(raw, tuple(manifest["detpixels"]), directory / "floatimage.bin")


def compare_images(ref_dir: Path, ref_m: dict, new_dir: Path, new_m: dict) -> Optional[str]:
    """None when bit-identical; otherwise how many pixels differ and by how much."""
    try:
        a, b = _image(ref_dir, ref_m), _image(new_dir, new_m)
    except Exception as e:  # noqa: BLE001 - any unreadable image is a listed difference, not a crash
        return f"float image unreadable: {e}"
    if a.shape != b.shape:
        return f"float image shape {list(b.shape)}, reference {list(a.shape)}"
    if a.tobytes() == b.tobytes():
        return None
    differ = a.view(np.uint32) != b.view(np.uint32)
    delta = np.abs(a.astype(np.float64) - b.astype(np.float64))
    where = np.unravel_index(int(np.nanargmax(np.where(differ, delta, -1.0))), a.shape)
    return (f"float image: {int(differ.sum())} of {a.size} pixels differ, max |Δ| {float(np.nanmax(delta[differ])):.3g} "
            f"at [slow {where[0]}, fast {where[1]}] ({float(a[where]):.9g} → {float(b[where]):.9g})")


def _tokens_equal(x: str, y: str) -> bool:
    if x == y:
        return True
    try:
        return float(x) == float(y)
    except ValueError:
        return False


def _lines_equal(x: str, y: str) -> bool:
    tx, ty = re.split(r"[\s,=;\[\]()]+", x.strip()), re.split(r"[\s,=;\[\]()]+", y.strip())
    return len(tx) == len(ty) and all(_tokens_equal(a, b) for a, b in zip(tx, ty))


def compare_lines(kind: str, ref: list[str], new: list[str]) -> list[str]:
    """The differing lines of two line lists (value for value), at most MAX_LISTED spelled out."""
    out = []
    if len(ref) != len(new):
        out.append(f"{kind}: {len(new)} lines, reference {len(ref)}")
    bad = [(i, a, b) for i, (a, b) in enumerate(zip(ref, new)) if not _lines_equal(a, b)]
    for i, a, b in bad[:MAX_LISTED]:
        out.append(f"{kind} line {i + 1}: {b.strip()[:120]!r}, reference {a.strip()[:120]!r}")
    if len(bad) > MAX_LISTED:
        out.append(f"{kind}: {len(bad) - MAX_LISTED} more differing lines")
    return out


def _split_stdout(path: Path) -> tuple[list[str], list[str]]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return [], []
    trace = [line for line in lines if "TRACE" in line]
    other = [line for line in lines if "TRACE" not in line and not any(v.search(line) for v in VOLATILE)]
    return trace, other


def check_case(name: str, reference: Path, fresh: Path) -> CaseCheck:
    out = CaseCheck(name)
    ref_dir, new_dir = reference / "cases" / name, fresh / "cases" / name
    ref_m, new_m = _manifest(ref_dir), _manifest(new_dir)
    if ref_m is None:
        out.differences.append(f"no reference recording {ref_dir}/case.json")
        return out
    if new_m is None:
        out.differences.append(f"not in the fresh set ({new_dir}/case.json missing)")
        return out
    if list(ref_m.get("argv", [])) != list(new_m.get("argv", [])):
        out.differences.append("argv differs from the reference's (re-import the case or re-record)")
    diff = compare_images(ref_dir, ref_m, new_dir, new_m)
    out.differences += [diff] if diff else []
    out.checked.append("image")
    (ref_trace, ref_other), (new_trace, new_other) = _split_stdout(ref_dir / "c_stdout.log"), \
        _split_stdout(new_dir / "c_stdout.log")
    out.differences += compare_lines("trace", ref_trace, new_trace)
    out.differences += compare_lines("stdout", ref_other, new_other)
    out.checked.append(f"trace ({len(ref_trace)} lines)" if ref_trace else "stdout")
    for side in sorted(p.name for p in ref_dir.iterdir() if p.suffix in SIDE_SUFFIXES):
        got = new_dir / side
        if not got.is_file():
            out.differences.append(f"{side}: missing from the fresh set")
        elif got.read_bytes() != (ref_dir / side).read_bytes():
            out.differences.append(f"{side}: bytes differ")
        out.checked.append(side)
    return out


def _compilers(root: Path, names: list[str]) -> list[str]:
    seen = []
    for n in names:
        m = _manifest(root / "cases" / n) or {}
        c = m.get("compiler") or (m.get("c_source") or {}).get("build", {}).get("compiler", {}).get("version")
        if c and c not in seen:
            seen.append(c)
    return seen


def check(fresh: Path, reference: Path) -> Report:
    names = _index_names(reference)
    extra = [n for n in _index_names(fresh) if n not in names]
    cases = [check_case(n, reference, fresh) for n in names]
    cases += [CaseCheck(n, [f"in the fresh set only (no reference recording {n!r})"]) for n in extra]
    return Report(reference, fresh, cases, {"reference": _compilers(reference, names),
                                            "fresh": _compilers(fresh, names)})
