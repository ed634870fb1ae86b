"""The printed examples in the README come from real runs: each one is run again here and its
lines and exit code must be what the command prints.

They quote the recordings in ../shared/golden (sha256s, C values), so they are marked ``slow``:
`make docs-check` (run by .ci/run) and `make test-slow` run them, not `make test`, which may run
against recordings regenerated from another build of the C. The matcher's own tests run always.
"""
from __future__ import annotations

import io

import pytest
from rich.console import Console

from harness.cli import main as cli
from harness.cli.common import CliConsole
from tests.docs.readme_examples import examples, missing_lines, readme_path

EXAMPLES = examples(readme_path().read_text(encoding="utf-8"))


def _params():
    for ex in EXAMPLES:
        yield pytest.param(ex, marks=[pytest.mark.slow], id=f"README:{ex.line_no}:{' '.join(ex.command[1:3])}")


def test_the_readme_has_checked_examples():
    assert len(EXAMPLES) >= 3
    assert all(ex.command[0] == "nbparity" for ex in EXAMPLES)
    assert {ex.exit_code for ex in EXAMPLES} >= {0, 1, 2}


@pytest.mark.parametrize("example", list(_params()))
def test_readme_example_is_what_the_command_prints(example, tmp_path, monkeypatch, capsys):
    # The examples show the recordings as the reference: no live C may change them.
    for var in ("NB_C_BIN", "NB_C_FIXED_BIN", "NB_RESULTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    out, err = io.StringIO(), io.StringIO()
    console = CliConsole(out=Console(file=out, width=400), err=Console(file=err, width=400))
    # Evidence and ledger rows go under tmp_path, never into the project's results/.
    rc = cli.main(["--results-dir", str(tmp_path / "results"), *example.command[1:]], console=console)
    printed = out.getvalue() + err.getvalue() + "".join(capsys.readouterr())
    assert rc == example.exit_code, f"README line {example.line_no}: exit {rc}, README says {example.exit_code}"
    missing = missing_lines(example.lines, printed)
    assert not missing, (f"README line {example.line_no}: `{' '.join(example.command)}` no longer prints:\n"
                         + "\n".join(missing) + "\n--- it printed:\n" + printed[-4000:])


def test_the_check_can_fail():
    printed = "╭──╮\n│ case: x      │\n┃ key ┃ C ┃\n│ I_pixel_final │ 2.88e-07 │ 2.88e-07 │ ok │\nVerdict: PARITY (exit 0).\n"
    assert missing_lines(["│ I_pixel_final  │ 2.88e-07  │ … │ ok │", "…", "Verdict: PARITY (exit 0)."], printed) == []
    assert missing_lines(["│ I_pixel_final │ 2.89e-07 │"], printed) == ["│ I_pixel_final │ 2.89e-07 │"]
    # Order matters: a line found only before the previous match is missing.
    assert missing_lines(["Verdict: PARITY", "case: x"], printed) == ["case: x"]
