"""The pinned C sources (and the recordings' pinned input files), and where to get them.

Every file the reference build reads is pinned by repository, commit, path and sha256. A file
comes either from GitHub (the raw URL at the pinned commit) or, offline, from
``NB_C_SOURCE_DIR``, which may be:

* a git clone or bare git directory holding the pinned commits (``git show COMMIT:PATH``), or a
  folder that holds such clones as ``<owner>+<name>[/repo]`` or ``<owner>/<name>``;
* a folder of plain files laid out like the raw URLs:
  ``<owner>/<name>/<commit>/<path>`` (e.g. ``hoidn/nanoBragg/8b8c48d…/golden_suite_generator/nanoBragg.c``).

Whatever the origin, a file whose sha256 is not the pinned one is refused, by name.
"""
from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from harness.model.errors import InputError, ReferenceDataError, RunnerFailure
from harness.model.hashing import sha256_bytes

RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
SOURCE_DIR_ENV = "NB_C_SOURCE_DIR"

HOIDN = "hoidn/nanoBragg"
BL831 = "bl831/nanoBragg"
HOIDN_COMMIT = "8b8c48d0d639264a144f947471b8ffc854f6bf01"
BL831_MAIN = "455534aff53563bb6681906d30d4240e0491ceb5"
FIX_BASE = "76f25353a41d5ac919e96a25ba75b1d699a7e8f3"
FIX_PHI0 = "0286ac6b4b831c99024754185def601416d2a401"
FIX_OVERSAMPLE = "18db27d53611b03292c713893ff058ff7ead9332"


@dataclass(frozen=True)
class PinnedFile:
    """One file of a public repository at one commit, with the sha256 it must have."""

    repo: str
    commit: str
    path: str
    sha256: str
    role: str = ""

    @property
    def url(self) -> str:
        return RAW_URL.format(repo=self.repo, commit=self.commit, path=self.path)

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.commit[:8]}:{self.path}"

    def provenance(self) -> dict[str, str]:
        return {"role": self.role, "repo": self.repo, "commit": self.commit, "path": self.path,
                "url": self.url, "sha256": self.sha256}


INSTRUMENTED = PinnedFile(HOIDN, HOIDN_COMMIT, "golden_suite_generator/nanoBragg.c",
                          "2de28701886574a07e517a41aa1c55afa6bb0af5f346822932efef485de5006b",
                          "instrumented source (feature/spec-based-2)")
UPSTREAM = PinnedFile(BL831, BL831_MAIN, "nanoBragg.c",
                      "ff65983e2e527f171c08142c9e34e0558d43c0c5579e4e73f2757796520a3343", "upstream main")
# The fix branches' files are pinned too, so that a bad download is named before the merge.
FIX_BASE_FILE = PinnedFile(BL831, FIX_BASE, "nanoBragg.c",
                           "ff65983e2e527f171c08142c9e34e0558d43c0c5579e4e73f2757796520a3343",
                           "merge base of the fix branches")
FIX_PHI0_FILE = PinnedFile(BL831, FIX_PHI0, "nanoBragg.c",
                           "1fcdb8a8f173311928d0e4a6721f6d894bcf657e93eb95ed5617ed4d047d2c26",
                           "fix/phi0-stale-rotation")
FIX_OVERSAMPLE_FILE = PinnedFile(BL831, FIX_OVERSAMPLE, "nanoBragg.c",
                                 "55c6524b9cbd2f2ad85a24b5cfb8d1e9459ecfa0d49c1e1c39fee2ba6bf74430",
                                 "fix/subpixel-oversampling")

#: Input files of the recordings that come from the instrumented source's repository root.
#: (The inputs made for the recordings themselves are in the checkout: cases/inputs/.)
FETCHED_INPUTS = (
    PinnedFile(HOIDN, HOIDN_COMMIT, "A.mat",
               "9afec349dd9c203405bdab73a33d12c530de3eee82a7ce92ab2395ca76dc7da1", "input"),
    PinnedFile(HOIDN, HOIDN_COMMIT, "scaled.hkl",
               "65b668b3fa5c4de14c9049d9262945453d982ff193b572358846f38b173855ba", "input"),
    PinnedFile(HOIDN, HOIDN_COMMIT, "P1.hkl",
               "0238515a0f8fbfe5837b6454f29a9bafaf7962b683acedebb9e767b4e4afb34d", "input"),
)

Opener = Callable[[str], bytes]


