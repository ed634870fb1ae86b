"""Runners: the live C, a recorded C run, and the in-process torch engine, behind one protocol."""
from harness.runners.base import RunOutput, RunRequest, Runner

__all__ = ["RunOutput", "RunRequest", "Runner"]
