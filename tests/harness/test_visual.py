"""PNG pictures of a run, made from a real recording (C) and a perturbed copy (torch)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.report import pictures as visual
from tests.harness.conftest import recorded_image

from PIL import Image as PIL  # noqa: E402 - pillow comes with matplotlib
CASE = "simple_cubic_mosflm_beam"   # 512x512, direct beam spot at (200, 300)


def _rgb(path):
    with PIL.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16), im.info


def _near(rgb, row_col, color, radius=2):
    """Whether a pixel of ``color`` (0..1 floats) lies within ``radius`` of row_col."""
    r, c = int(round(row_col[0])), int(round(row_col[1]))
    patch = rgb[max(r - radius, 0): r + radius + 1, max(c - radius, 0): c + radius + 1]
    target = np.array([int(255 * x) for x in color])
    return bool((np.abs(patch - target).max(axis=-1) <= 40).any())


@pytest.fixture(scope="module")
def images(golden_dir):
    c = recorded_image(golden_dir, CASE)
    t = c.copy()
    t[60:80, 400:420] *= 1.001        # a faint region that differs a little
    t[450, 37] += 5.0                 # and one pixel that is clearly wrong
    return c, t


def test_run_images_are_real_pictures_with_markers(tmp_path, images, golden_dir):
    c, t = images
    stdout = (golden_dir / "cases" / CASE / "c_stdout.log").read_text()
    center = visual.beam_center_from_stdout(stdout)
    pics = visual.write_run_images(tmp_path, c, t, beam_center=center, traced=[(138, 300)], case=CASE)
    assert set(pics) == set(visual.FILES)
    for name, pic in pics.items():
        assert pic.path.stat().st_size > 15_000, name
        rgb, _ = _rgb(pic.path)
        assert rgb.shape[:2] == pic.size, name
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50, f"{name} looks blank"
    # The worst pixel (the +5 one) was found and marked in magenta, the traced pixel in green.
    for name in ("c_image.png", "torch_image.png", "abs_diff.png"):
        rgb, _ = _rgb(pics[name].path)
        assert _near(rgb, pics[name].markers["worst"], visual.WORST_COLOR), name
        assert _near(rgb, pics[name].markers["traced0"], visual.TRACED_COLOR), name
    assert "worst |Δ| pixel (slow 450, fast 37)" in pics[name].legend
    w, tr = pics["abs_diff.png"].markers["worst"], pics["abs_diff.png"].markers["traced0"]
    # Image row 450 is below image row 138, fast 37 left of fast 300.
    assert w[0] > tr[0] and w[1] < tr[1]
    _, info = _rgb(pics["abs_diff.png"].path)
    assert "worst_pixel=[450, 37]" in info["Description"] and "nonzero=401" in info["Description"]


def _is(rgb, color, tol=6):
    """Per-pixel mask: rgb equals ``color`` (0..1 floats) within ``tol`` of 255."""
    return np.abs(rgb - np.array([round(255 * x) for x in color])).max(axis=-1) <= tol


def test_diff_map_of_identical_images_is_the_zero_colour_and_says_so(tmp_path, images):
    c, _ = images
    pic = visual.write_diff_map(tmp_path / "d.png", c, c.copy(), worst=(0, 0))
    rgb, info = _rgb(pic.path)
    assert "nonzero=0" in info["Description"]
    # Inside the axes everything is the exact-zero colour (not white, which reads as no data),
    # and the legend says what that colour means and for how many pixels.
    h, w = pic.size
    centre = rgb[h // 2 - 40: h // 2 + 40, w // 2 - 60: w // 2 + 20]
    assert _is(centre, visual.ZERO_COLOR).all()
    assert pic.legend == [f"|Δ| = 0 exactly ({c.size} pixels)"]
    assert "worst" not in pic.markers   # identical images have no worst pixel to point at


def test_legend_names_every_marker_with_its_pixel(tmp_path, images):
    c, t = images
    auto = [(450, 37, "worst"), (200, 300, "peak"), (10, 500, "edge")]
    pic = visual.write_diff_map(tmp_path / "d.png", c, t, worst=(450, 37), traced=[(138, 300)], autotraced=auto)
    assert pic.legend[:5] == ["worst |Δ| pixel (slow 450, fast 37)", "traced pixel (slow 138, fast 300)",
                              "autotraced edge (slow 10, fast 500)", "autotraced peak (slow 200, fast 300)",
                              "autotraced worst (slow 450, fast 37)"]
    assert pic.legend[5] == f"|Δ| = 0 exactly ({c.size - 401} pixels)"
    rgb, _ = _rgb(pic.path)
    # Autotraced pixels are marked on the map (cyan), and the legend under the axes shows
    # each marker colour and the zero colour as swatches.
    for name in ("auto1", "auto2"):
        assert _near(rgb, pic.markers[name], visual.AUTO_COLOR), name
    below = rgb[int(max(r for r, _ in pic.markers.values())) + 60:]
    for color in (visual.WORST_COLOR, visual.TRACED_COLOR, visual.AUTO_COLOR, visual.ZERO_COLOR):
        assert _is(below, color, tol=30).sum() > 20, color


def test_nan_in_one_image_has_its_own_colour_and_legend_entry(tmp_path, images):
    c, _ = images
    t = c.copy()
    t[100:110, 100:110] = np.nan
    pic = visual.write_diff_map(tmp_path / "d.png", c, t, traced=[(105, 105)])
    assert "NaN in one image only" in pic.legend and pic.legend[0] == "worst |Δ| pixel (slow 100, fast 100)"
    rgb, _ = _rgb(pic.path)
    # Around the NaN block's centre (inside the traced marker's ring): the NaN colour.
    assert _near(rgb, pic.markers["traced0"], visual.NAN_COLOR, radius=5)
    assert not _near(rgb, pic.markers["traced0"], visual.ZERO_COLOR, radius=3)


def test_diff_map_shows_the_perturbed_region(tmp_path, images):
    c, t = images
    pic = visual.write_diff_map(tmp_path / "d.png", c, t, worst=(450, 37))
    rgb, _ = _rgb(pic.path)
    # Map the perturbed block's centre (row 70, fast 410) into PNG pixels through two markers.
    pic2 = visual.write_diff_map(tmp_path / "e.png", c, t, worst=(70, 410), traced=[(70, 410)])
    row, col = pic2.markers["worst"]
    # Just outside the marker ring but inside the 20x20 block: coloured, not white.
    block = rgb[int(row) - 2: int(row) + 3, int(col) - 2: int(col) + 3]
    assert (block < 240).any(axis=-1).all()
    far = rgb[int(row) + 60: int(row) + 64, int(col) - 2: int(col) + 2]   # rows ~130: no difference
    assert _is(far, visual.ZERO_COLOR).all()


def test_radial_profile_of_a_symmetric_image_is_its_radius():
    centre = (40.3, 52.7)
    s, f = np.indices((100, 120))
    img = np.hypot(s - centre[0], f - centre[1])
    r, prof = visual.radial_profile(img, centre)
    assert np.allclose(prof[:40], r[:40], atol=0.3)
    assert np.all(np.diff(prof[:60]) > 0)


def test_beam_center_from_stdout_is_the_direct_beam_spot(golden_dir, images):
    c, _ = images
    stdout = (golden_dir / "cases" / CASE / "c_stdout.log").read_text()
    assert visual.beam_center_from_stdout(stdout) == pytest.approx((200.0, 300.0))
    assert tuple(np.unravel_index(np.argmax(c), c.shape)) == (200, 300)
    assert visual.beam_center_from_stdout("no geometry here") is None


def test_radial_profile_png_compares_both_images(tmp_path, images):
    c, t = images
    pic = visual.write_radial_profile(tmp_path / "r.png", c, t, (200.0, 300.0))
    rgb, info = _rgb(pic.path)
    assert "beam_center=[200.0, 300.0]" in info["Description"]
    orange = np.array([255 * 1.0, 127, 14])  # tab:orange, the torch curve
    assert (np.abs(rgb - orange).max(axis=-1) < 30).sum() > 100
    assert (rgb.max(axis=-1) < 30).sum() > 300   # the black C curve


def test_one_pixel_difference_survives_on_a_large_detector(tmp_path):
    c = np.zeros((2000, 1800), dtype=np.float32)
    t = c.copy()
    t[1234, 1777] = 1.0
    where = visual.write_diff_map(tmp_path / "a.png", c, t, worst=(1234, 1777)).markers["worst"]
    pic = visual.write_diff_map(tmp_path / "b.png", c, t, worst=(0, 0))
    assert pic.markers["worst"] != where
    rgb, info = _rgb(pic.path)
    assert "nonzero=1" in info["Description"]
    r, col = int(round(where[0])), int(round(where[1]))
    assert (rgb[r - 1: r + 2, col - 1: col + 2] < 200).any(), "the lone differing pixel vanished"
    zero = _is(rgb, visual.ZERO_COLOR)
    zero[r - 1: r + 2, col - 1: col + 2] = True
    h, w = pic.size
    # Nothing else inside the image area differs.
    assert zero[h // 2 - 50: h // 2 + 50, w // 2 - 80: w // 2 + 20].all()


def test_a_tiny_difference_is_never_shown_as_an_exact_zero(tmp_path):
    c = np.ones((64, 64))
    t = c.copy()
    t[0, 0] += 1.0          # sets the top of the log scale
    t[40, 40] += 1e-12      # twelve decades below it: under the shown span, but not zero
    pic = visual.write_diff_map(tmp_path / "d.png", c, t, traced=[(40, 40)])
    rgb, _ = _rgb(pic.path)
    assert not _near(rgb, pic.markers["traced0"], visual.ZERO_COLOR, radius=2)
    assert pic.legend[-1] == f"|Δ| = 0 exactly ({64 * 64 - 2} pixels)"
