"""The two runners of a fuzz campaign, from an implementation pair (``--impl A --vs B``).

The bundled engine runs in-process (no interpreter start per example); the C reference is the
live instrumented binary (a fuzz example has no recording); any other registered
implementation runs through harness.runners.external, as `run --impl` does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from harness.model.errors import UsageError
from harness.model.run import RunOutput
from harness.registry.implementations import Implementation
from harness.runners.base import RunRequest, Runner
from harness.runners.c import CRunner
from harness.runners.choose import binary_problem, find_binary
from harness.runners.engine import TorchRunner
from harness.runners.external import runner_for
from harness.service.fuzz.example import EngineAsReference


class _Registered:
    """Another registered implementation, its runner chosen per example (live only)."""

    def __init__(self, impl: Implementation, golden: Path, c_bin: Optional[str]):
        self.impl, self.golden, self.c_bin = impl, golden, c_bin
        self.name = impl.name

    def run(self, request: RunRequest) -> RunOutput:
        runner, _why = runner_for(self.impl, request, self.golden, "live", self.c_bin)
        return runner.run(request)


def live_c(c_bin: Optional[str]) -> Path:
    """The instrumented C binary, or a one-line UsageError naming how to get one."""
    binary = find_binary("instrumented-c", c_bin)
    problem = binary_problem(binary, "instrumented-c")
    if problem:
        raise UsageError(f"fuzz needs a live C: {problem} (`make c` builds golden_bin/nanoBragg; or --vs engine)")
    return binary.resolve()


def runner(impl: Implementation, *, reference: bool, golden: Path, c_bin: Optional[str]) -> Runner:
    if impl.name == "engine":
        return EngineAsReference(TorchRunner()) if reference else TorchRunner()
    if impl.name == "c":
        return CRunner(live_c(c_bin))
    return _Registered(impl, golden, c_bin)
