"""Alias resolution over the catalog."""
from __future__ import annotations

import pytest

from engine.outputs import trace as catalog
from harness.compare import keys


def sels(word):
    return {(s.name, s.kind, s.component) for s in keys.resolve(word)}


def test_people_aliases():
    assert sels("pix0") == {("pix0_vector_meters", None, None)}
    assert sels("rot_b") == {("rot_b_angstroms", None, None)}


def test_k_frac_is_hkl_component_and_phi_field():
    assert sels("k_frac") == {("hkl_frac", "pixel", 1), ("k_frac", "phi", None)}


def test_dotted_component_and_phi_prefix():
    assert sels("pix0.y") == {("pix0_vector_meters", "pixel", 1)}
    assert sels("angles.rotz") == {("angles_rad", "setup", 2)}
    assert sels("phi:F_latt") == {("F_latt", "phi", None)}
    assert sels("F_latt") == {("F_latt", None, None)}  # both kinds


def test_unit_suffix_short_names_do_not_shadow_real_keys():
    assert sels("R_distance") == {("R_distance_meters", None, None)}
    # pix0_vector is a set-up key in its own right, not a short name of pix0_vector_meters
    assert sels("pix0_vector") == {("pix0_vector", None, None)}
    assert sels("distance") == {("distance_m", None, None)}


def test_every_catalog_key_resolves_by_name():
    for k in catalog.KEYS:
        assert any(s.name == k.name for s in keys.resolve(k.name)), k.name


@pytest.mark.parametrize("word,needle", [("rot_q", "unknown trace key"), ("pix0.w", "no component"),
                                         ("phi:nope", "unknown φ-line field")])
def test_unknown_words_fail_with_a_hint(word, needle):
    with pytest.raises(KeyError) as e:
        keys.resolve(word)
    assert needle in e.value.args[0]


def test_unknown_word_suggests_near_names():
    with pytest.raises(KeyError) as e:
        keys.resolve("rot_")
    assert "rot_a" in e.value.args[0]


def test_dataflow_rank_follows_stages():
    order = [keys.rank("pixel", k)[0] for k in ("pix0_vector_meters", "pixel_pos_meters", "diffracted_vec",
                                                 "rot_a_angstroms", "hkl_frac", "F_latt")]
    assert order == sorted(order)
    assert keys.rank("setup", "Rx") < keys.rank("pixel", "pix0_vector_meters")
    assert keys.rank("phi", "k_frac") < keys.rank("pixel", "F_cell") < keys.rank("pixel", "I_before_scaling")
    assert keys.rank("pixel", "not_a_key") > keys.rank("pixel", "floatimage_accumulated")
