"""`nbparity record CASE`: run a live C nanoBragg and store the run as a new recording.

The recording has the layout of shared/golden (see its README): ``ROOT/cases/NAME/`` with
case.json (the manifest), c_stdout.log, c_stderr.log and floatimage.bin (gzipped as
floatimage.bin.gz when over 2 MB), plus the inputs under ``ROOT/inputs`` and an entry in
``ROOT/index.json``. The C runs in a fresh directory (so no stale Fdump.bin is read) with the
argv written relative to the output root, exactly as the stored argv says.

A recording is never overwritten unless asked (--force); the run that makes it must exit 0,
write a non-NaN image and, for a traced reference, print a complete trace.
"""
from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np

from harness.references import floatimage
from harness.compare import traces
from harness.registry.cases import SLUG, Case
from harness.model.errors import InputError, RunnerFailure, UsageError
from harness.runners.base import check_image, sha256_bytes, sha256_file
from harness.runners.c import _kill_group, pinned_env

GZIP_OVER_BYTES = 2 * 1024 * 1024
DEFAULT_SIDE_OUTPUTS = ("Fdump.bin", "intimage.img", "image.pgm", "noiseimage.img")


@dataclass(frozen=True)
class Recorded:
    name: str
    directory: Path
    manifest: dict[str, Any]
    manifest_sha256: str


def _trace_keys(stdout: str) -> tuple[list[str], list[str], int]:
    pixel, setup, phi = set(), set(), 0
    for line in stdout.splitlines():
        if line.startswith("TRACE_C: "):
            key = line[len("TRACE_C: "):].split(" ", 1)[0]
            pixel.add(key)
        elif line.startswith("TRACE_C:") and "=" in line:
            setup.add(line[len("TRACE_C:"):].split("=", 1)[0].strip())
        elif line.startswith("TRACE_C_PHI"):
            phi += 1
    return sorted(pixel), sorted(setup), phi


def _stats(img: np.ndarray) -> dict[str, Any]:
    v = img.astype(np.float64)
    flat = int(np.nanargmax(v)) if v.size and not np.isnan(v).all() else 0
    s, f = np.unravel_index(flat, img.shape)
    return {"n": int(v.size), "sum": float(np.nansum(v)), "max": float(np.nanmax(v)), "min": float(np.nanmin(v)),
            "nonzero": int(np.count_nonzero(v)), "argmax_slow_fast": [int(s), int(f)]}


