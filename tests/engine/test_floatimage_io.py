"""The one float-image reader/writer: sizes are checked, broken files are one-line errors."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from engine.io.floatimage import FloatImageError, from_bytes, read_floatimage, read_raw, write_floatimage


def test_round_trip_plain_and_gzip(tmp_path):
    image = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
    written = write_floatimage(tmp_path / "f.bin", image)
    assert np.array_equal(read_floatimage(tmp_path / "f.bin", (3, 4)), written)
    (tmp_path / "g.bin.gz").write_bytes(gzip.compress((tmp_path / "f.bin").read_bytes()))
    assert np.array_equal(read_floatimage(tmp_path / "g.bin", (3, 4)), written)  # name.gz found too


def test_wrong_size_is_a_one_line_error_naming_the_file(tmp_path):
    (tmp_path / "half.bin").write_bytes(b"\0" * 24)
    with pytest.raises(FloatImageError, match=r"half.bin: 24 bytes, expected 48 for 3x4") as e:
        read_floatimage(tmp_path / "half.bin", (3, 4))
    assert "\n" not in str(e.value)
    with pytest.raises(FloatImageError, match="not a whole number"):
        read_floatimage(_write(tmp_path / "odd.bin", b"\0" * 5))
    with pytest.raises(FloatImageError, match="expected 8 for 1x2"):
        from_bytes(b"\0" * 4, (1, 2), "x")


def test_broken_gzip_and_missing_file(tmp_path):
    data = gzip.compress(b"\0" * 4000)
    with pytest.raises(FloatImageError, match="truncated gzip"):
        read_raw(_write(tmp_path / "t.bin.gz", data[: len(data) // 2]))
    with pytest.raises(FloatImageError, match="not a valid gzip"):
        read_raw(_write(tmp_path / "n.bin.gz", b"plain bytes"))
    with pytest.raises(FloatImageError, match="cannot read the float image"):
        read_raw(tmp_path / "absent.bin")


def _write(path, data):
    path.write_bytes(data)
    return path
