"""Planted bugs are found: the engine stands in for the C, a perturbed copy of it is the
implementation, and a seeded campaign must find the perturbation and shrink it to a minimal
argv that contains the perturbed flag (issue 14)."""
from __future__ import annotations

import contextlib
from typing import Iterator

import pytest

pytest.importorskip("hypothesis")

from engine.sample import lattice  # noqa: E402
from harness.runners.engine import TorchRunner  # noqa: E402
from harness.service.fuzz.campaign import Plan, run_campaign  # noqa: E402
from harness.service.fuzz.example import EngineAsReference  # noqa: E402


@contextlib.contextmanager
def _tophat_off_by(eps: float) -> Iterator[None]:
    original = lattice.tophat

    def perturbed(*args, **kwargs):
        return original(*args, **kwargs) * (1.0 + eps)

    lattice.tophat = perturbed
    try:
        yield
    finally:
        lattice.tophat = original


class PerturbedEngine(TorchRunner):
    """The engine with the tophat spot shape off by 1e-4, only while it runs."""

    name = "torch-perturbed"

    def run(self, request):
        with _tophat_off_by(1e-4):
            return super().run(request)


def test_unperturbed_engine_agrees_with_itself(tmp_path):
    tally = run_campaign(Plan(examples=8, seed=3, families=("shapes",), database=None, max_pixels=16),
                         EngineAsReference(TorchRunner()), TorchRunner())
    assert tally.done == 8
    assert tally.found == []


def test_planted_tophat_bug_is_found_and_shrunk_to_its_flag(tmp_path):
    plan = Plan(examples=60, seed=7, families=("shapes",), database=tmp_path / "db", max_pixels=16)
    tally = run_campaign(plan, EngineAsReference(TorchRunner()), PerturbedEngine())
    assert tally.found, f"no divergence in {tally.done} examples"
    minimal = tally.found[0]
    assert "-binary_spots" in minimal.example.argv
    # Shrunk: the base argv plus the one flag that matters.
    extra = minimal.example.argv[minimal.example.argv.index("-noprogress") + 1:]
    assert extra == ("-binary_spots",), extra
    assert minimal.verdict.signature in ("image",) or minimal.verdict.signature.startswith("trace:")


@pytest.mark.slow
def test_planted_bug_found_against_the_live_c(tmp_path, monkeypatch, capsys):
    """Issue 14's acceptance: `nbparity fuzz --seed S --examples 300` against the live C finds a
    1e-4 perturbation of the tophat shape and shrinks it to an argv with its flag."""
    from harness.cli.main import main
    from harness.runners.choose import binary_problem, find_binary

    binary = find_binary("instrumented-c")
    if binary_problem(binary, "instrumented-c"):
        pytest.skip("no live instrumented C (make c)")
    original = lattice.tophat
    monkeypatch.setattr(lattice, "tophat", lambda *a, **k: original(*a, **k) * (1.0 + 1e-4))
    code = main(["--results-dir", str(tmp_path / "results"), "--cases-dir", str(tmp_path / "cases"), "fuzz",
                 "--seed", "14", "--examples", "300", "--families", "shapes", "--max-pixels", "32"])
    out = capsys.readouterr().out
    assert code == 1
    assert "-binary_spots" in out, out
