"""What `nbparity --version` reports: which harness, engine, torch and C a result came from.

The C binaries are found by the runners layer (above this one), so their provenance is passed
in rather than looked up here.
"""
from __future__ import annotations

from importlib import metadata
from typing import Any, Mapping, Optional

from harness.model.environment import git_state

DIST = "nbparity"


def package_version(dist: str = DIST) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown (not installed: make install)"


def torch_build() -> dict[str, Any]:
    """torch's version and build: CPU, or the CUDA/ROCm version it was compiled for."""
    try:
        import torch  # noqa: PLC0415 - slow to import; only --version and runs need it
    except ImportError:
        return {"version": None, "build": "not installed"}
    cuda, hip = torch.version.cuda, getattr(torch.version, "hip", None)
    build = f"CUDA {cuda}" if cuda else (f"ROCm {hip}" if hip else "CPU")
    return {"version": torch.__version__, "build": build, "cuda_available": bool(torch.cuda.is_available())}


def engine_info() -> dict[str, Any]:
    """The engine ships in the nbparity distribution: its version is the package's, plus the
    number of C defects it can reproduce (what c-parity mode means for this build)."""
    from engine.config import defects  # noqa: PLC0415 - cheap, but only --version needs it

    return {"version": package_version(), "c_defects": len(defects.DEFECTS)}


def collect(c_binaries: Mapping[str, Optional[Mapping[str, Any]]]) -> dict[str, Any]:
    """Everything --version prints, as data (``--version --json`` style consumers, tests)."""
    git = git_state()
    return {"nbparity": package_version(), "git": git, "engine": engine_info(),
            "torch": torch_build(), "c": dict(c_binaries)}


def _c_line(kind: str, prov: Optional[Mapping[str, Any]]) -> str:
    if prov is None:
        return f"C ({kind}): none configured (--c-bin, NB_C_BIN / NB_C_FIXED_BIN, golden_bin/)"
    if not prov.get("exists"):
        return f"C ({kind}): {prov['path']} (from {prov['source']}) does not exist"
    return (f"C ({kind}): {prov['path']} (from {prov['source']}), sha256 {prov['sha256']}, "
            f"{prov['size']} bytes, modified {prov['mtime']}")


def format_lines(info: Mapping[str, Any]) -> list[str]:
    git = info["git"]
    commit = git.get("commit") or "unknown (not a git checkout)"
    dirty = {True: " (dirty: uncommitted changes)", False: " (clean)"}.get(git.get("dirty"), "")
    t = info["torch"]
    torch_line = (f"torch {t['version']} ({t['build']} build"
                  + (", CUDA device available" if t.get("cuda_available") else "") + ")"
                  if t.get("version") else "torch: not installed")
    lines = [f"nbparity {info['nbparity']}", f"git commit {commit}{dirty}",
             f"engine {info['engine']['version']} ({info['engine']['c_defects']} C defects registered)",
             torch_line]
    lines += [_c_line(kind, prov) for kind, prov in info["c"].items()]
    return lines
