"""The one live-vs-recorded rule (harness.runners.choose)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.registry.cases import Reference
from harness.runners import choose

INSTRUMENTED = Reference(kind="instrumented-c", recording="rec", live=True)
FIXED = Reference(kind="fixed-c", recording="rec__cfixed", live=False)


@pytest.fixture
def binaries(tmp_path, monkeypatch):
    """An instrumented and a fixed binary in the environment, nothing in golden_bin/."""
    monkeypatch.setattr(choose, "REPO_ROOT", tmp_path)
    paths = {}
    for kind, env in choose.BINARY_ENV.items():
        p = tmp_path / f"{kind}-bin"
        p.write_text("")
        monkeypatch.setenv(env, str(p))
        paths[kind] = p
    return paths


def test_auto_runs_a_found_instrumented_c(binaries):
    c = choose.choose(INSTRUMENTED)
    assert c.live and c.binary == binaries["instrumented-c"]


def test_auto_never_runs_a_fixed_c_even_when_one_is_found(binaries):
    c = choose.choose(FIXED)
    assert not c.live and "only with --live" in c.why
    c = choose.choose(FIXED.model_copy(update={"live": True}))
    assert not c.live


def test_live_runs_the_binary_of_the_references_kind(binaries):
    assert choose.choose(FIXED, "live").binary == binaries["fixed-c"]
    assert choose.choose(INSTRUMENTED, "live").binary == binaries["instrumented-c"]
    assert choose.choose(INSTRUMENTED, "live", "/x/explicit").binary == Path("/x/explicit")


def test_recorded_always_replays(binaries):
    assert not choose.choose(INSTRUMENTED, "recorded").live


def test_auto_without_a_binary_uses_the_recording(tmp_path, monkeypatch):
    monkeypatch.setattr(choose, "REPO_ROOT", tmp_path)
    monkeypatch.delenv("NB_C_BIN", raising=False)
    c = choose.choose(INSTRUMENTED)
    assert not c.live and "NB_C_BIN" in c.why
    assert not choose.choose(INSTRUMENTED.model_copy(update={"live": False})).live


def test_the_gate_keeps_recordings_for_references_that_allow_no_live_c():
    assert choose.for_gate(FIXED, "live", None) == ("auto", None)
    assert choose.for_gate(INSTRUMENTED, "live", "/c") == ("live", "/c")
    assert choose.for_gate(FIXED, "recorded", None) == ("recorded", None)


def test_the_gates_c_bin_is_never_a_fixed_references_binary():
    live_fixed = FIXED.model_copy(update={"live": True})
    assert choose.for_gate(live_fixed, "live", "/instrumented") == ("live", None)
