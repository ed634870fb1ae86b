"""Run a live C nanoBragg through the process driver (harness.runners.process).

The C reads and writes Fdump.bin and default output files in its cwd, and its φ=0 carry-over
depends on thread scheduling, so every run gets an empty directory, the pinned thread count,
explicit output paths and a timeout (all from the driver).

An instrumented reference asks the binary for a trace. An upstream binary prints none at all:
its run is still a reference for the image, marked ``trace_supported=False`` with a note that
the trace is not available from it. A trace that starts and then lacks required keys is a
failure (truncated, or the pixel is masked/outside the ROI).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from engine.io.floatimage import FloatImageError, from_bytes
from harness.compare import traces
from harness.model.errors import RunnerFailure, UsageError
from harness.model.hashing import sha256_file
from harness.model.run import RunOutput
from harness.references.c_build import read_provenance
from harness.references.recordings import detpixels_from_stdout
from harness.runners import inputs, process
from harness.runners.base import RunRequest, check_image, check_inputs
from harness.runners.choose import binary_problem

FLOAT_NAME = "floatimage.bin"
UNTRACED_NOTE = "the trace is not available from this binary (no TRACE_C lines: an upstream, untraced C); " \
                "the image was compared"


def checked_binary(binary: Optional[Path], kind: str = "instrumented-c") -> Path:
    """The binary, resolved, or a one-line UsageError (exit 2) naming the fix."""
    problem = binary_problem(binary, kind)
    if problem:
        raise UsageError(problem)
    return binary.resolve()


def read_c_image(stdout: str, fpath: Path, output: Optional[RunOutput] = None) -> np.ndarray:
    """The float image the C wrote, shaped by the size its stdout states (RunnerFailure if not)."""
    shape = detpixels_from_stdout(stdout)
    if not fpath.is_file():
        raise RunnerFailure(f"C wrote no float image at {fpath}", output)
    if shape is None:
        raise RunnerFailure("cannot find the detector size ('(FASTxSLOW pixels)') in the C's stdout", output)
    try:
        return from_bytes(fpath.read_bytes(), shape, fpath)
    except FloatImageError as e:
        raise RunnerFailure(f"C float image: {e}", output) from None


def trace_state(stdout: str) -> tuple[bool, list[str]]:
    """(the binary printed a trace at all, the required keys its trace lacks)."""
    recs = traces.parse(stdout, "C")
    return bool(recs), traces.missing_required(recs)


class CRunner:
    name = "c-live"

    def __init__(self, binary: Optional[Path], keep_workdir: bool = False):
        self.binary = binary
        self.keep_workdir = keep_workdir

    def run(self, request: RunRequest) -> RunOutput:
        staged = check_inputs(request)
        binary = checked_binary(self.binary, request.reference.kind)
        binary_sha = sha256_file(binary)
        traced = request.reference.traced
        env, pinned = process.pinned_env(request.case.c_threads)
        with process.private_workdir(f"c-{request.case.name}", keep=self.keep_workdir) as workdir:
            inputs.stage(staged, workdir)
            argv = [str(binary), *inputs.with_outputs(request.case.argv, str(workdir / FLOAT_NAME),
                                                      request.pixel if traced else None)]
            done = process.run(argv, cwd=workdir, env=env, timeout_s=request.timeout_s)
            base = dict(runner=self.name, argv=tuple(argv), cwd=str(workdir), env=pinned,
                        description=f"live C at {binary} sha256 {binary_sha}",
                        provenance={"binary": str(binary), "binary_sha256": binary_sha,
                                    "reference_kind": request.reference.kind,
                                    # how the binary was built (sources, sha256s, compiler, flags), if known
                                    "build": read_provenance(binary)},
                        exit_code=done.exit_code, stdout=done.stdout_text, stderr=done.stderr_text,
                        wall_s=done.wall_s, peak_rss_bytes=done.peak_rss_bytes)
            if done.timed_out:
                raise RunnerFailure(f"C timed out after {request.timeout_s:g} s (case timeout_s / --timeout)",
                                    RunOutput(trace_supported=traced, **base))
            if done.exit_code != 0:
                raise process.fail("C", done, RunOutput(trace_supported=traced, **base))
            image = read_c_image(done.stdout_text, workdir / FLOAT_NAME, RunOutput(trace_supported=traced, **base))
        return _judged(RunOutput(image=image, trace_supported=traced, **base), request)


def _judged(out: RunOutput, request: RunRequest) -> RunOutput:
    """The run as a reference: a usable image, and a complete trace or none at all."""
    bad = check_image(out.image, "C")
    if bad:
        raise RunnerFailure(bad, out)
    if not out.trace_supported:
        return out
    printed, missing = trace_state(out.stdout)
    if not printed:
        return replace(out, trace_supported=False, notes=(*out.notes, UNTRACED_NOTE))
    if missing:
        raise RunnerFailure(f"C trace of pixel {request.pixel} lacks {', '.join(missing)} "
                            "(truncated, or the pixel is masked/outside the ROI)", out)
    return out