def url_opener(timeout_s: float = 60.0) -> Opener:
    def fetch(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - fixed https URLs
            return resp.read()
    return fetch


class GitHubStore:
    """The raw files at their pinned commits, over the network (``opener`` is replaceable in tests)."""

    def __init__(self, opener: Optional[Opener] = None):
        self.opener = opener or url_opener()

    def describe(self) -> str:
        return "GitHub (raw.githubusercontent.com)"

    def get(self, pin: PinnedFile) -> tuple[bytes, str]:
        try:
            return self.opener(pin.url), pin.url
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise RunnerFailure(f"cannot download {pin.url} ({e}); offline, set {SOURCE_DIR_ENV} to a local "
                                "clone or a folder of the files (see golden_bin/README.md)") from None


class LocalStore:
    """Files from a local clone, a folder of clones, or a folder of plain files (see the module doc)."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise InputError(f"C source folder {self.root} (--source-dir / {SOURCE_DIR_ENV}) is not a directory; "
                             "point it at a local clone or a folder of the files (see golden_bin/README.md)")

    def describe(self) -> str:
        return f"the local folder {self.root}"

    def _git_candidates(self, repo: str) -> Iterable[Path]:
        owner, name = repo.split("/")
        for d in (self.root / f"{owner}+{name}" / "repo", self.root / f"{owner}+{name}",
                  self.root / owner / name, self.root):
            if d.is_dir():
                yield d

    def get(self, pin: PinnedFile) -> tuple[bytes, str]:
        plain = self.root / pin.repo / pin.commit / pin.path
        if plain.is_file():
            return plain.read_bytes(), str(plain)
        for d in self._git_candidates(pin.repo):
            data = _git_show(d, pin.commit, pin.path)
            if data is not None:
                return data, f"{d} (git {pin.commit[:8]}:{pin.path})"
        raise InputError(f"{pin.label} not found under {self.describe()}: expected a git clone holding commit "
                         f"{pin.commit[:8]} or the plain file {plain}")


def _git_show(git_dir: Path, commit: str, path: str) -> Optional[bytes]:
    try:
        p = subprocess.run(["git", "-C", str(git_dir), "show", f"{commit}:{path}"],
                           capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout if p.returncode == 0 else None


Store = GitHubStore | LocalStore


def default_store(source_dir: Optional[str | Path] = None, environ: Optional[dict[str, str]] = None) -> Store:
    """``source_dir``, then NB_C_SOURCE_DIR (offline); otherwise GitHub."""
    env = os.environ if environ is None else environ
    where = source_dir or env.get(SOURCE_DIR_ENV)
    return LocalStore(Path(where)) if where else GitHubStore()


@dataclass(frozen=True)
class Fetched:
    data: bytes
    origin: str


def fetch_verified(pins: Iterable[PinnedFile], store: Store) -> dict[PinnedFile, Fetched]:
    """Every pinned file, each checked against its sha256 before any is used."""
    got: dict[PinnedFile, Fetched] = {}
    for pin in pins:
        if pin in got:
            continue
        data, origin = store.get(pin)
        check_sha256(data, pin.sha256, f"{pin.label} (from {origin})")
        got[pin] = Fetched(data, origin)
    return got


def check_sha256(data: bytes, expected: str, what: str) -> None:
    actual = sha256_bytes(data)
    if actual != expected:
        raise ReferenceDataError(f"sha256 mismatch: {what} has sha256 {actual}, the pin is {expected}; "
                                 "refusing to build (nothing was built)")


def install_inputs(dest: Path, store: Store, local_dir: Path) -> list[str]:
    """The recordings' input files in ``dest``: the pinned ones fetched (kept when already right),
    the ones made for the recordings copied from ``local_dir`` (cases/inputs/ in the checkout)."""
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    todo = [p for p in FETCHED_INPUTS
            if not (dest / Path(p.path).name).is_file()
            or sha256_bytes((dest / Path(p.path).name).read_bytes()) != p.sha256]
    for pin, fetched in fetch_verified(todo, store).items():
        _write_atomic(dest / Path(pin.path).name, fetched.data)
    names += [Path(p.path).name for p in FETCHED_INPUTS]
    for path in sorted(Path(local_dir).iterdir()) if Path(local_dir).is_dir() else []:
        if path.is_file():
            _write_atomic(dest / path.name, path.read_bytes())
            names.append(path.name)
    return names


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