def record(case: Case, *, binary: Path, out_root: Path, source_root: Path, name: Optional[str] = None,
           kind: str = "instrumented-c", pixel: Optional[tuple[int, int]] = None, force: bool = False,
           timeout_s: Optional[float] = None, derived_from: Optional[str] = None,
           c_source: Optional[dict[str, Any]] = None) -> Recorded:
    """Run ``binary`` on the case's argv and store the run under ``out_root/cases/<name>``."""
    name = name or case.name
    if not SLUG.match(name):
        raise UsageError(f"recording name {name!r} is not a slug (letters, digits, _ and -)")
    traced = kind == "instrumented-c"
    pixel = tuple(pixel or case.trace_pixels[0]) if traced else None
    binary = Path(binary)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise RunnerFailure(f"C binary {binary} is missing or not executable (pass --c-bin or set NB_C_BIN)")
    out_root = Path(out_root)
    target = out_root / "cases" / name
    if target.exists() and not force:
        raise UsageError(f"recording {target} exists; pass --force to replace it (the case pins the old one "
                         "by its sha256 until re-imported)")
    for rel in case.inputs:
        if not (source_root / rel).is_file():
            raise InputError(f"case {case.name}: input {rel!r} not found at {source_root / rel}")

    rel_float = f"cases/{name}/floatimage.bin"
    argv = [*case.argv, "-floatfile", rel_float]
    if traced:
        argv += ["-trace_pixel", str(pixel[0]), str(pixel[1])]
    env, pinned = pinned_env(case.c_threads)
    work = Path(tempfile.mkdtemp(prefix=f"nbparity-record-{name}-"))
    try:
        for rel in case.inputs:
            dst = work / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source_root / rel, dst)
        (work / "cases" / name).mkdir(parents=True)
        before = {p.relative_to(work).as_posix() for p in work.rglob("*")}
        t0 = time.monotonic()
        proc = subprocess.Popen([str(binary.resolve()), *argv], cwd=work, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out_b, err_b = proc.communicate(timeout=timeout_s or case.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise RunnerFailure(f"C timed out after {timeout_s or case.timeout_s:g} s; nothing recorded") from None
        runtime = time.monotonic() - t0
        stdout = out_b.decode("utf-8", errors="replace")
        stderr = err_b.decode("utf-8", errors="replace")
        if proc.returncode != 0:
            raise RunnerFailure(f"C exited with code {proc.returncode}; nothing recorded "
                                f"(last stderr line: {stderr.strip().splitlines()[-1] if stderr.strip() else '—'})")
        fpath = work / rel_float
        if not fpath.is_file():
            raise RunnerFailure(f"C wrote no float image at {rel_float}; nothing recorded")
        raw = fpath.read_bytes()
        shape = floatimage.detpixels_from_stdout(stdout)
        if not shape:
            raise RunnerFailure("C stdout has no detector size line ('(FASTxSLOW pixels)'); nothing recorded")
        image = floatimage.from_bytes(raw, shape)
        bad = check_image(image, "C")
        if bad:
            raise RunnerFailure(bad + "; nothing recorded")
        if traced:
            missing = traces.missing_required(traces.parse(stdout, "C"))
            if missing:
                raise RunnerFailure(f"C trace of pixel {list(pixel)} lacks {', '.join(missing)} (a binary without "
                                    "trace support, or the pixel is masked); nothing recorded")
        side = sorted(p.relative_to(work).as_posix() for p in work.rglob("*")
                      if p.is_file() and p.relative_to(work).as_posix() not in before
                      and p.relative_to(work).as_posix() != rel_float)
        kept_outputs = {}
        for flag in ("-intfile", "-noisefile", "-pgmfile"):
            if flag in case.argv:
                rel = case.argv[case.argv.index(flag) + 1]
                kept_outputs[Path(rel).name] = work / rel

        # stage the recording next to its final place, then rename it in
        out_root.mkdir(parents=True, exist_ok=True)
        (out_root / "cases").mkdir(exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".record-{name}-", dir=out_root / "cases"))
        (stage / "c_stdout.log").write_bytes(out_b)
        (stage / "c_stderr.log").write_bytes(err_b)
        gz = len(raw) > GZIP_OVER_BYTES
        if gz:
            with open(stage / "floatimage.bin.gz", "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as z:
                z.write(raw)
        else:
            (stage / "floatimage.bin").write_bytes(raw)
        for fname, src in kept_outputs.items():
            if src.is_file():
                shutil.copy2(src, stage / fname)
        outputs = {p.name: sha256_file(p) for p in sorted(stage.iterdir()) if p.name != "case.json"}
        pix_keys, setup_keys, phi_lines = _trace_keys(stdout)
        manifest: dict[str, Any] = {
            "name": name,
            "description": case.description,
            "argv": argv,
            "inputs": list(case.inputs),
            "trace_pixel": list(pixel) if pixel else None,
            "trace_pixel_order": "[slow, fast] = the two arguments of -trace_pixel, in order",
            "detpixels": [int(shape[0]), int(shape[1])],
            "omp_num_threads": case.c_threads,
            "reference_kind": kind,
            **({"derived_from": derived_from} if derived_from else {}),
            "c_source": c_source or {"note": "recorded with `nbparity record`; the C source is not known to it"},
            "c_binary_sha256_informational": sha256_file(binary),
            "recorded_with": {"tool": "nbparity record", "host": platform.node(), "platform": platform.platform(),
                              "utc": datetime.now(timezone.utc).isoformat(), "binary": str(binary),
                              "env": pinned},
            "runtime_s": round(runtime, 4),
            "exit_code": proc.returncode,
            "side_outputs_discarded": side,
            "floatimage_raw_sha256": sha256_bytes(raw),
            "floatimage_stats": _stats(image),
            "floatimage_gzipped": gz,
            "outputs": outputs,
            "trace_c_keys_present": pix_keys,
            "trace_c_setup_keys_present": setup_keys,
            "trace_c_phi_lines": phi_lines,
        }
        data = (json.dumps(manifest, indent=1) + "\n").encode()
        (stage / "case.json").write_bytes(data)
        for rel in case.inputs:  # the recording root must hold what its argv reads
            dst = out_root / rel
            if not dst.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source_root / rel, dst)
        if target.exists():
            old = target.with_name(f".{name}.replaced-{os.getpid()}")
            os.rename(target, old)
            os.rename(stage, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(stage, target)
        _update_index(out_root, manifest, runtime)
        return Recorded(name, target, manifest, sha256_bytes(data))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _update_index(root: Path, manifest: dict[str, Any], runtime: float) -> None:
    path = root / "index.json"
    doc: dict[str, Any]
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
    else:
        doc = {"format": "see README.md (the shared/golden layout)", "detpixels_order": "[slow, fast]",
               "trace_pixel_order": "[slow, fast]", "cases": []}
    entry = {"name": manifest["name"], "description": manifest["description"], "detpixels": manifest["detpixels"],
             "trace_pixel": manifest["trace_pixel"], "runtime_s": round(runtime, 4),
             "floatimage": "floatimage.bin.gz" if manifest["floatimage_gzipped"] else "floatimage.bin",
             "exit_code": manifest["exit_code"], "reference_kind": manifest["reference_kind"],
             "omp_num_threads": manifest["omp_num_threads"]}
    cases = [c for c in doc.get("cases", []) if c.get("name") != manifest["name"]] + [entry]
    doc["cases"] = sorted(cases, key=lambda c: c["name"])
    doc["n_cases"] = len(doc["cases"])
    tmp = path.with_name(".index.json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
