"""Exit codes and the errors that map onto them.

Every error the harness raises on purpose carries its exit code and a one-line message that
names the file or field at fault and the fix, so the CLI never needs a traceback to explain it.
"""
from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from harness.model.run import RunOutput


class ExitCode(IntEnum):
    PARITY = 0
    DIVERGENCE = 1
    USAGE = 2
    RUNNER_FAILURE = 3


class HarnessError(Exception):
    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UsageError(HarnessError):
    """Bad command line (unknown case, unknown --keys name, --pixel out of range, …)."""


class CaseFileError(HarnessError):
    """A case file that does not validate; the message names the file and the field."""

    def __init__(self, path: str, field: str, expected: str):
        self.path, self.field, self.expected = path, field, expected
        where = f"field '{field}'" if field else "file"
        super().__init__(f"{path}: {where}: {expected}")


class InputError(HarnessError):
    """An input file the case names is missing or unreadable."""


class ReferenceDataError(HarnessError):
    """A recorded reference that is missing, stale (argv/manifest changed) or corrupt (sha256).

    Never a pass: the comparison is only as good as its reference.
    """

    def __init__(self, message: str, output: Optional["RunOutput"] = None):
        super().__init__(message)
        self.output = output


class RunnerFailure(HarnessError):
    """A runner crashed, timed out, had no binary, wrote an all-NaN image or a truncated trace.

    ``output`` keeps whatever the runner produced, for the evidence directory.
    """

    exit_code = ExitCode.RUNNER_FAILURE

    def __init__(self, message: str, output: Optional["RunOutput"] = None):
        super().__init__(message)
        self.output = output


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up runs (child group killed, staging and
    work directories removed); the CLI exits 128 + the signal number (143)."""

    def __init__(self, signum: int = 15):
        super().__init__(signum)
        self.exit_code = 128 + signum
