"""Run any registered implementation: a C-style command line through the one process driver, the
bundled engine in-process, or the C (live binary or recording) for the references it stands for.

A command implementation gets what the C gets (harness.runners.process): the case's inputs staged
in a private working directory, the pinned environment plus its own variables, a timeout that
kills its process group, and the same one-line errors when it crashes, hangs or prints garbage.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from engine.io.floatimage import FloatImageError, from_bytes
from harness.compare import conventions, traces
from harness.model.errors import RunnerFailure, UsageError
from harness.model.run import RunOutput
from harness.registry.cases import Reference
from harness.registry.implementations import Implementation
from harness.runners import choose, inputs, process
from harness.runners.base import RunRequest, Runner, check_image, check_inputs
from harness.runners.c import CRunner
from harness.runners.engine import TorchRunner
from harness.runners.recorded import RecordedRunner

FLOAT_NAME = "floatimage.bin"


class ExternalRunner:
    """One C-style command-line implementation (``kind = "command"`` in the registry)."""

    def __init__(self, impl: Implementation, keep_workdir: bool = False):
        self.impl = impl
        self.name = impl.name
        self.keep_workdir = keep_workdir

    def command(self, request: RunRequest, workdir: Path) -> list[str]:
        floatfile = str(workdir / FLOAT_NAME) if request.want_image else None
        pixel = request.pixel if self.impl.can.trace else None
        return command_line(self.impl, request.case.argv, mode=request.mode, dtype=request.dtype,
                            device=request.device, floatfile=floatfile, pixel=pixel)

    def run(self, request: RunRequest) -> RunOutput:
        impl = self.impl
        staged = check_inputs(request)
        env, pinned = process.pinned_env(request.case.c_threads)
        own_env = impl.run_env()
        env.update(own_env)
        timeout = impl.timeout_s or request.timeout_s
        with process.private_workdir(f"{impl.name}-{request.case.name}", keep=self.keep_workdir) as workdir:
            inputs.stage(staged, workdir)
            argv = self.command(request, workdir)
            _check_executable(impl, argv[0])
            done = process.run(argv, cwd=workdir, env=env, timeout_s=timeout)
            out = RunOutput(runner=impl.name, argv=tuple(argv), cwd=str(workdir), env={**pinned, **own_env},
                            description=f"{impl.name}: {impl.description or 'command'} ({' '.join(argv[:3])} …)",
                            exit_code=done.exit_code, stdout=done.stdout_text, stderr=done.stderr_text,
                            wall_s=done.wall_s, peak_rss_bytes=done.peak_rss_bytes, trace_supported=impl.can.trace,
                            provenance={"implementation": impl.name, "command": list(argv[:3])})
            if done.timed_out:
                raise RunnerFailure(f"{impl.name} timed out after {timeout:g} s (case timeout_s / --timeout)", out)
            if done.exit_code != 0:
                raise process.fail(impl.name, done, out)
            image = self._image(out, workdir / FLOAT_NAME) if request.want_image and impl.float_flag else None
        return _judged(replace(out, image=image), impl, request)

    def _image(self, out: RunOutput, path: Path):
        if not path.is_file():
            raise RunnerFailure(f"{self.name} wrote no float image (told {self.impl.float_flag} {path})", out)
        m = re.search(self.impl.detector_size, out.stdout)
        if m is None:
            raise RunnerFailure(f"cannot find the detector size in {self.name}'s stdout (its registry "
                                f"`detector_size` pattern is {self.impl.detector_size!r})", out)
        try:
            return from_bytes(path.read_bytes(), (int(m["slow"]), int(m["fast"])), path)
        except FloatImageError as e:
            raise RunnerFailure(f"{self.name} float image: {e}", out) from None


def command_line(impl: Implementation, argv: Sequence[str], *, mode: str, dtype: str = "float64",
                 device: str = "cpu", floatfile: Optional[str] = None,
                 pixel: Optional[tuple[int, int]] = None) -> list[str]:
    """The implementation's argv for a case: its command, the case argv, its mode flags, dtype
    and device, where to write the float image and which pixel to trace (the bench uses it too)."""
    out = [*impl.argv_prefix(), *argv, *impl.mode_flags(mode)]
    for flag, value, allowed in ((impl.dtype_flag, dtype, impl.can.dtypes), (impl.device_flag, device, impl.can.devices)):
        if value not in allowed:
            raise UsageError(f"implementation {impl.name!r} does not run {value!r} (it can: "
                             f"{', '.join(allowed)}); change --dtype/--device or its `can` table")
        if flag:
            out += [flag, value]
    if impl.float_flag and floatfile:
        out += [impl.float_flag, floatfile]
    if pixel is not None:
        s, f = pixel
        out += [impl.trace_flag, *((str(s), str(f)) if impl.trace_order == "slow fast" else (str(f), str(s)))]
    return out


def _check_executable(impl: Implementation, program: str) -> None:
    """A command that cannot start is the user's to fix (exit 2), named with the fix."""
    found = os.access(program, os.X_OK) and Path(program).is_file() if os.sep in program else shutil.which(program)
    if not found:
        hint = f"set {impl.binary_env} or " if impl.binary_env else ""
        raise UsageError(f"implementation {impl.name!r}: cannot run {program!r} (not found or not executable); "
                         f"{hint}fix `command` in its registry entry (nbparity impls lists them)")


