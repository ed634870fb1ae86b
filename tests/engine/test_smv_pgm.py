"""SMV and PGM files: byte-for-byte against the C's outputs, and the C's header reading rules."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from engine.io.errors import InputFileError
from engine.io.floatimage import read_floatimage
from engine.io.pgm import c_rmsd, pgm_bytes, pgm_scale, write_pgm
from engine.io.smv import header_geometry, read_header, read_image, value_of
from engine.io.smv_write import (SMVHeaderFields, header_text, int_image, int_scale, noise_int_image,
                                 write_smv)
from engine.sample.rng import poisson_noise


def _stdout(golden_dir, case: str) -> str:
    return (golden_dir / "cases" / case / "c_stdout.log").read_text(errors="replace")


def _float_image(golden_dir, case: str, shape=(256, 256)) -> np.ndarray:
    case_dir = golden_dir / "cases" / case
    path = case_dir / "floatimage.bin"
    return read_floatimage(path if path.exists() else case_dir / "floatimage.bin.gz", shape)


def _num(text: str, pattern: str) -> float:
    return float(re.search(pattern, text).group(1))


def _fields_from_console(text: str) -> SMVHeaderFields:
    """Header values as the C's console reports them (metres), for a MOSFLM run without φ."""
    g = r"([-+0-9.eE]+)"
    pixel = _num(text, rf"pixel={g} meters")
    fclose = _num(text, rf"Fclose={g}")
    sclose = _num(text, rf"Sclose={g}")
    dials = re.search(rf"dials origin= {g} {g} {g}", text).groups()
    return SMVHeaderFields(
        fpixels=int(_num(text, r"\((\d+)x\d+ pixels\)")),
        spixels=int(_num(text, r"\(\d+x(\d+) pixels\)")),
        pixel_size=pixel, distance=_num(text, rf"distance={g} detsize"),
        wavelength=_num(text, rf"wave={g} meters"),
        Xbeam=_num(text, rf"Xbeam={g}"), Ybeam=_num(text, rf"Ybeam={g}"),
        Fbeam=_num(text, rf"Fbeam={g}"), Sbeam=_num(text, rf"Sbeam={g}"),
        detsize_s=float(re.search(rf"detsize={g}x{g}", text).group(2)),
        dials_origin=tuple(float(x) for x in dials),
        ORGX=fclose / pixel + 0.5, ORGY=sclose / pixel + 0.5,
        close_distance=_num(text, rf"distance={g} detsize"))


# --- int, noise and PGM outputs, byte for byte -------------------------------------------------
def test_smv_noise_int_and_noise_files_are_byte_identical(golden_dir, tmp_path):
    case = golden_dir / "cases" / "smv_noise"             # -seed 12345 -adc 40, automatic scale
    image = _float_image(golden_dir, "smv_noise")
    fields = _fields_from_console(_stdout(golden_dir, "smv_noise"))
    ints = int_image(torch.from_numpy(image), 0.0, 40.0)
    written = write_smv(tmp_path / "intimage.img", ints, fields, kind="int")
    assert written == (case / "intimage.img").read_bytes()
    assert (tmp_path / "intimage.img").read_bytes() == written
    noise = poisson_noise(image, 12345)
    pixels, photons, overloads = noise_int_image(noise, 40.0, int_pixels=ints)
    written = write_smv(tmp_path / "noiseimage.img", pixels, fields, kind="noise")
    assert written == (case / "noiseimage.img").read_bytes()
    assert "%.0f photons on noise image (%d overloads)" % (photons, overloads) in \
        _stdout(golden_dir, "smv_noise")


def test_pgm_scale_adc_int_and_pgm_files_are_byte_identical(golden_dir, tmp_path):
    case = golden_dir / "cases" / "pgm_scale_adc"         # -scale 2.5 -adc 10 -pgmscale 3
    image = _float_image(golden_dir, "pgm_scale_adc")
    fields = _fields_from_console(_stdout(golden_dir, "pgm_scale_adc"))
    written = write_smv(tmp_path / "intimage.img", int_image(image, 2.5, 10.0), fields)
    assert written == (case / "intimage.img").read_bytes()
    scale = write_pgm(tmp_path / "image.pgm", torch.from_numpy(image), 3.0)
    assert scale == 3.0
    assert (tmp_path / "image.pgm").read_bytes() == (case / "image.pgm").read_bytes()


@pytest.mark.parametrize("case, shape", [("phi_carryover", (64, 64)),
                                         ("supervisor", (2527, 2463))])
def test_automatic_int_and_pgm_scales_match_console(golden_dir, case, shape):
    text = _stdout(golden_dir, case)
    image = _float_image(golden_dir, case, shape)
    rmsd = c_rmsd(image)
    assert "rmsd= %g\n" % rmsd in text
    iscale = int_scale(0.0, float(image.max()))
    assert "intfile_scale = %g\n" % iscale in text
    assert "pgm_scale = %g\n" % pgm_scale(0.0, iscale, rmsd) in text


