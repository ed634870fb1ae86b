"""`nbparity build-c` (`make c`): the reference C binaries and the recordings' inputs in golden_bin/."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import CliConsole
from harness.model.paths import REPO_ROOT
from harness.references import c_build, c_sources

NAME = "build-c"
DEFAULT_OUT = REPO_ROOT / "golden_bin"
LOCAL_INPUTS = REPO_ROOT / "cases" / "inputs"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="download (or, offline, take from NB_C_SOURCE_DIR) the pinned C sources, "
                                         "check their sha256 and compile the reference binaries into golden_bin/")
    p.add_argument("--out", help="where the binaries go (default: golden_bin/)")
    p.add_argument("--source-dir", help=f"offline sources: a local clone or a folder of the files "
                                        f"(default: ${c_sources.SOURCE_DIR_ENV}; unset: download from GitHub)")
    p.add_argument("--cc", help="C compiler (default: $CC, then gcc)")
    p.add_argument("--force", action="store_true", help="rebuild even when a binary's provenance is current")
    p.add_argument("--cache-key", action="store_true",
                   help="print a key for caching golden_bin/ (it changes with the pinned sha256s and flags) and exit")
    return p


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    if args.cache_key:
        print(c_build.cache_key())
        return 0
    out = Path(args.out).expanduser().resolve() if args.out else DEFAULT_OUT
    store = c_sources.default_store(args.source_dir)
    built = c_build.build(out, store, cc=args.cc, force=args.force, log=console.note)
    for b in built:
        prov = b.provenance
        state = "built" if b.rebuilt else "up to date"
        console.plain(f"{b.path}: {state}; source sha256 {prov.get('source_sha256')}, "
                      f"binary sha256 {prov.get('binary_sha256')}")
        console.plain(f"    {prov.get('compile_command')}  ({(prov.get('compiler') or {}).get('version')})")
    names = c_sources.install_inputs(out / "inputs", store, LOCAL_INPUTS)
    console.plain(f"{out / 'inputs'}: {len(names)} input files of the recordings ({', '.join(names)})")
    return 0
