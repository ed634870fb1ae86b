"""The fault suite's world: a 4x4-pixel case, its recording, fake C executables, and the CLI
driven in a subprocess with its own cases, recordings and results folders.

The recording is made by the harness's own `record` from a fake C that replays one engine run
(TRACE_PY rewritten as TRACE_C), so the baseline is a real parity run and every fault below is
a change from a state that passes.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

CASE = "tiny"
ARGV = ["-cell", "70", "70", "70", "90", "90", "90", "-default_F", "1", "-N", "2", "-distance", "100",
        "-detpixels", "4", "-pixel", "0.1", "-nonoise", "-nopgm"]
PIXEL = (1, 2)
SHAPE = (4, 4)
#: The C prints the detector size on this line; the engine's console does not, the fake C adds it.
DETSIZE_LINE = "  distance=0.1 detsize=0.0004x0.0004  pixel=0.0001 meters (4x4 pixels)\n"
#: Grace on top of --timeout for a run that must come back (process start and torch import take
#: ~13 s on a loaded 2-core runner); the faults that hold a run hold it for 60 s, well beyond.
GRACE_S = 25.0
HOLD_S = 60

CASE_TOML = """\
name = "{name}"
description = "4x4-pixel case of the fault suite"
mode = "c-parity"
tags = ["small"]
argv = {argv}
trace_pixels = [[{s}, {f}]]
timeout_s = 60.0

[tolerance]
atol = 1e-06
rtol = 1e-09

[image]
rtol_of_max = 1e-06

[references.c-parity]
kind = "instrumented-c"
live = true
{pin}"""


def case_toml(name: str = CASE, argv: Sequence[str] = ARGV, recording: Optional[str] = None,
              sha: Optional[str] = None, pixel: tuple[int, int] = PIXEL) -> str:
    pin = (f'recording = "{recording}"\nmanifest_sha256 = "{sha}"\n') if recording else ""
    argv_toml = "[" + ", ".join(f'"{a}"' for a in argv) + "]"
    return CASE_TOML.format(name=name, argv=argv_toml, s=pixel[0], f=pixel[1], pin=pin)


# ---------------------------------------------------------------- fake C executables

FAKE_C_HEAD = """#!/bin/sh
# Fake nanoBragg for the fault suite: replays one engine run. Variant: {variant}
echo "$$" > "{pidfile}"
out=""; prev=""
for a in "$@"; do
  if [ "$prev" = "-floatfile" ]; then out="$a"; fi
  prev="$a"
done
STDOUT="{stdout}"
IMAGE="{image}"
"""
#: The normal ending: the whole console, then the image where -floatfile says.
REPLAY = 'cat "$STDOUT"\ncp "$IMAGE" "$out"\n'


def write_fake_c(directory: Path, variant: str, body: str, replay_dir: Path) -> Path:
    """A /bin/sh fake C: FAKE_C_HEAD, then ``body`` (which may use $STDOUT, $IMAGE, $out)."""
    script = directory / f"fake-nanoBragg-{variant}"
    script.write_text(FAKE_C_HEAD.format(variant=variant, pidfile=directory / f"{variant}.pid",
                                         stdout=replay_dir / "stdout.log", image=replay_dir / "float.bin")
                      + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


# ---------------------------------------------------------------- running the CLI


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    def show(self) -> str:
        return f"rc={self.rc} in {self.seconds:.1f} s\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that explain a failure: not blank, not progress ('✓ …'), not the
    usage synopsis argparse prints above its own one-line error."""
    out, in_usage = [], False
    for line in stderr.splitlines():
        if not line.strip() or line.lstrip().startswith("✓"):
            continue
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        out.append(line)
    return out


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (symlinks by target), keyed by relative path."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def ledger_rows(results: Path) -> list[tuple]:
    path = results / "ledger.sqlite"
    if not path.is_file():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return [tuple(r) for r in con.execute("SELECT * FROM runs ORDER BY id")]
    finally:
        con.close()


def evidence_dirs(results: Path, case: str = CASE) -> list[Path]:
    root = results / case
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def staging_left(results: Path) -> list[Path]:
    return sorted(results.rglob(".tmp-*")) if results.exists() else []


