"""Run a live C nanoBragg in a fresh temporary working directory.

The C reads and writes Fdump.bin and default output files in its cwd, and its φ=0 carry-over
depends on thread scheduling, so every run gets an empty directory, OMP_NUM_THREADS pinned to
the case's thread count, explicit output paths and a timeout that kills the whole process group.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

from harness.references import floatimage
from harness.compare import traces
from harness.model.errors import RunnerFailure
from harness.model.paths import REPO_ROOT
from harness.runners.base import RunOutput, RunRequest, check_image, check_inputs, sha256_file, stage_inputs

FLOAT_NAME = "floatimage.bin"
# Variables that make the instrumented C print extra line families.
_DROP_ENV_PREFIXES = ("TRACE_C_TAP5", "OMP_")


def find_binary(kind: str = "instrumented-c", explicit: Optional[str] = None) -> Optional[Path]:
    """--c-bin, then NB_C_BIN (NB_C_FIXED_BIN for a fixed C), then golden_bin/.

    Returns the first candidate that is given, even if it is not there: an explicit choice that
    does not exist must fail loudly rather than fall back.
    """
    if explicit:
        return Path(explicit).expanduser()
    env = "NB_C_BIN" if kind == "instrumented-c" else "NB_C_FIXED_BIN"
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    default = REPO_ROOT / "golden_bin" / ("nanoBragg" if kind == "instrumented-c" else "nanoBragg_fixed")
    return default if default.exists() else None


def pinned_env(threads: int) -> tuple[dict[str, str], dict[str, str]]:
    """(full environment for the child, the variables the harness set or removed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_ENV_PREFIXES)}
    pinned = {"OMP_NUM_THREADS": str(threads), "LC_ALL": "C"}
    env.update(pinned)
    return env, pinned


class CRunner:
    name = "c-live"

    def __init__(self, binary: Optional[Path], keep_workdir: bool = False):
        self.binary = binary
        self.keep_workdir = keep_workdir

    def command(self, request: RunRequest, binary: Path, workdir: Path) -> list[str]:
        argv = [str(binary), *request.case.argv, "-floatfile", str(workdir / FLOAT_NAME)]
        if request.reference.traced:
            argv += ["-trace_pixel", str(request.pixel[0]), str(request.pixel[1])]
        return argv

    def run(self, request: RunRequest) -> RunOutput:
        inputs = check_inputs(request)
        env, pinned = pinned_env(request.case.c_threads)
        if self.binary is None:
            raise RunnerFailure("no C binary: pass --c-bin, set NB_C_BIN or put one at golden_bin/nanoBragg")
        binary = self.binary.resolve() if self.binary.exists() else self.binary
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise RunnerFailure(f"C binary {binary} is missing or not executable (check --c-bin / NB_C_BIN)")
        binary_sha = sha256_file(binary)
        workdir = Path(tempfile.mkdtemp(prefix=f"nbparity-c-{request.case.name}-"))
        try:
            # The argv names inputs relative to the data root; links keep it byte-identical to
            # the recorded command while the cwd stays private to this run.
            stage_inputs(inputs, workdir)
            argv = self.command(request, binary, workdir)
            base = dict(runner=self.name, argv=tuple(argv), cwd=str(workdir), env=pinned,
                        trace_supported=request.reference.traced,
                        description=f"live C at {binary} sha256 {binary_sha}",
                        provenance={"binary": str(binary), "binary_sha256": binary_sha,
                                    "reference_kind": request.reference.kind})
            t0 = time.monotonic()
            proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                out_b, err_b = proc.communicate(timeout=request.timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                out_b, err_b = proc.communicate()
                out = RunOutput(exit_code=None, stdout=_text(out_b), stderr=_text(err_b),
                                wall_s=time.monotonic() - t0, **base)
                raise RunnerFailure(f"C timed out after {request.timeout_s:g} s (case timeout_s / --timeout)",
                                    out) from None
            wall = time.monotonic() - t0
            stdout, stderr = _text(out_b), _text(err_b)
            out = RunOutput(exit_code=proc.returncode, stdout=stdout, stderr=stderr, wall_s=wall, **base)
            if proc.returncode != 0:
                how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
                       else f"exited with code {proc.returncode}")
                raise RunnerFailure(f"C {how}" + (f": {stderr.strip().splitlines()[-1]}" if stderr.strip() else ""), out)
            shape = floatimage.detpixels_from_stdout(stdout)
            fpath = workdir / FLOAT_NAME
            if not fpath.is_file():
                raise RunnerFailure(f"C wrote no float image at {fpath}", out)
            if shape is None:
                raise RunnerFailure("cannot find the detector size ('(FASTxSLOW pixels)') in the C's stdout", out)
            try:
                image = floatimage.from_bytes(fpath.read_bytes(), shape)
            except ValueError as e:
                raise RunnerFailure(f"C float image {fpath}: {e}", out) from None
            out = RunOutput(exit_code=proc.returncode, stdout=stdout, stderr=stderr, wall_s=wall,
                            image=image, **base)
            bad = check_image(image, "C")
            if bad:
                raise RunnerFailure(bad, out)
            if request.reference.traced:
                missing = traces.missing_required(traces.parse(stdout, "C"))
                if missing:
                    raise RunnerFailure(f"C trace of pixel {request.pixel} lacks {', '.join(missing)} "
                                        "(truncated, or the pixel is masked/outside the ROI, "
                                        "or the binary has no trace support)", out)
            return out
        finally:
            if not self.keep_workdir:
                shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")
