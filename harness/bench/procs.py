"""The bench's child processes: the commands it times, and how one is run and measured.

Every measurement is one child process run through harness.runners.process (the one process
driver): wall time around it and its own peak RSS. The engine is ``python -m engine`` with
OMP_NUM_THREADS/MKL_NUM_THREADS pinned to the thread count; the start-up baseline imports the
engine only. Each run gets its own empty directory with the inputs staged in (the C reads and
writes Fdump.bin and default outputs in its cwd).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from harness.bench.cases import BenchCase
from harness.runners import inputs, process

FLOAT_NAME = "floatimage.bin"


@dataclass(frozen=True)
class ProcResult:
    """One child process: wall seconds around it, its own peak RSS (bytes), how it ended."""

    returncode: Optional[int]
    wall_s: float
    peak_rss_bytes: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False


ProcRunner = Callable[..., ProcResult]


def run_measured(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], timeout_s: float) -> ProcResult:
    """Run ``cmd`` through the process driver: the command's own wall time and peak RSS."""
    done = process.run(cmd, cwd=cwd, env=env, timeout_s=timeout_s)
    return ProcResult(returncode=done.exit_code, wall_s=done.wall_s, peak_rss_bytes=done.peak_rss_bytes or 0,
                      stdout=done.stdout_text, stderr=done.stderr_text, timed_out=done.timed_out)


def child_env(threads: int) -> dict[str, str]:
    """The environment with every thread-count variable pinned to ``threads`` (the driver's rule)."""
    return process.pinned_env(threads)[0]


def stage_inputs(bc: BenchCase, workdir: Path) -> None:
    inputs.stage(inputs.located(bc.inputs, bc.data_root, f"case {bc.name}"), workdir)


def engine_command(bc: BenchCase, floatfile: Path, *, dtype: str, device: str,
                   python: str = sys.executable) -> list[str]:
    return [python, "-m", "engine", *bc.argv, "-floatfile", str(floatfile), "--mode", bc.mode,
            "--dtype", dtype, "--device", device, "--c-threads", str(bc.c_threads)]


def c_command(bc: BenchCase, floatfile: Path, binary: Path) -> list[str]:
    return [str(binary), *inputs.with_outputs(bc.argv, str(floatfile))]


def startup_command(python: str = sys.executable) -> list[str]:
    return [python, "-c", "import engine.api, engine.cli"]