@dataclass
class World:
    """One test's own copy of the cases, the recordings and the results (with one earlier run)."""

    root: Path
    cases: Path
    golden: Path
    results: Path
    replay: Path
    before_evidence: dict[str, str] = field(default_factory=dict)
    before_rows: list[tuple] = field(default_factory=list)
    _children: list[Path] = field(default_factory=list)

    # -- set-up helpers
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("NB_", "PYTEST_", "COV_")) and k != "GITHUB_STEP_SUMMARY"}
        env.update(NB_CASES_DIR=str(self.cases), NB_GOLDEN_DIR=str(self.golden), NB_RESULTS_DIR=str(self.results),
                   PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
        return env

    def fake_c(self, variant: str, body: str = REPLAY) -> Path:
        script = write_fake_c(self.root, variant, body, self.replay)
        self._children.append(self.root / f"{variant}.pid")
        return script

    def pid_of(self, variant: str, wait_s: float = 90.0) -> int:
        pidfile = self.root / f"{variant}.pid"
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if pidfile.is_file() and pidfile.read_text().strip():
                return int(pidfile.read_text().split()[0])
            time.sleep(0.05)
        raise AssertionError(f"the fake C {variant!r} never started (no {pidfile})")

    def write_case(self, text: str, name: str = CASE) -> Path:
        p = self.cases / f"{name}.toml"
        p.write_text(text, encoding="utf-8")
        return p

    # -- running
    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "harness", "--cases-dir", str(self.cases), "--golden-dir", str(self.golden),
                "--results-dir", str(self.results), *args]

    def nbparity(self, *args: str, timeout: float = 120.0, results: Optional[Path] = None) -> Result:
        argv = self.argv(*args)
        if results is not None:
            argv[argv.index("--results-dir") + 1] = str(results)
        return self.call(argv, timeout)

    def nbparity_without_default_binary(self, *args: str, timeout: float = 120.0) -> Result:
        """The CLI as on a machine with no golden_bin/nanoBragg (this checkout may have one)."""
        argv = self.argv(*args)
        boot = ("import sys; from pathlib import Path; import harness.runners.choose as choose; "
                "choose.REPO_ROOT = Path(sys.argv.pop(1)); from harness.cli.main import main; "
                "sys.exit(main(sys.argv[1:]))")
        return self.call([argv[0], "-c", boot, str(self.root), *argv[3:]], timeout)

    def engine(self, *args: str, timeout: float = 120.0) -> Result:
        return self.call([sys.executable, "-m", "engine", *args], timeout)

    def call(self, argv: list[str], timeout: float) -> Result:
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, cwd=self.root, env=self.env(), capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{argv[2:]} did not return within {timeout:g} s "
                                 f"(stderr: {(e.stderr or b'')[-500:]!r})") from None
        return Result(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), cwd=self.root, env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

    def cleanup(self) -> None:
        """Kill what the fake Cs started and left (process groups, then their own pids)."""
        for pidfile in self._children + sorted(self.root.glob("*.grandchild")):
            if not pidfile.is_file():
                continue
            for tok in pidfile.read_text().split():
                kill_group(int(tok))


def kill_group(pid: int) -> None:
    for fn in (os.killpg, os.kill):
        try:
            fn(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def group_alive(pgid: int) -> bool:
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


# ---------------------------------------------------------------- the contract


AUTO = -1


def assert_contract(w: World, res: Result, code: int, *, evidence: Optional[bool] = None,
                    ledger_row: Optional[bool] = None, stderr_lines: Optional[int] = AUTO) -> None:
    """The README's promises for one failed (or passed) run of the CLI.

    code: the exit code. stderr_lines: how many lines explain the failure on stderr; by default
    one for an error (exit 2, 3, 130, 143), not counted for a divergence (exit 1 is a verdict,
    reported on stdout), none for parity. evidence: whether a new evidence directory must (True)
    or must not (False) appear; ledger_row likewise for a new ledger row (default: as evidence).
    Always: no traceback, no staging directory left, the earlier evidence and ledger rows intact.
    """
    assert res.rc == code, f"expected exit {code}\n{res.show()}"
    assert "Traceback" not in res.stderr + res.stdout, res.show()
    if stderr_lines == AUTO:
        stderr_lines = {0: 0, 1: None}.get(code, 1)
    if stderr_lines is not None:
        lines = error_lines(res.stderr)
        assert len(lines) == stderr_lines, f"expected {stderr_lines} error line(s) on stderr, got {lines}\n{res.show()}"
    assert staging_left(w.results) == [], f"staging left behind: {staging_left(w.results)}"
    now = tree_digest(w.results / CASE)
    for rel, digest in w.before_evidence.items():
        if rel == "latest" or rel.startswith(".latest"):
            continue
        assert now.get(rel) == digest, f"earlier evidence {rel} changed or lost"
    rows = ledger_rows(w.results)
    assert rows[: len(w.before_rows)] == w.before_rows, "earlier ledger rows changed or lost"
    new_dirs = len(evidence_dirs(w.results)) - len({r.split("/")[0] for r in w.before_evidence if "/" in r})
    if evidence is not None:
        assert (new_dirs > 0) == evidence, f"new evidence dirs: {new_dirs}, expected {'some' if evidence else 'none'}"
    ledger_row = evidence if ledger_row is None else ledger_row
    if ledger_row is not None:
        added = len(rows) - len(w.before_rows)
        assert (added > 0) == ledger_row, f"new ledger rows: {added}, expected {'some' if ledger_row else 'none'}"


def copy_world(template: Path, dest: Path) -> None:
    for name in ("cases", "golden", "results"):
        shutil.copytree(template / name, dest / name, symlinks=True)
