"""Readers and writers for the files nanoBragg reads and writes."""
from engine.io.errors import InputFileError

__all__ = ["InputFileError"]
