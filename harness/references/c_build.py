"""`nbparity build-c` (`make c`): the three reference binaries, built from pinned sources.

golden_bin/nanoBragg           hoidn's instrumented C (traces)        -DTRACING=1
golden_bin/nanoBragg_upstream  bl831 main (image only)
golden_bin/nanoBragg_fixed     bl831 main three-way merged with two fix branches (image only)

Every source is checked against its sha256 before anything is compiled, so a wrong file means
no binary at all. Each binary gets ``<binary>.provenance.json`` beside it (sources, commits,
sha256s, compiler, flags); a binary whose provenance still matches its pin, flags and compiler
is kept, so `make c` is cheap the second time. Binaries and provenance are written to a staging
folder first and renamed in, so golden_bin/ never holds a half-built binary.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from harness.model.errors import RunnerFailure, UsageError
from harness.model.hashing import sha256_bytes, sha256_file
from harness.references import c_sources as src
from harness.references.c_sources import PinnedFile, Store

CFLAGS = ("-O2", "-fno-fast-math", "-ffp-contract=off")
OPENMP = "-fopenmp"
TRACING = "-DTRACING=1"
LDLIBS = ("-lm",)
PROVENANCE_SUFFIX = ".provenance.json"
COMPILE_TIMEOUT_S = 600


@dataclass(frozen=True)
class Target:
    """One binary: its source (possibly a three-way merge) and its preprocessor defines."""

    binary: str
    kind: str
    source: PinnedFile
    defines: tuple[str, ...] = ()
    base: Optional[PinnedFile] = None
    branches: tuple[PinnedFile, ...] = ()
    merged_sha256: Optional[str] = None

    @property
    def pins(self) -> tuple[PinnedFile, ...]:
        return (self.source, *((self.base,) if self.base else ()), *self.branches)

    @property
    def source_sha256(self) -> str:
        return self.merged_sha256 or self.source.sha256

    @property
    def flags(self) -> tuple[str, ...]:
        return (*CFLAGS, *self.defines, OPENMP)


TARGETS: tuple[Target, ...] = (
    Target("nanoBragg", "instrumented-c", src.INSTRUMENTED, defines=(TRACING,)),
    Target("nanoBragg_upstream", "upstream-c", src.UPSTREAM),
    Target("nanoBragg_fixed", "fixed-c", src.UPSTREAM, base=src.FIX_BASE_FILE,
           branches=(src.FIX_PHI0_FILE, src.FIX_OVERSAMPLE_FILE),
           merged_sha256="1d87a3d3b893395a350c1f60c7055c093732bef2071bf6f4036e374bbe96a5d9"),
)


@dataclass(frozen=True)
class Compiler:
    command: str
    path: str
    version: str


@dataclass
class Built:
    target: Target
    path: Path
    provenance: dict[str, Any]
    rebuilt: bool
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- compiler


def find_compiler(cc: Optional[str] = None) -> Compiler:
    """``cc``, then $CC, then gcc; one line naming what to install when it is not there."""
    command = cc or os.environ.get("CC") or "gcc"
    path = shutil.which(command)
    if path is None:
        raise UsageError(f"no C compiler: {command!r} is not on PATH; install gcc (Debian/Ubuntu: "
                         "apt-get install gcc; macOS: brew install gcc) or set CC")
    try:
        p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"C compiler {path} does not run ({e}); reinstall it or set CC") from None
    version = (p.stdout.strip().splitlines() or ["unknown"])[0]
    return Compiler(command, path, version)


_OPENMP_PROBE = b"#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def check_openmp(compiler: Compiler, workdir: Path) -> None:
    """The references are built with -fopenmp: a compiler without OpenMP is refused up front."""
    probe = workdir / "openmp_probe.c"
    probe.write_bytes(_OPENMP_PROBE)
    p = _run([compiler.path, OPENMP, "-o", str(workdir / "openmp_probe"), str(probe)], workdir)
    if p.returncode != 0:
        why = (p.stderr.strip().splitlines() or ["no message"])[-1]
        raise UsageError(f"{compiler.command} cannot build OpenMP programs ({OPENMP} failed: {why}); install "
                         "OpenMP support (Debian/Ubuntu: apt-get install gcc libgomp1; clang: libomp-dev)")


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S,
                              check=False)
    except OSError as e:
        raise RunnerFailure(f"cannot run {argv[0]}: {e}") from None
    except subprocess.TimeoutExpired:
        raise RunnerFailure(f"{argv[0]} took longer than {COMPILE_TIMEOUT_S} s; nothing was built") from None


# ---------------------------------------------------------------- merge


def merge_file(ours: bytes, base: bytes, theirs: bytes, workdir: Path) -> Optional[bytes]:
    """``git merge-file -p ours base theirs``; None when the merge has conflicts."""
    names = []
    for label, data in (("ours", ours), ("base", base), ("theirs", theirs)):
        path = workdir / f"merge_{label}.c"
        path.write_bytes(data)
        names.append(str(path))
    try:
        p = subprocess.run(["git", "merge-file", "-p", "--quiet", *names], capture_output=True, timeout=120,
                           check=False)
    except FileNotFoundError:
        raise UsageError("git is not on PATH; install git (the fixed C is a three-way merge made with "
                         "`git merge-file`)") from None
    except subprocess.TimeoutExpired:
        raise RunnerFailure("git merge-file took longer than 120 s; nothing was built") from None
    if p.returncode < 0 or p.returncode > 127:
        raise RunnerFailure(f"git merge-file failed: {p.stderr.decode(errors='replace').strip()}")
    return p.stdout if p.returncode == 0 else None


def merged_source(target: Target, files: dict[PinnedFile, src.Fetched], workdir: Path) -> tuple[bytes, list[str]]:
    """The target's source; for a merge, the branch order that reproduces the pinned sha256."""
    if not target.branches:
        return files[target.source].data, []
    assert target.base is not None and target.merged_sha256 is not None
    tried = []
    for order in (target.branches, tuple(reversed(target.branches))):
        text: Optional[bytes] = files[target.source].data
        for branch in order:
            text = merge_file(text, files[target.base].data, files[branch].data, workdir) if text else None
        labels = [b.role or b.commit[:8] for b in order]
        if text is not None and sha256_bytes(text) == target.merged_sha256:
            return text, labels
        tried.append(" then ".join(labels) + (": conflicts" if text is None else f": sha256 {sha256_bytes(text)}"))
    raise UsageError(f"the three-way merge for {target.binary} does not give the pinned sha256 "
                     f"{target.merged_sha256} ({'; '.join(tried)}); refusing to build (nothing was built)")


