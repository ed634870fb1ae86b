"""Runners: the live C, a recorded C run, and the in-process torch engine, behind one protocol."""
from harness.model.run import RunOutput
from harness.runners.base import RunRequest, Runner

__all__ = ["RunOutput", "RunRequest", "Runner"]
