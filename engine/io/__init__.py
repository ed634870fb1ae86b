"""Readers and writers for the files nanoBragg reads and writes."""
from engine.io.errors import InputFileError, OutputFileError

__all__ = ["InputFileError", "OutputFileError"]