# ---------------------------------------------------------------- provenance


def provenance_path(binary: Path) -> Path:
    return binary.with_name(binary.name + PROVENANCE_SUFFIX)


def read_provenance(binary: Path) -> Optional[dict[str, Any]]:
    """The provenance beside a binary, or None when there is none (or it is unreadable)."""
    try:
        doc = json.loads(provenance_path(Path(binary)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _is_current(target: Target, out_dir: Path, compiler: Compiler) -> bool:
    binary = out_dir / target.binary
    prov = read_provenance(binary)
    if prov is None or not binary.is_file():
        return False
    return (prov.get("source_sha256") == target.source_sha256 and prov.get("flags") == list(target.flags)
            and prov.get("ldlibs") == list(LDLIBS) and prov.get("compiler", {}).get("version") == compiler.version
            and prov.get("binary_sha256") == sha256_file(binary))


def _provenance(target: Target, compiler: Compiler, command: list[str], binary_sha: str,
                files: dict[PinnedFile, src.Fetched], order: list[str]) -> dict[str, Any]:
    sources = [{**p.provenance(), "fetched_from": files[p].origin} for p in target.pins]
    return {
        "binary": target.binary,
        "kind": target.kind,
        "binary_sha256": binary_sha,
        "source_sha256": target.source_sha256,
        "sources": sources,
        "merge": ({"tool": "git merge-file", "ours": target.source.commit, "base": target.base.commit,
                   "order": order} if target.base else None),
        "compiler": {"command": compiler.command, "path": compiler.path, "version": compiler.version},
        "flags": list(target.flags),
        "ldlibs": list(LDLIBS),
        "compile_command": shlex.join(command),
        "built_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "built_by": "nbparity build-c",
    }


# ---------------------------------------------------------------- build


def _compile(target: Target, source: bytes, compiler: Compiler, stage: Path) -> list[str]:
    # Each source is compiled as nanoBragg.c in a folder of its own, as the recordings' builds were.
    folder = stage / f"src-{target.binary}"
    folder.mkdir()
    (folder / "nanoBragg.c").write_bytes(source)
    command = [compiler.path, *target.flags, "-o", target.binary, "nanoBragg.c", *LDLIBS]
    p = _run(command, folder)
    if p.returncode != 0 or not (folder / target.binary).is_file():
        why = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
        raise RunnerFailure(f"compiling {target.binary} failed: {why}; nothing was installed")
    os.replace(folder / target.binary, stage / target.binary)
    return [compiler.command, *command[1:]]


def build(out_dir: Path, store: Optional[Store] = None, *, cc: Optional[str] = None, force: bool = False,
          targets: tuple[Target, ...] = TARGETS, log: Callable[[str], None] = lambda m: None) -> list[Built]:
    """Build every target that is missing or out of date into ``out_dir``; all or nothing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    compiler = find_compiler(cc)
    stage = Path(tempfile.mkdtemp(prefix=".build-c-", dir=out_dir))
    try:
        check_openmp(compiler, stage)
        todo = [t for t in targets if force or not _is_current(t, out_dir, compiler)]
        if not todo:
            return [Built(t, out_dir / t.binary, read_provenance(out_dir / t.binary) or {}, False) for t in targets]
        store = store or src.default_store()
        log(f"sources from {store.describe()}")
        files = src.fetch_verified([p for t in todo for p in t.pins], store)
        sources = {t.binary: merged_source(t, files, stage) for t in todo}
        made = {}
        for t in todo:
            log(f"compiling {t.binary}: {' '.join(t.flags)}")
            command = _compile(t, sources[t.binary][0], compiler, stage)
            sha = sha256_file(stage / t.binary)
            made[t.binary] = _provenance(t, compiler, command, sha, files, sources[t.binary][1])
        for t in todo:  # every binary compiled: now rename them in, provenance last
            os.replace(stage / t.binary, out_dir / t.binary)
            tmp = stage / (t.binary + PROVENANCE_SUFFIX)
            tmp.write_text(json.dumps(made[t.binary], indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, provenance_path(out_dir / t.binary))
        return [Built(t, out_dir / t.binary, made.get(t.binary) or read_provenance(out_dir / t.binary) or {},
                      t.binary in made) for t in targets]
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def cache_key(targets: tuple[Target, ...] = TARGETS) -> str:
    """A key for caching golden_bin/ (CI): changes with any pinned sha256, flag or input pin."""
    parts = [f"{t.binary} {t.source_sha256} {' '.join(t.flags)} {' '.join(LDLIBS)}" for t in targets]
    parts += [f"{p.path} {p.sha256}" for p in src.FETCHED_INPUTS]
    return "golden-bin-" + sha256_bytes("\n".join(parts).encode())[:16]
