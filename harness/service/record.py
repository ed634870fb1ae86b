"""`nbparity record CASE`: run a live C nanoBragg and store the run as a new recording.

The recording has the layout of shared/golden (see its README): ``ROOT/cases/NAME/`` with
case.json (the manifest), c_stdout.log, c_stderr.log and floatimage.bin (gzipped as
floatimage.bin.gz when over 2 MB), plus the inputs under ``ROOT/inputs`` and an entry in
``ROOT/index.json``. The C runs through the process driver in a fresh directory (so no stale
Fdump.bin is read) with the argv written relative to the output root, exactly as stored.

All or nothing: index.json is read before the C runs (a corrupt one stops here, exit 2); the
run must exit 0, write a whole non-NaN image and, for a traced reference, a complete trace;
the recording is staged beside its final place and renamed in together with the new index.
Any failure, Ctrl-C or SIGTERM leaves the root as it was. A recording is never overwritten
unless asked (--force).
"""
from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from harness.model.errors import ReferenceDataError, RunnerFailure, UsageError
from harness.model.hashing import sha256_bytes, sha256_file
from harness.references.recordings import Recording
from harness.report.evidence import pid_alive
from harness.registry.cases import SLUG, Case
from harness.runners import inputs, process
from harness.runners.base import check_image
from harness.runners.c import checked_binary, read_c_image, trace_state

GZIP_OVER_BYTES = 2 * 1024 * 1024
#: The SMV/PGM output flags a recording may keep, and the file each writes (the C's default name).
SIDE_OUTPUT_FLAGS = {"-intfile": "intimage.img", "-noisefile": "noiseimage.img", "-pgmfile": "image.pgm"}


def record(case: Case, *, binary: Path, out_root: Path, source_root: Path, name: Optional[str] = None,
           kind: str = "instrumented-c", pixel: Optional[tuple[int, int]] = None, force: bool = False,
           timeout_s: Optional[float] = None, derived_from: Optional[str] = None,
           c_source: Optional[dict[str, Any]] = None, outputs: Sequence[str] = ()) -> Recording:
    """Run ``binary`` on the case's argv and store the run under ``out_root/cases/<name>``.

    ``outputs``: SMV/PGM flags (-intfile, -noisefile, -pgmfile) whose files the recording keeps."""
    name = name or case.name
    if not SLUG.match(name):
        raise UsageError(f"recording name {name!r} is not a slug (letters, digits, _ and -)")
    traced = kind == "instrumented-c"
    pixel = tuple(pixel or case.trace_pixels[0]) if traced else None
    binary = checked_binary(Path(binary), kind)
    out_root = Path(out_root)
    target = out_root / "cases" / name
    if target.exists() and not force:
        raise UsageError(f"recording {target} exists; pass --force to replace it (the case pins the old one "
                         "by its sha256 until re-imported)")
    index = read_index(out_root)  # a corrupt index stops the recording before anything runs
    sources = inputs.resolve(case, source_root)
    rel_float = f"cases/{name}/floatimage.bin"
    side = [tok for flag in outputs for tok in (flag, f"cases/{name}/{SIDE_OUTPUT_FLAGS[flag]}")]
    argv = inputs.with_outputs(case.argv, rel_float, pixel, side)
    env, pinned = process.pinned_env(case.c_threads)
    with process.private_workdir(f"record-{name}") as work:
        inputs.stage(sources, work, copy=True)
        (work / "cases" / name).mkdir(parents=True)
        before = {p.relative_to(work).as_posix() for p in work.rglob("*")}
        done = process.run([str(binary), *argv], cwd=work, env=env, timeout_s=timeout_s or case.timeout_s)
        image, raw = _checked_run(done, work / rel_float, pixel, timeout_s or case.timeout_s)
        kept = _kept_outputs(argv, work)
        recorded = before | {rel_float} | {p.relative_to(work).as_posix() for p in kept.values()}
        side = sorted(p.relative_to(work).as_posix() for p in work.rglob("*")
                      if p.is_file() and p.relative_to(work).as_posix() not in recorded)
        run = {"argv": argv, "pixel": pixel, "shape": image.shape, "raw": raw, "image": image, "side": side,
               "runtime": done.wall_s, "exit_code": done.exit_code, "pinned": pinned, "binary": binary}
        with _staging(out_root, name) as stage:
            _write_files(stage, done, raw, kept)
            manifest = _manifest(case, name, kind, run, stage, derived_from, c_source)
            data = (json.dumps(manifest, indent=1) + "\n").encode()
            (stage / "case.json").write_bytes(data)
            _commit(out_root, stage, target, index, manifest, sources)
    return Recording(name, out_root, target, manifest, sha256_bytes(data))


