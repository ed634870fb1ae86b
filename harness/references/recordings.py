"""Recorded C runs in the layout of shared/golden (see its README): loading and verification.

A recording is only a reference while it is exactly what was recorded: its manifest must be
the one the case pins, its argv the case's argv (output paths and -trace_pixel aside), and
every stored file must match the sha256 in the manifest.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from engine.io.floatimage import FloatImageError, from_bytes, read_raw
from harness.model.errors import ReferenceDataError
from harness.model.hashing import sha256_bytes, sha256_file
from harness.registry.cases import Case, Reference, strip_output_flags

_DETPIXELS = re.compile(r"\((\d+)x(\d+) pixels\)")


def detpixels_from_stdout(stdout: str) -> Optional[tuple[int, int]]:
    """(slow, fast) from the C's ``... meters (FASTxSLOW pixels)`` console line."""
    m = _DETPIXELS.search(stdout)
    return (int(m.group(2)), int(m.group(1))) if m else None


@dataclass(frozen=True)
class Recording:
    """One recorded C run: what `load` reads and what `record` writes."""

    name: str
    root: Path          # the recordings' root (argv paths are relative to it)
    directory: Path
    manifest: dict[str, Any]
    manifest_sha256: str

    @property
    def kind(self) -> str:
        return self.manifest.get("reference_kind", "instrumented-c")

    @property
    def argv(self) -> list[str]:
        return list(self.manifest["argv"])

    @property
    def trace_pixel(self) -> Optional[tuple[int, int]]:
        tp = self.manifest.get("trace_pixel")
        return (int(tp[0]), int(tp[1])) if tp else None

    @property
    def float_path(self) -> Path:
        gz = bool(self.manifest.get("floatimage_gzipped"))
        return self.directory / ("floatimage.bin.gz" if gz else "floatimage.bin")


def load(root: Path, name: str) -> Recording:
    directory = root / "cases" / name
    mpath = directory / "case.json"
    if not mpath.is_file():
        raise ReferenceDataError(f"recording {name!r} not found: {mpath} does not exist "
                                 f"(recordings root {root}; set NB_GOLDEN_DIR or --golden-dir)")
    raw = mpath.read_bytes()
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ReferenceDataError(f"corrupt reference: {mpath} is not valid JSON ({e})") from None
    for field in ("argv", "outputs", "floatimage_raw_sha256"):
        if field not in manifest:
            raise ReferenceDataError(f"corrupt reference: {mpath} lacks field {field!r}")
    return Recording(name, root, directory, manifest, sha256_bytes(raw))


def verify(rec: Recording, case: Case, ref: Reference, pixel: tuple[int, int]) -> None:
    """Raise ReferenceDataError unless the recording is the case's reference, unchanged."""
    where = f"recording {rec.name!r} ({rec.directory})"
    if ref.manifest_sha256 and rec.manifest_sha256 != ref.manifest_sha256:
        raise ReferenceDataError(
            f"stale reference: {where} case.json has sha256 {rec.manifest_sha256}, the case pins "
            f"{ref.manifest_sha256}; re-import the recording or update manifest_sha256 in cases/{case.name}.toml")
    rec_argv = strip_output_flags(rec.argv)
    if rec_argv != list(case.argv):
        diff = _first_argv_difference(rec_argv, list(case.argv))
        raise ReferenceDataError(f"stale reference: {where} argv differs from case {case.name!r} argv {diff}")
    if rec.kind != ref.kind:
        raise ReferenceDataError(f"stale reference: {where} is {rec.kind}, the case expects {ref.kind}")
    threads = int(rec.manifest.get("omp_num_threads", 1))
    if threads != case.c_threads:
        raise ReferenceDataError(f"stale reference: {where} ran with OMP_NUM_THREADS={threads}, "
                                 f"the case says c_threads = {case.c_threads}")
    if ref.traced and rec.trace_pixel != tuple(pixel):
        raise ReferenceDataError(
            f"{where} traced pixel {list(rec.trace_pixel) if rec.trace_pixel else None}, not {list(pixel)}: "
            "a recording can only be compared at its own trace pixel (use --live for another pixel)")
    for fname, expected in rec.manifest["outputs"].items():
        fpath = rec.directory / fname
        if not fpath.is_file():
            raise ReferenceDataError(f"corrupt reference: {where} lacks {fname} listed in its manifest")
        got = sha256_file(fpath)
        if got != expected:
            raise ReferenceDataError(f"corrupt reference: {fpath} has sha256 {got}, its manifest says {expected}")


def read_image(rec: Recording) -> np.ndarray:
    try:
        raw = read_raw(rec.float_path)
    except FloatImageError as e:
        raise ReferenceDataError(f"corrupt reference: {e}") from None
    got = sha256_bytes(raw)
    if got != rec.manifest["floatimage_raw_sha256"]:
        raise ReferenceDataError(f"corrupt reference: {rec.float_path} decodes to sha256 {got}, "
                                 f"manifest floatimage_raw_sha256 says {rec.manifest['floatimage_raw_sha256']}")
    shape = tuple(rec.manifest.get("detpixels") or ()) or detpixels_from_stdout(read_stdout(rec))
    if not shape:
        raise ReferenceDataError(f"corrupt reference: no detector size in {rec.directory}/case.json")
    try:
        return from_bytes(raw, (int(shape[0]), int(shape[1])), rec.float_path)
    except FloatImageError as e:
        raise ReferenceDataError(f"corrupt reference: {e}") from None


def read_stdout(rec: Recording) -> str:
    return (rec.directory / "c_stdout.log").read_text(encoding="utf-8", errors="replace")


def _first_argv_difference(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"at position {i}: recorded {x!r}, case {y!r}"
    if len(a) != len(b):
        longer, who = (a, "recorded") if len(a) > len(b) else (b, "case")
        return f"in length: the {who} argv goes on with {longer[min(len(a), len(b)):][:4]}"
    return "(no difference)"
