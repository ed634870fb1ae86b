"""The console view is what a person reads: a long trace collapses; the evidence keeps every row."""
from __future__ import annotations

from harness.model.result import ParityResult, RowModel
from harness.report import console


def _row(key: str, occ: int, diff: float, stage: str = "phi", verdict: str = "ok") -> RowModel:
    return RowModel(label=f"phi[{occ}].{key}", kind="phi", key=key, stage=stage, occurrence=occ, phi_tic=occ,
                    components=["v"], component=None, c=[1.0], torch=[1.0 + diff], abs_diff=diff,
                    worst_component=None, atol=1e-6, rtol=0.0, verdict=verdict)


def _result(rows: list[RowModel], first: RowModel | None) -> ParityResult:
    return ParityResult(case="toy", mode="c-parity", pixel=(1, 2), status="divergence" if first else "parity",
                        exit_code=1 if first else 0, trace_compared=True, rows=rows, first_divergence=first,
                        counts={"total": len(rows)})


def test_thousands_of_repeated_rows_read_as_one_row_per_key():
    rows = [_row(k, i, 0.0) for i in range(2000) for k in ("k_frac", "F_latt", "F_latt_b")]
    rows[3001] = _row("F_latt", 1000, 0.5, verdict="diverged")
    text = console.export_text(_result(rows, rows[3001]))
    assert len(text.splitlines()) < 40
    assert "F_latt ×2000" in text and "◀ FIRST diverged (1 of 2000)" in text and "0.5" in text
    full = console.trace_table_text(rows, _result(rows, rows[3001]))
    assert len(full.splitlines()) == 2 + len(rows)  # the evidence keeps every row
    assert "◀ FIRST diverged" in full.splitlines()[2 + 3001]


def test_a_passing_trace_is_one_line_per_stage():
    rows = [_row("k_frac", i, 1e-9 * i, stage="phi") for i in range(500)] + \
           [_row("I_pixel_final", 0, 2e-12, stage="image value")]
    result = _result(rows, None)
    table = console.stage_summary(result)
    assert table.columns[0]._cells == ["phi", "image value"]
    assert table.columns[2]._cells == ["500", "1"]
    assert table.columns[4]._cells == ["phi[499].k_frac", "phi[0].I_pixel_final"]  # each stage's worst value
    text = console.export_text(result)
    assert "Trace: all 501 aligned values within tolerance." in text and "phi[10].k_frac" not in text


def test_a_long_trace_shows_the_keys_around_the_first_divergence():
    rows = [_row(f"key{i:03d}", 0, 0.0, stage=f"s{i}") for i in range(100)]
    rows[70] = _row("key070", 0, 1.0, stage="s70", verdict="diverged")
    table = console.diff_table(_result(rows, rows[70]))
    labels = table.columns[1]._cells
    assert "phi[0].key070" in labels and "phi[0].key000" not in labels and "phi[0].key099" not in labels
    assert "keys hidden" in str(table.title)
    assert len(console.diff_table(_result(rows, rows[70]), full=True).columns[1]._cells) == 100