def _checked_run(done: process.Finished, fpath: Path, pixel: Optional[tuple[int, int]],
                 timeout_s: float) -> tuple[np.ndarray, bytes]:
    """The image (and its raw bytes) of a run fit to be recorded, or a one-line RunnerFailure."""
    if done.timed_out:
        raise RunnerFailure(f"C timed out after {timeout_s:g} s; nothing recorded")
    if done.exit_code != 0:
        raise RunnerFailure(f"{process.fail('C', done).message}; nothing recorded")
    try:
        image = read_c_image(done.stdout_text, fpath)
    except RunnerFailure as e:
        raise RunnerFailure(f"{e.message}; nothing recorded") from None
    bad = check_image(image, "C")
    if bad:
        raise RunnerFailure(bad + "; nothing recorded")
    if pixel is not None:
        printed, missing = trace_state(done.stdout_text)
        if not printed or missing:
            raise RunnerFailure(f"C trace of pixel {list(pixel)} lacks {', '.join(missing) or 'every TRACE_C line'} "
                                "(a binary without trace support, or the pixel is masked); nothing recorded")
    return image, fpath.read_bytes()


def _kept_outputs(argv: Sequence[str], work: Path) -> dict[str, Path]:
    kept = {}
    for flag in SIDE_OUTPUT_FLAGS:
        if flag in argv:
            rel = argv[list(argv).index(flag) + 1]
            kept[Path(rel).name] = work / rel
    return kept


