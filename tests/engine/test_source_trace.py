"""Per-source trace lines: the engine prints the C's TRACE_C_SOURCE2 block (source 2, φ step 0,
mosaic domain 0, after that term's F_cell) as TRACE_PY_SOURCE2, and the harness aligns the two
per source index, as φ lines are aligned per phi_tic."""
from __future__ import annotations

import dataclasses

import pytest

from engine.config.setup import build_setup
from engine.render.trace_only import render_trace_only
from harness.compare import keys, traces
from harness.compare.primitive import Tolerance, ToleranceTable, align, first_divergence
from tests.conftest import golden_root
from tests.engine.test_golden_parity import _in_dir, case_json, engine_run, golden_stdout

MULTI_SOURCE = ("sourcefile", "divergence_dispersion")
# The engine's trace bar (cases/*.toml): 1e-6 absolute plus 1e-9 relative.
BAR = ToleranceTable(Tolerance(atol=1e-6, rtol=1e-9))


def _rows(c_stdout: str, py_stdout: str):
    return align(traces.parse(c_stdout, "C"), traces.parse(py_stdout, "PY"), BAR)


@pytest.mark.parametrize("name", MULTI_SOURCE)
def test_the_engine_prints_every_per_source_line_the_c_prints(golden_dir, name):
    c_stdout = golden_stdout(name)
    rows = [r for r in _rows(c_stdout, engine_run(name, "c-parity").stdout) if r.kind == "source"]
    assert len(rows) == c_stdout.count("TRACE_C_SOURCE2:") > 0
    assert {r.source_index for r in rows} == {2}
    assert [r.label for r in rows if not r.ok] == []


def _perturbed_source_trace(name: str, source: int, factor: float) -> str:
    """The engine's set-up and pixel trace with one source's wavelength scaled by ``factor``."""
    with _in_dir(golden_root()):
        setup = build_setup(case_json(name)["argv"], mode="c-parity")
    wavelengths = setup.beam.wavelengths.clone()
    wavelengths[source] *= factor
    setup = dataclasses.replace(setup, beam=dataclasses.replace(setup.beam, wavelengths=wavelengths))
    return "\n".join([*setup.setup_trace, *render_trace_only(setup).trace])


def test_a_perturbed_source_is_the_first_divergence(golden_dir):
    """Source 2's wavelength off by 1e-5: source 0's lines all agree, and the first divergence
    is source 2's own line, ahead of the pixel sums it feeds (I_before_scaling)."""
    rows = _rows(golden_stdout("sourcefile"), _perturbed_source_trace("sourcefile", 2, 1 + 1e-5))
    first = first_divergence(rows).first
    assert first is not None and first.kind == "source" and first.label == "source[2].lambda_angstroms"
    assert any(r.key == "I_before_scaling" and not r.ok for r in rows)
    assert all(r.ok for r in rows if r.kind in ("pixel", "phi") and r.stage in ("pixel position", "scattering"))


def test_a_changed_per_source_value_is_found_at_its_own_line_and_source(golden_dir):
    c_stdout = golden_stdout("sourcefile")
    lines = traces.to_engine_prefix(c_stdout).splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("TRACE_PY_SOURCE2: F_cell_squared ")][1]
    lines[at] += "5"       # the second sub-pixel's value, in its last digit
    py_stdout = "\n".join(lines)
    first = first_divergence(_rows(c_stdout, py_stdout)).first
    assert first is not None and first.label == "source[2].F_cell_squared#1"
    # Lines of another source index are not paired with source 2's.
    other = traces.to_engine_prefix(c_stdout).replace("TRACE_PY_SOURCE2:", "TRACE_PY_SOURCE3:")
    verdicts = {r.verdict for r in _rows(c_stdout, other) if r.kind == "source"}
    assert verdicts == {"C only", "torch only"}


def test_per_source_fields_can_be_selected():
    assert [s.kind for s in keys.resolve("source:I_contribution")] == ["source"]
    with pytest.raises(KeyError, match="per-source field"):
        keys.resolve("source:nope")
