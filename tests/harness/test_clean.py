"""`nbparity clean`: old evidence goes; a case's latest run and its last green run on main stay."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
from rich.console import Console

from harness.cli import main as cli
from harness.cli.common import CliConsole
from harness.model.errors import UsageError
from harness.report.evidence import EvidenceDir
from harness.service import clean, ledger
from tests.harness.service_fixtures import append, silent_ledger

NOW = datetime(2030, 6, 1, tzinfo=timezone.utc)


def _runs(res, case, days_ago):
    out = []
    for d in days_ago:
        with EvidenceDir(res, case, now=NOW - timedelta(days=d)) as ev:
            ev.write_text("report.txt", f"{case} {d}\n")
            out.append(ev.commit())
    return out


@pytest.fixture
def results(tmp_path):
    """Case a: runs 10, 8, 6, 4, 2 days old; the 8-day one is its last green run on main (the
    later green one was dirty). Case b: one run."""
    res = tmp_path / "results"
    a = _runs(res, "a", [10, 8, 6, 4, 2])
    b = _runs(res, "b", [30])
    lg = silent_ledger(ledger.ledger_path(res))
    append(lg, "a", "parity", 1, evidence_dir=str(a[1]))
    append(lg, "a", "parity", 2, evidence_dir=str(a[2]), dirty=True)
    append(lg, "a", "divergence", 3, evidence_dir=str(a[3]))
    (res / "gate_summary.md").write_text("not evidence")
    return res, a, b


def _plan(res, **kw):
    return clean.plan(res, ledger.Ledger.under(res).read(), now=NOW, **kw)


def test_keep_n_never_removes_latest_or_last_green(results):
    res, a, b = results
    p = _plan(res, keep=1)
    assert sorted(p.delete) == sorted([a[0], a[2], a[3]])
    assert p.kept[a[4]] == "latest run of the case" and p.kept[b[0]] == "latest run of the case"
    assert p.kept[a[1]].startswith("last green run on main")


def test_older_than_and_keep_combine(results):
    res, a, _ = results
    assert sorted(_plan(res, older_than=timedelta(days=5)).delete) == sorted([a[0], a[2]])
    assert _plan(res, keep=4, older_than=timedelta(days=5)).delete == [a[0]]
    assert _plan(res, older_than=timedelta(days=60)).delete == []


def test_cli_dry_run_lists_and_removes_nothing_then_removes(results, tmp_path):
    res, a, b = results
    out = io.StringIO()
    console = CliConsole(out=Console(file=out, width=300), err=Console(file=io.StringIO()))
    assert cli.main(["--results-dir", str(res), "clean", "--keep", "2", "--dry-run"], console=console) == 0
    text = out.getvalue()
    assert f"would remove {a[2]}" in text and f"would remove {a[0]}" in text and str(a[3]) not in text
    assert "would remove 2 evidence directories" in text and "1 last green runs on main" in text
    assert all(d.is_dir() for d in a + b)
    assert cli.main(["--results-dir", str(res), "clean", "--keep", "2"], console=console) == 0
    assert [d.is_dir() for d in a] == [False, True, False, True, True] and b[0].is_dir()
    assert (res / "gate_summary.md").is_file() and ledger.ledger_path(res).is_file()


def test_usage_errors(results):
    res, _, _ = results
    with pytest.raises(UsageError, match="--keep N"):
        _plan(res)
    with pytest.raises(UsageError, match="at least 1"):
        _plan(res, keep=0)
    with pytest.raises(UsageError, match="did you mean: a"):
        _plan(res, keep=1, cases=["aa"])
    assert clean.parse_age("12h") == timedelta(hours=12) and clean.parse_age("2w") == timedelta(days=14)
    with pytest.raises(ValueError, match="7d"):
        clean.parse_age("7 days")
    assert cli.main(["--results-dir", str(res), "clean", "--older-than", "7 days"],
                    console=CliConsole(out=Console(file=io.StringIO()), err=Console(file=io.StringIO()))) == 2
