"""`nbparity record --all --out DIR`: every recording the registry names, regenerated from the live C.

The result has the layout of shared/golden (index.json, inputs/, cases/<name>/ with case.json):
each instrumented-C reference is recorded with the instrumented binary at the case's trace
pixel, each fixed-C reference (``<base>__cfixed``) with ``nanoBragg_fixed``, image only. The
binaries' provenance (golden_bin/<binary>.provenance.json, written by `nbparity build-c`) goes
into each case.json as ``c_source``.

All or nothing: the set is written into a staging folder beside DIR and renamed into place only
when every case recorded, so DIR is never left half-written.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from harness.model.errors import UsageError
from harness.references import c_build
from harness.service import record as recorder
from harness.registry.cases import Case, Registry
from harness.registry.importer import OUTPUT_TAGS
from harness.runners.choose import find_binary

Log = Callable[[str], None]


@dataclass(frozen=True)
class Planned:
    """One recording to make: its name, the case whose argv it runs, and the kind of C."""

    name: str
    case: Case
    kind: str


@dataclass(frozen=True)
class Summary:
    root: Path
    names: tuple[str, ...]
    seconds: float


def plan(cases: list[Case]) -> list[Planned]:
    """One entry per recording name the registry pins (a name two cases share is recorded once)."""
    seen: dict[str, Planned] = {}
    for case in sorted(cases, key=lambda c: c.name):
        for ref in case.references.values():
            if ref.recording is None:
                continue
            prior = seen.get(ref.recording)
            if prior is not None and (prior.case.argv != case.argv or prior.kind != ref.kind):
                raise UsageError(f"recording {ref.recording!r} is named by cases {prior.case.name!r} and "
                                 f"{case.name!r} with different argv or kind; fix one of cases/*.toml")
            # The case that owns the recording (same name, or NAME__cfixed) records it: its trace
            # pixel is used, and a fixed-C recording is derived from it.
            if prior is None or ref.recording in (case.name, f"{case.name}__cfixed"):
                seen[ref.recording] = Planned(ref.recording, case, ref.kind)
    return sorted(seen.values(), key=lambda p: p.name)


def output_flags(case: Case) -> tuple[str, ...]:
    """The SMV/PGM output flags the recording had (the import turned each into a tag)."""
    return tuple(flag for flag, tag in OUTPUT_TAGS.items() if tag in case.tags)


def binaries() -> dict[str, Path]:
    """The live binary of each kind (NB_C_BIN / NB_C_FIXED_BIN, then golden_bin/)."""
    found = {}
    for kind in ("instrumented-c", "fixed-c"):
        path = find_binary(kind)
        if path is None or not path.is_file():
            raise UsageError(f"no {kind} binary ({path or 'golden_bin/'} missing): run `make c` "
                             "(or set NB_C_BIN / NB_C_FIXED_BIN)")
        found[kind] = path
    return found


def c_source(binary: Path) -> Optional[dict[str, Any]]:
    """What case.json says about the C that made a recording: the binary's build provenance."""
    prov = c_build.read_provenance(binary)
    if not prov:
        return None
    main = (prov.get("sources") or [{}])[0]
    out = {k: main.get(k) for k in ("repo", "commit", "path")}
    out["sha256"] = prov.get("source_sha256")
    if prov.get("merge"):
        out["commits"] = {s.get("role"): s.get("commit") for s in prov["sources"]}
        out["merge_note"] = f"git merge-file, branches in order {prov['merge'].get('order')}"
    out["build"] = {k: prov.get(k) for k in ("compiler", "flags", "ldlibs", "compile_command", "binary_sha256")}
    return out


def inputs_root(golden: Optional[Path], bin_dir: Path) -> Path:
    """Where the inputs are read: the recordings' own inputs/ when present, else golden_bin/inputs."""
    for root in ((golden,) if golden else ()) + (bin_dir,):
        if (root / "inputs").is_dir():
            return root
    raise UsageError(f"no input files: neither {golden}/inputs nor {bin_dir}/inputs exists; run `make c` "
                     "(it puts the recordings' inputs into golden_bin/inputs) or set NB_GOLDEN_DIR")


def record_all(out: Path, cases_dir: Path, *, golden: Optional[Path], bin_dir: Path, force: bool = False,
               only: Optional[list[str]] = None, log: Log = lambda m: None) -> Summary:
    """Record every planned recording into ``out`` (see the module doc)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise UsageError(f"{out} exists and is not empty; pass --force to replace it, or choose another --out")
    cases, errors = Registry(cases_dir).load_all()
    if errors:
        raise UsageError(f"{len(errors)} case file(s) do not load, first: {errors[0].message}")
    todo = [p for p in plan(cases) if not only or p.name in only]
    if only and len(todo) != len(set(only)):
        missing = sorted(set(only) - {p.name for p in todo})
        raise UsageError(f"no case names the recording(s) {', '.join(missing)} (`nbparity list` shows the cases)")
    bins = binaries()
    source_root = inputs_root(golden, bin_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    t0 = time.monotonic()
    try:
        shutil.copytree(source_root / "inputs", stage / "inputs")
        for i, p in enumerate(todo, 1):
            t = time.monotonic()
            recorder.record(p.case, binary=bins[p.kind], out_root=stage, source_root=source_root, name=p.name,
                            kind=p.kind, derived_from=p.case.name if p.kind == "fixed-c" else None,
                            c_source=c_source(bins[p.kind]), outputs=output_flags(p.case))
            log(f"[{i}/{len(todo)}] {p.name} ({p.kind}) {time.monotonic() - t:.2f} s")
        _swap_in(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return Summary(out, tuple(p.name for p in todo), time.monotonic() - t0)


def _swap_in(stage: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        os.rename(out, old)
        os.rename(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(stage, out)