class _staging:
    """``ROOT/cases/.record-NAME-PID-…``: removed unless it was renamed into place."""

    def __init__(self, out_root: Path, name: str):
        (out_root / "cases").mkdir(parents=True, exist_ok=True)
        _sweep_stale(out_root / "cases")
        self.path = Path(tempfile.mkdtemp(prefix=f".record-{name}-{os.getpid()}-", dir=out_root / "cases"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.path, 0o777 & ~umask)  # mkdtemp's 0700 would make the recording private

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _sweep_stale(cases: Path) -> None:
    """Staging of a `record` that was SIGKILLed (``.record-NAME-PID-…`` with PID gone): remove it."""
    for p in cases.glob(".record-*"):
        pid = p.name.rsplit("-", 2)[-2] if p.name.count("-") >= 3 else ""
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _write_files(stage: Path, done: process.Finished, raw: bytes, kept: dict[str, Path]) -> None:
    (stage / "c_stdout.log").write_bytes(done.stdout)
    (stage / "c_stderr.log").write_bytes(done.stderr)
    if len(raw) > GZIP_OVER_BYTES:
        with open(stage / "floatimage.bin.gz", "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as z:
            z.write(raw)
    else:
        (stage / "floatimage.bin").write_bytes(raw)
    for fname, src in kept.items():
        if src.is_file():
            shutil.copy2(src, stage / fname)


def _trace_keys(stdout: str) -> tuple[list[str], list[str], int]:
    pixel, setup, phi = set(), set(), 0
    for line in stdout.splitlines():
        if line.startswith("TRACE_C: "):
            pixel.add(line[len("TRACE_C: "):].split(" ", 1)[0])
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


def _manifest(case: Case, name: str, kind: str, run: dict[str, Any], stage: Path,
              derived_from: Optional[str], c_source: Optional[dict[str, Any]]) -> dict[str, Any]:
    stdout = (stage / "c_stdout.log").read_text(encoding="utf-8", errors="replace")
    pix_keys, setup_keys, phi_lines = _trace_keys(stdout)
    gz = (stage / "floatimage.bin.gz").is_file()
    return {
        "name": name, "description": case.description, "argv": run["argv"], "inputs": list(case.inputs),
        "trace_pixel": list(run["pixel"]) if run["pixel"] else None,
        "trace_pixel_order": "[slow, fast] = the two arguments of -trace_pixel, in order",
        "detpixels": [int(run["shape"][0]), int(run["shape"][1])],
        "omp_num_threads": case.c_threads, "reference_kind": kind,
        **({"derived_from": derived_from} if derived_from else {}),
        "c_source": c_source or {"note": "recorded with `nbparity record`; the C source is not known to it"},
        "c_binary_sha256_informational": sha256_file(run["binary"]),
        "recorded_with": {"tool": "nbparity record", "host": platform.node(), "platform": platform.platform(),
                          "utc": datetime.now(timezone.utc).isoformat(), "binary": str(run["binary"]),
                          "env": run["pinned"]},
        "runtime_s": round(run["runtime"], 4), "exit_code": run["exit_code"],
        "side_outputs_discarded": run["side"],
        "floatimage_raw_sha256": sha256_bytes(run["raw"]), "floatimage_stats": _stats(run["image"]),
        "floatimage_gzipped": gz,
        "outputs": {p.name: sha256_file(p) for p in sorted(stage.iterdir()) if p.name != "case.json"},
        "trace_c_keys_present": pix_keys, "trace_c_setup_keys_present": setup_keys, "trace_c_phi_lines": phi_lines,
    }


def read_index(root: Path) -> dict[str, Any]:
    """ROOT/index.json (a fresh one when absent); a corrupt one is a one-line error, exit 2."""
    path = root / "index.json"
    if not path.is_file():
        return {"format": "see README.md (the shared/golden layout)", "detpixels_order": "[slow, fast]",
                "trace_pixel_order": "[slow, fast]", "cases": []}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReferenceDataError(f"{path} is not valid JSON ({e}); fix it or move it away (nothing recorded)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cases", []), list):
        raise ReferenceDataError(f"{path}: expected an object with a 'cases' list; fix it or move it away "
                                 "(nothing recorded)")
    return doc


def _with_entry(doc: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    entry = {"name": manifest["name"], "description": manifest["description"], "detpixels": manifest["detpixels"],
             "trace_pixel": manifest["trace_pixel"], "runtime_s": manifest["runtime_s"],
             "floatimage": "floatimage.bin.gz" if manifest["floatimage_gzipped"] else "floatimage.bin",
             "exit_code": manifest["exit_code"], "reference_kind": manifest["reference_kind"],
             "omp_num_threads": manifest["omp_num_threads"]}
    cases = [c for c in doc.get("cases", []) if c.get("name") != manifest["name"]] + [entry]
    return {**doc, "cases": sorted(cases, key=lambda c: c["name"]), "n_cases": len(cases)}


def _commit(root: Path, stage: Path, target: Path, index: dict[str, Any], manifest: dict[str, Any],
            sources: dict[str, Path]) -> None:
    """Inputs, recording and index go in together; a failure on the way takes them all back."""
    tmp_index = root / f".index.json.{os.getpid()}.tmp"
    tmp_index.write_text(json.dumps(_with_entry(index, manifest), indent=1) + "\n", encoding="utf-8")
    added: list[Path] = []
    old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
    try:
        for rel, src in sources.items():  # the recording root must hold what its argv reads
            dst = root / rel
            if not dst.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                part = dst.with_name(f".{dst.name}.{os.getpid()}.part")
                shutil.copy2(src, part)
                os.replace(part, dst)
                added.append(dst)
        if target.exists():
            os.rename(target, old)
        os.rename(stage, target)
        try:
            tmp_index.replace(root / "index.json")
        except BaseException:
            os.rename(target, stage)
            raise
    except BaseException:
        if old.exists():
            os.rename(old, target)
        for p in added:
            p.unlink(missing_ok=True)
        raise
    finally:
        tmp_index.unlink(missing_ok=True)
    shutil.rmtree(old, ignore_errors=True)