def test_auto_pgm_writer_uses_rmsd_rule(golden_dir, tmp_path):
    image = _float_image(golden_dir, "phi_carryover", (64, 64))
    scale = write_pgm(tmp_path / "p.pgm", image, 0.0)
    assert "pgm_scale = %g\n" % scale in _stdout(golden_dir, "phi_carryover")


def test_int_image_rules():
    image = torch.tensor([[0.0, 1.0, 2.0], [1e9, float("nan"), 0.2]])
    out = int_image(image, 2.0, 40.0, roi=(0, 1, 0, 1))
    # Outside the ROI stays 0; a 0.0 pixel inside (e.g. masked) becomes adc; clipped at 65535.
    assert out.tolist() == [[40, 42, 0], [65535, 0, 0]]
    assert out.dtype == np.uint16
    # The +0.5 sum is rounded to float before the floor: 0.49999999 + 0.5 rounds up to 1.
    assert int_image(np.array([[0.49999999]]), 1.0, 0.0).item() == 1
    assert int_scale(0.0, 0.0) == 1.0 and int_scale(-1.0, 110.0) == 500.0 and int_scale(3, 9) == 3


def test_noise_outside_roi_keeps_int_pixels():
    noise = np.full((2, 3), 5.0, dtype=np.float32)
    ints = np.array([[7, 8, 9], [10, 11, 12]], dtype=np.uint16)
    out, photons, over = noise_int_image(noise, 40.0, roi=(1, 2, 0, 0), int_pixels=ints)
    assert out.tolist() == [[7, 45, 45], [10, 11, 12]] and photons == 10.0 and over == 0
    out, _, over = noise_int_image(np.array([[70000.0]]), 40.0)
    assert out.item() == 65535 and over == 1


def test_header_text_layout_and_denzo_signed_zero():
    fields = SMVHeaderFields(8, 4, 1e-4, 0.1, 1e-10, 4e-4, 2e-4, 2e-4, -0.0, 4e-4,
                             (-1.0, 2.0, -100.0), 2.5, 0.5, 0.1)
    text = header_text(fields)
    assert text.startswith("{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\n")
    assert text.endswith("DETECTOR_SN=000;\nBEAMLINE=fake;\n}\f")
    assert "SIZE1=8;\nSIZE2=4;\n" in text and "DIALS_ORIGIN=-1,2,-100\n" in text
    assert "DENZO_X_BEAM=-0;" in text
    assert "DENZO_X_BEAM=0;" in header_text(fields, kind="noise")
    with pytest.raises(ValueError):
        write_smv("unused.img", np.zeros((3, 8), dtype=np.uint16), fields)


# --- reading -mask / -img ----------------------------------------------------------------------
def test_img_header_geometry_matches_console(golden_dir):
    header = read_header(golden_dir / "inputs" / "header_256.img")
    assert header["PIXEL_SIZE"] == "0.11" and header["BEAM_CENTER_Y"] == "15.4"
    geo = header_geometry(header)
    text = _stdout(golden_dir, "img_header_input")
    assert "  Xbeam=%g Ybeam=%g\n" % (geo["Xbeam"], geo["Ybeam"]) in text
    assert "  distance=%g detsize=%gx%g  pixel=%g meters (%dx%d pixels)\n" % (
        geo["distance"], geo["pixel_size"] * geo["fpixels"], geo["pixel_size"] * geo["spixels"],
        geo["pixel_size"], geo["fpixels"], geo["spixels"]) in text
    assert "  wave=%g meters" % geo["lambda0"] in text


def test_mask_header_flips_beam_center_y(golden_dir):
    path = golden_dir / "inputs" / "mask_256.img"
    geo = header_geometry(read_header(path), is_mask=True)
    assert "  Xbeam=%g Ybeam=%g\n" % (geo["Xbeam"], geo["Ybeam"]) in _stdout(golden_dir, "mask_input")
    assert header_geometry(read_header(path))["Ybeam"] == pytest.approx(0.014)


def test_mask_pixels_are_what_the_c_skipped(golden_dir):
    mask = read_image(golden_dir / "inputs" / "mask_256.img")
    assert mask.shape == (256, 256) and mask.dtype == torch.int32
    image = torch.from_numpy(_float_image(golden_dir, "mask_input"))
    skipped = mask == 0
    assert 0 < int(skipped.sum()) < mask.numel()
    assert torch.all(image[skipped] == 0)
    assert torch.all(image[~skipped] > 0)       # every rendered pixel of this case is lit


