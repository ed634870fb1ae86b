"""The error raised for a malformed input file."""
from __future__ import annotations

from pathlib import Path


class InputFileError(ValueError):
    """An input file (SMV mask/header image, source file, ...) that cannot be used as given.

    The message names the file (and the line, for text files), what is wrong and how to fix it.
    """


class OutputFileError(OSError):
    """An output file (-floatfile, -intfile, -pgmfile, -noisefile) that cannot be written."""


def read_input_text(path: str | Path, flag: str, what: str) -> str:
    """The text of an input file (latin-1, as the C reads bytes), or a one-line InputFileError
    naming the flag, the file and the reason."""
    path = Path(path)
    try:
        return path.read_bytes().decode("latin-1")
    except OSError as exc:
        raise InputFileError(f"{flag} {path}: cannot read the {what} ({exc.strerror or exc}); "
                             "check the path") from None
