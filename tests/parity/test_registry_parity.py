"""The parity suite: every (case, reference mode) of the registry, through the harness, against
the recorded C (a live C binary when one is found, as in `nbparity gate`).

Marker ``parity``; full-frame cases are also ``slow`` (the default run leaves them out: `make
test-slow` or `nbparity gate` runs them). A failing case's message is its first-divergence line
and its evidence directory; a case marked expected-to-fail in the registry is an xfail, and
fails the moment it passes. Runs in parallel under pytest-xdist (``-n auto``).

Evidence goes under $NB_RESULTS_DIR when set, else under pytest's temporary directory.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.service import gate
from harness.model import paths
from harness.registry.cases import Registry
from harness.pipeline import Context

CASES, LOAD_ERRORS = Registry(paths.cases_dir()).load_all()
ITEMS = gate.plan(CASES)
SLOW_TAGS = {"full-frame"}


def _param(item: gate.GateItem):
    marks = [pytest.mark.parity]
    if SLOW_TAGS & set(item.case.tags):
        marks.append(pytest.mark.slow)
    return pytest.param(item, id=item.id, marks=marks)


@pytest.fixture(scope="session")
def evidence_root(tmp_path_factory) -> Path:
    env = os.environ.get("NB_RESULTS_DIR")
    return Path(env) if env else tmp_path_factory.mktemp("parity-evidence")


@pytest.mark.parity
def test_every_case_file_loads():
    assert not LOAD_ERRORS, "\n".join(e.message for e in LOAD_ERRORS)
    assert ITEMS


@pytest.mark.parametrize("item", [_param(i) for i in ITEMS])
def test_parity(item: gate.GateItem, golden_dir, evidence_root):
    ctx = Context(golden_dir=golden_dir, results_dir=evidence_root, cases_dir=paths.cases_dir())
    o = gate.run_item(item, gate.gate_options(), ctx)
    if o.outcome == gate.XFAIL:
        pytest.xfail(o.message)
    if o.outcome != gate.PASS:
        pytest.fail(f"{o.outcome.upper()} {item.id}: {o.message}", pytrace=False)