def test_value_of_uses_last_substring_match():
    text = "{\nHEADER_BYTES=512;\nDISTANCE=100;\nCLOSE_DISTANCE=90;\nXDS_ORGX=3.5;\n}"
    assert value_of(text, "DISTANCE") == 90.0           # found inside CLOSE_DISTANCE
    assert value_of(text, "ORGX") == 3.5
    assert math.isnan(value_of(text, "PHI"))
    assert value_of(text + "TWOTHETA", "TWOTHETA") == 0.0   # key without '='
    geo = header_geometry({"DISTANCE": "100", "CLOSE_DISTANCE": "90", "PHI": "180"})
    assert geo["distance"] == pytest.approx(0.09) and geo["phi0"] == pytest.approx(math.pi)


def test_round_trip_and_byte_order(tmp_path):
    fields = SMVHeaderFields(3, 2, 1e-4, 0.1, 1e-10, 1e-4, 1e-4, 1e-4, 1e-4, 2e-4,
                             (0.0, 0.0, -100.0), 1.5, 1.5, 0.1)
    pixels = np.array([[1, 2, 65535], [0, 258, 7]], dtype=np.uint16)
    path = tmp_path / "x.img"
    write_smv(path, pixels, fields)
    assert read_image(path).tolist() == pixels.tolist()
    geo = header_geometry(read_header(path))
    assert geo["distance"] == pytest.approx(0.1) and (geo["fpixels"], geo["spixels"]) == (3, 2)
    big = path.read_bytes().replace(b"little_endian", b"big_endian___", 1)
    big = big[:512] + pixels.astype(">u2").tobytes()
    (tmp_path / "big.img").write_bytes(big)
    assert read_image(tmp_path / "big.img").tolist() == pixels.tolist()
    assert read_image(tmp_path / "big.img", c_parity=True).tolist() == \
        pixels.astype(">u2").view("<u2").tolist()


def test_malformed_inputs_raise_input_file_error(tmp_path, golden_dir):
    with pytest.raises(InputFileError, match="missing.img"):
        read_image(tmp_path / "missing.img")
    not_smv = tmp_path / "not_smv.img"
    not_smv.write_bytes(b"P5\n" + b" " * 600)
    with pytest.raises(InputFileError, match=r"not_smv\.img.*not an SMV"):
        read_header(not_smv)
    short = tmp_path / "short.img"
    short.write_bytes(b"{\nHEADER_BYTES=512;\n")
    with pytest.raises(InputFileError, match=r"short\.img.*too short"):
        read_header(short)
    truncated = tmp_path / "truncated.img"
    truncated.write_bytes((golden_dir / "inputs" / "mask_256.img").read_bytes()[:1000])
    with pytest.raises(InputFileError, match=r"truncated\.img.*truncated"):
        read_image(truncated)
    no_size = tmp_path / "nosize.img"
    no_size.write_bytes(b"{\nHEADER_BYTES=512;\nDIM=2;\n}".ljust(512, b" ") + b"\0" * 8)
    with pytest.raises(InputFileError, match="SIZE1"):
        read_image(no_size)
    assert issubclass(InputFileError, ValueError)


def test_pgm_bytes_layout():
    image = np.array([[0.0, 10.0, 100.0]], dtype=np.float32)
    data = pgm_bytes(image, 2.9, roi=(0, 1, 0, 0))
    assert data == b"P5\n3 1\n# pixels scaled by 2.9\n255\n" + bytes([0, 29, 0])


def _long_header_fields() -> SMVHeaderFields:
    # Numbers with many significant digits, as a large tilted detector gives: > 512 bytes of text.
    return SMVHeaderFields(fpixels=3, spixels=2, pixel_size=1.72123e-4, distance=0.231274661,
                           wavelength=9.76812e-11, Xbeam=0.2177422951, Ybeam=0.2139070801,
                           Fbeam=0.2178891234, Sbeam=0.2150431234, detsize_s=0.4346441234,
                           dials_origin=(-230.192414, 216.343050, 216.475836), ORGX=1266.8123456,
                           ORGY=1250.2123456, close_distance=0.2312718261, phi0=0.0123456,
                           osc=0.00174533, twotheta=0.0123456)


def test_long_header_grows_in_spec_and_overflows_as_the_c(tmp_path):
    """smv-header-overflow: the C writes a >512-byte header unpadded under HEADER_BYTES=512."""
    fields = _long_header_fields()
    text = header_text(fields).encode("latin-1")
    assert len(text) > 512, "fixture must exceed 512 bytes to exercise the overflow"
    pixels = np.arange(6, dtype=np.uint16).reshape(2, 3)

    c_blob = write_smv(tmp_path / "c.img", pixels, fields, c_overflow=True)
    assert c_blob[:len(text)] == text and len(c_blob) == len(text) + pixels.nbytes

    spec = tmp_path / "spec.img"
    blob = write_smv(spec, pixels, fields)
    assert b"HEADER_BYTES=1024;" in blob[:32] and len(blob) == 1024 + pixels.nbytes
    assert read_image(spec).tolist() == pixels.tolist()
