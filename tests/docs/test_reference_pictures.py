"""docs/pictures.md shows one reference picture of each kind, each small and each really there."""
from __future__ import annotations

import re

from PIL import Image

from harness.model.paths import REPO_ROOT
from harness.report import pictures

DOC = REPO_ROOT / "docs" / "pictures.md"


def test_every_reference_picture_exists_is_small_and_is_a_picture():
    linked = re.findall(r"!\[[^\]]*\]\((images/[^)]+\.png)\)", DOC.read_text(encoding="utf-8"))
    files = {p.name for p in (REPO_ROOT / "docs" / "images").glob("*.png")}
    assert {link.split("/")[1] for link in linked} == files, "every image linked, every link an image"
    for link in linked:
        path = DOC.parent / link
        assert path.stat().st_size < 200_000, link
        with Image.open(path) as im:
            assert im.width >= 600 and im.height >= 500 and im.info.get("Software") == "nbparity", link
    # One of each kind of picture, from both a full-frame and a small case, clean and perturbed.
    kinds = {name.split("-")[-1] for name in files}
    assert kinds >= {"abs_diff.png", "c_image.png", "radial_profile.png"} and kinds <= set(pictures.FILES)
    assert {name.split("-")[0] for name in files} == {"supervisor", "simple_cubic_mosflm_beam"}
    assert {name.split("-")[1] for name in files} == {"clean", "perturbed"}
