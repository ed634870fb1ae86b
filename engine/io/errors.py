"""The error raised for a malformed input file."""
from __future__ import annotations


class InputFileError(ValueError):
    """An input file (SMV mask/header image, source file, ...) that cannot be used as given.

    The message names the file (and the line, for text files), what is wrong and how to fix it.
    """


class OutputFileError(OSError):
    """An output file (-floatfile, -intfile, -pgmfile, -noisefile) that cannot be written."""
