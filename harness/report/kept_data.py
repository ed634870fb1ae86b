"""What evidence keeps so that a run can be re-analysed without running it again: both float
images (.npz, full frames only on request) and, for a run from a modified working
tree, the diff and the untracked sources it ran.

result.json says where they are (ParityResult.float_images, .source_changes).
"""
from __future__ import annotations

import io
import zipfile
from typing import Any, Optional

import numpy as np

from harness.model.environment import checkout, working_changes
from harness.report.evidence import EvidenceDir

IMAGES_FILE = "images.npz"
DIFF_FILE = "git_diff.patch"
UNTRACKED_FILE = "untracked.txt"
#: Frames up to this many pixels (per image) are kept by default; a full detector (supervisor:
#: 6.2 Mpixel, ~50 MB per run) only with --keep-images.
KEEP_MAX_PIXELS = 2_000_000


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz (numpy.load reads it): float images shrink only to 70-95 % even at
    zlib level 1, which cost a 1-Mpixel run 0.2-0.4 s of its overhead."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def save_float_images(ev: EvidenceDir, c_image: Optional[np.ndarray], torch_image: Optional[np.ndarray],
                      keep: Optional[bool] = None, max_pixels: int = KEEP_MAX_PIXELS,
                      passed_skip: bool = False) -> Optional[dict[str, Any]]:
    """Write both images to images.npz (arrays ``c`` and ``torch``, dtypes as the runs gave them).

    keep: True always, False never, None when each image has at most ``max_pixels`` pixels.
    passed_skip: the run passed and its caller (the gate) keeps images only for runs that do not,
    unless keep is True. Returns what result.json records (file and arrays, or why not), None
    without two images.
    """
    if c_image is None or torch_image is None:
        return None
    c, t = np.asarray(c_image), np.asarray(torch_image)
    pixels = max(c.size, t.size)
    if keep is False:
        return {"kept": False, "why": "--no-keep-images"}
    if passed_skip and keep is None:
        return {"kept": False, "why": "the run passed: the gate keeps the float images of the runs that do not "
                                      "(gate --keep-images keeps them all)"}
    if keep is None and pixels > max_pixels:
        return {"kept": False, "why": f"{pixels} pixels per image > {max_pixels} (full frame): "
                                      "rerun with --keep-images to keep them"}
    ev.write_bytes(IMAGES_FILE, npz_bytes({"c": c, "torch": t}))
    return {"kept": True, "file": IMAGES_FILE, "arrays": {"c": "C (reference) image", "torch": "engine image"},
            "shape": list(c.shape), "dtypes": {"c": str(c.dtype), "torch": str(t.dtype)},
            "load": f"numpy.load('{IMAGES_FILE}')['c'], ['torch']"}


def save_source_changes(ev: EvidenceDir, dirty: Optional[bool]) -> Optional[dict[str, Any]]:
    """git_diff.patch (``git diff HEAD``) when the tree is dirty, and untracked.txt when engine/
    or harness/ hold untracked files: the code the run used that no commit holds."""
    diff, untracked = working_changes()
    out: dict[str, Any] = {}
    if dirty and diff is not None:
        ev.write_text(DIFF_FILE, diff)
        out["diff"] = DIFF_FILE
        out["diff_lines"] = diff.count("\n")
    if untracked:
        ev.write_text(UNTRACKED_FILE, "".join(f"{u}\n" for u in untracked))
        out["untracked"] = UNTRACKED_FILE
        out["untracked_count"] = len(untracked)
    return out or None


def keep_for_reanalysis(ev: EvidenceDir, c_image: Optional[np.ndarray], torch_image: Optional[np.ndarray],
                        keep: Optional[bool] = None, passed_skip: bool = False) -> dict[str, Any]:
    """Both of the above; the ParityResult fields that say where they went."""
    return {"float_images": save_float_images(ev, c_image, torch_image, keep, passed_skip=passed_skip),
            "source_changes": save_source_changes(ev, checkout().dirty)}
