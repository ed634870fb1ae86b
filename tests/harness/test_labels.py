"""Known-C-defect labelling against the registry in engine/config/defects.py."""
from __future__ import annotations

import re

import pytest

from engine.config import defects
from harness.compare import labels
from harness.compare import traces
from harness.compare.primitive import ToleranceTable, align

PHI_ARGV = ["-phi", "0", "-osc", "0.09", "-phisteps", "10"]


@pytest.fixture(scope="module")
def c_text(golden_dir):
    return (golden_dir / "cases" / "phi_carryover" / "c_stdout.log").read_text()


def spec_like(c_text: str) -> str:
    """What a spec-mode engine prints for phi_carryover, derived from the C trace: at φ=0 the
    unrotated cell (the C shows φ step 9's), so the φ-0 rows and the keys fed by them differ."""
    lines = []
    for line in traces.to_engine_prefix(c_text).splitlines():
        m = re.match(r"TRACE_PY_PHI phi_tic=0 (.*)", line)
        if m:
            line = "TRACE_PY_PHI phi_tic=0 phi_deg=0 k_frac=1.5 F_latt_b=0.5 F_latt=-0.3"
        for key in ("rot_a_angstroms", "rot_b_angstroms", "hkl_frac", "F_latt_b", "F_latt", "I_before_scaling"):
            if line.startswith(f"TRACE_PY: {key} "):
                head, vals = line.split(" ", 2)[:2], line.split(" ", 2)[2].split()
                vals = ["%.15g" % (float(v) * 1.01 + 0.01) for v in vals]
                line = " ".join(head + vals)
        lines.append(line)
    return "\n".join(lines) + "\n"


def rows(c_text, py_text):
    return align(traces.parse(c_text, "C"), traces.parse(py_text, "PY"), ToleranceTable())


def test_spec_divergence_inside_signature_is_a_known_defect(c_text):
    r = rows(c_text, spec_like(c_text))
    lab = labels.label(r, PHI_ARGV, "spec", reference_traced=True)
    assert lab.known_defect and lab.defect_ids == ("phi0-stale-rotation",)
    assert lab.text == "known C defect phi0-stale-rotation"


def test_same_divergence_in_c_parity_mode_is_a_regression(c_text):
    lab = labels.label(rows(c_text, spec_like(c_text)), PHI_ARGV, "c-parity", reference_traced=True)
    assert lab.text == "regression" and not lab.known_defect


def test_divergence_at_a_nonzero_phi_step_is_a_regression(c_text):
    py = re.sub(r"(phi_tic=3 phi_deg=\S+ k_frac=)", r"\g<1>9", spec_like(c_text))
    assert py != spec_like(c_text)
    lab = labels.label(rows(c_text, py), PHI_ARGV, "spec", reference_traced=True)
    assert lab.text == "regression"
    assert "phi[3].k_frac" in lab.unexplained


def test_divergence_outside_the_signature_is_a_regression(c_text):
    py = spec_like(c_text).replace("TRACE_PY: pixel_pos_meters 0.1", "TRACE_PY: pixel_pos_meters 0.2")
    assert "pixel_pos_meters 0.2" in py
    assert labels.label(rows(c_text, py), PHI_ARGV, "spec", reference_traced=True).text == "regression"


def test_phi_signature_needs_a_zero_phi_step(c_text):
    no_zero = c_text.replace("phi_deg=0 ", "phi_deg=0.5 ")
    lab = labels.label(rows(no_zero, spec_like(no_zero)), PHI_ARGV, "spec", reference_traced=True)
    assert lab.text == "regression"


def test_triggered_defect_needs_its_flag():
    c = "TRACE_C: I_before_scaling 1\nTRACE_C: I_pixel_final 1\nTRACE_C: floatimage_accumulated 1\n"
    py = "TRACE_PY: I_before_scaling 2\nTRACE_PY: I_pixel_final 2\nTRACE_PY: floatimage_accumulated 2\n"
    r = rows(c, py)
    assert labels.label(r, ["-N", "5"], "spec", True).text == "regression"
    lab = labels.label(r, ["-oversample_thick", "-N", "5"], "spec", True)
    # phi0-stale-rotation also lists these keys but has no φ=0 step here; only the oversample one applies
    assert lab.defect_ids == ("oversample-running-sum",)


def test_blocker_rules_a_defect_out():
    """F_cell alone diverging: interpolate-oob-nearest explains it with -hkl, not with -nointerpolate."""
    r = rows("TRACE_C: F_cell 1\n", "TRACE_PY: F_cell 2\n")
    assert labels.label(r, ["-hkl", "x.hkl"], "spec", True).defect_ids == ("interpolate-oob-nearest",)
    assert labels.label(r, ["-hkl", "x.hkl", "-nointerpolate"], "spec", True).text == "regression"


def test_no_divergence_no_label(c_text):
    assert labels.label(rows(c_text, traces.to_engine_prefix(c_text)), PHI_ARGV, "spec", True) is None


def test_image_only_reference_never_labels_a_defect(c_text):
    lab = labels.label(rows(c_text, spec_like(c_text)), PHI_ARGV, "spec", reference_traced=False)
    assert lab.text == "regression"


def test_registry_signatures_use_catalog_names():
    from harness.compare import keys
    for d in defects.DEFECTS:
        for entry in d.signature:
            m = re.match(r"^phi:(\w+)@(zero|any|\d+)$", entry)
            if m:
                assert keys.lookup("phi", m.group(1)), entry
            else:
                assert keys.lookup("pixel", entry) or keys.lookup("setup", entry), entry


def test_image_only_label_names_unfixed_triggered_defects():
    fixed = ["phi0-stale-rotation", "oversample-running-sum"]
    lab = labels.label_image_only(["-pix0_vector_mm", "1", "2", "3"], "spec", fixed)
    assert lab.text.startswith("possible known C defect pix0-vector-ignored") and not lab.known_defect
    assert labels.label_image_only(["-N", "5"], "spec", fixed).text == "regression"
    assert labels.label_image_only(["-oversample_thick"], "spec", fixed).text == "regression"
    assert labels.label_image_only(["-pix0_vector_mm", "1", "2", "3"], "c-parity", fixed).text == "regression"


def test_two_defects_together_explain_a_divergence():
    # pix0 moved (pix0-vector-ignored) and φ=0 stale (phi0-stale-rotation): every φ step moves,
    # the rotated cell only at φ = 0. Neither alone explains all rows; together they do.
    c = ("TRACE_C: pix0_vector_meters 1 1 1\nTRACE_C: rot_a_angstroms 1 2 3\n"
         "TRACE_C_PHI phi_tic=0 phi_deg=0 k_frac=1 F_latt_b=1 F_latt=1\n"
         "TRACE_C_PHI phi_tic=1 phi_deg=0.1 k_frac=1 F_latt_b=1 F_latt=1\n")
    py = ("TRACE_PY: pix0_vector_meters 1 1 2\nTRACE_PY: rot_a_angstroms 1 2 4\n"
          "TRACE_PY_PHI phi_tic=0 phi_deg=0 k_frac=2 F_latt_b=1 F_latt=1\n"
          "TRACE_PY_PHI phi_tic=1 phi_deg=0.1 k_frac=2 F_latt_b=1 F_latt=1\n")
    r = rows(c, py)
    lab = labels.label(r, ["-pix0_vector_mm", "1", "2", "3"], "spec", True)
    assert set(lab.defect_ids) == {"pix0-vector-ignored", "phi0-stale-rotation"}
    assert labels.label(r, ["-N", "1"], "spec", True).text == "regression"