def _judged(out: RunOutput, impl: Implementation, request: RunRequest) -> RunOutput:
    """A usable image, and a trace that has what every trace must have (else: garbage)."""
    if out.image is not None:
        bad = check_image(out.image, impl.name)
        if bad:
            raise RunnerFailure(bad, out)
    if impl.can.trace:
        recs = conventions.parse(out.stdout, impl.convention())
        missing = traces.missing_required(recs)
        if missing:
            raise RunnerFailure(f"{impl.name} trace of pixel {request.pixel} lacks {', '.join(missing)} "
                                f"(no '{impl.trace_prefix}:' lines, or a truncated trace; check its "
                                "trace_prefix and keys in the registry)", out)
    return out


# ---------------------------------------------------------------- one runner per side


class BoundRunner:
    """A runner that always runs against one reference of the case (the C kind it stands for)."""

    def __init__(self, inner: Runner, reference: Reference, name: str):
        self.inner, self.reference, self.name = inner, reference, name

    def run(self, request: RunRequest) -> RunOutput:
        out = self.inner.run(replace(request, reference=self.reference))
        return replace(out, description=f"{self.name}: {out.description}")


def reference_of(impl: Implementation, request: RunRequest) -> Reference:
    """The case's reference recorded from this C (the one for the run's mode first)."""
    refs = [request.reference] + [r for r in request.case.references.values() if r is not request.reference]
    for ref in refs:
        if ref.kind == impl.reference_kind:
            return ref
    raise UsageError(f"case {request.case.name!r} has no {impl.reference_kind} reference for "
                     f"implementation {impl.name!r}; pick another --impl/--vs or case")


def runner_for(impl: Implementation, request: RunRequest, golden_dir: Path,
               source: choose.Source = "auto", c_bin: Optional[str] = None) -> tuple[Runner, str]:
    """The runner for one side of a pair and why (live binary, recording, command, in-process)."""
    if impl.kind == "in-process":
        if impl.entry != "engine.api:run":
            raise UsageError(f"implementation {impl.name!r}: in-process entries other than the bundled "
                             "engine are not supported yet; register it as a command")
        return TorchRunner(), f"{impl.name}: in-process"
    if impl.reference_kind is None:
        return ExternalRunner(impl), f"{impl.name}: command {impl.argv_prefix()[0]}"
    ref = reference_of(impl, request)
    explicit = c_bin if impl.reference_kind == "instrumented-c" else None
    picked = choose.choose(ref, source, explicit)
    if picked.live:
        return BoundRunner(CRunner(choose.find_binary(ref.kind, explicit)), ref, impl.name), f"{impl.name}: {picked.why}"
    return BoundRunner(RecordedRunner(golden_dir), ref, impl.name), f"{impl.name}: {picked.why}"
