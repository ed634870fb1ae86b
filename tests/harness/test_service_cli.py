"""history / flips / report / bisect subcommands, over ledgers written the way `run` will write them."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli import main as cli
from harness.service import ledger
from harness.cli.common import CliConsole
from harness.cli.registry import COMMANDS
from harness.report import pictures as visual
from harness.model.errors import UsageError
from harness.model.paths import REPO_ROOT
from harness.pipeline import Context, RunOptions, run_case
from tests.harness.conftest import recorded_image
from tests.harness.test_bisect import FAKE_HARNESS, git_identity, make_repo  # noqa: F401 - fixture



def parser() -> argparse.ArgumentParser:
    """nbparity's own parser, so the service wiring in harness/cli/main.py is tested too."""
    return cli.build_parser()


def run(capsys, argv):
    """(exit code, stdout: console text plus printed JSON, stderr console text)."""
    out_buf, err_buf = io.StringIO(), io.StringIO()
    out = Console(file=out_buf, width=250, color_system=None)
    err = Console(file=err_buf, width=250, color_system=None)
    capsys.readouterr()
    args = parser().parse_args(argv)
    rc = args.handler(args, CliConsole(out, err))
    return rc, out_buf.getvalue() + capsys.readouterr().out, err_buf.getvalue()


def _bump(img):
    img[40, 3] += 0.25
    return img


@pytest.fixture
def two_runs(tmp_path, golden_dir, fake_engine, repo_case):
    """phi_carryover at parity, then with a deliberately wrong engine pixel: each run recorded
    in the ledger and given its pictures, as the lead's wiring in `nbparity run` will do."""
    res_dir = tmp_path / "results"
    ctx = Context(golden_dir=golden_dir, results_dir=res_dir, cases_dir=REPO_ROOT / "cases")
    case = repo_case("phi_carryover")
    c = recorded_image(golden_dir, "phi_carryover")
    center = visual.beam_center_from_stdout((golden_dir / "cases" / "phi_carryover" / "c_stdout.log").read_text())
    results = []
    for edit in (None, _bump):
        fake_engine("phi_carryover", image_edit=edit)
        r = run_case(case, RunOptions(source="recorded"), ctx)
        t = edit(c.copy()) if edit else c.copy()
        visual.write_run_images(r.evidence_dir, c, t, beam_center=center, traced=[r.pixel],
                                worst=r.image["worst_pixel"], case=case.name)
        assert ledger.record(r, res_dir, command="run", git=("abc", False, "main")) is not None
        results.append(r)
    return res_dir, results


def test_flips_reports_the_real_regression(two_runs, capsys):
    res_dir, results = two_runs
    assert [r.status for r in results] == ["parity", "divergence"]
    rc, out, _ = run(capsys, ["--results-dir", str(res_dir), "flips"])
    assert rc == 0 and "phi_carryover" in out and "parity" in out and "divergence" in out
    rc, out, _ = run(capsys, ["--results-dir", str(res_dir), "flips", "--strict", "--json"])
    data = json.loads(out)
    assert rc == 1 and data[0]["case_name"] == "phi_carryover" and data[0]["regressed"] is True


def test_history_prints_table_and_writes_plot(two_runs, capsys):
    res_dir, _ = two_runs
    rc, out, _ = run(capsys, ["--results-dir", str(res_dir), "history", "phi_carryover", "--key", "k_frac"])
    assert rc == 0
    assert "history of phi_carryover (key k_frac): 2 runs" in out and "⇄ fail (divergence)" in out
    png = res_dir / "history" / "phi_carryover__k_frac.png"
    assert f"plot: {png}" in out and png.stat().st_size > 10_000
    rc, out, _ = run(capsys, ["--results-dir", str(res_dir), "history", "phi_carryover", "--json"])
    rows = json.loads(out)
    assert [r["status"] for r in rows] == ["parity", "divergence"]
    assert rows[1]["image_max_abs_diff"] == pytest.approx(0.25, rel=1e-5)


def test_history_errors_are_one_line(two_runs, capsys):
    res_dir, _ = two_runs
    with pytest.raises(UsageError, match="no runs of 'nope'"):
        run(capsys, ["--results-dir", str(res_dir), "history", "nope"])
    with pytest.raises(UsageError, match="--key: unknown trace key"):
        run(capsys, ["--results-dir", str(res_dir), "history", "phi_carryover", "--key", "zzz"])


def test_report_links_the_real_evidence_pictures(two_runs, tmp_path, capsys):
    res_dir, results = two_runs
    rc, out, _ = run(capsys, ["--results-dir", str(res_dir), "report", "--out", str(tmp_path / "site")])
    assert rc == 0 and "1 cases, 2 runs" in out
    page = (tmp_path / "site" / "index.html").read_text()
    ev = results[1].evidence_dir
    # --out outside the results directory: the pictures are copied under it (the page can move).
    rel = f"_evidence/phi_carryover/{ev.rsplit('/', 1)[1]}"
    assert f'src="{rel}/abs_diff.png"' in page
    assert (tmp_path / "site" / rel / "abs_diff.png").read_bytes() == (Path(ev) / "abs_diff.png").read_bytes()
    assert page.count("<circle") == 2 and "divergence" in page


def test_bisect_command_on_a_throwaway_repo(tmp_path, capsys):
    repo, shas = make_repo(tmp_path, [0.0, 0.0, 0.0, 0.0, 2e-6, 2e-6],
                           extra_files={"harness/__init__.py": "", "harness/__main__.py": FAKE_HARNESS})
    rc, out, err = run(capsys, ["bisect", "toy", "--good", shas[0], "--bad", "main", "--repo", str(repo), "--json"])
    res = json.loads(out)
    assert rc == 0 and res["first_bad"] == shas[4] and res["verdict"]["first_key"] == "hkl_frac"
    assert "probed" in err
    rc, out, _ = run(capsys, ["bisect", "toy", "--good", shas[0], "--bad", shas[-1], "--repo", str(repo),
                      "--key", "k_frac", "--tolerance", "1e-6"])
    assert rc == 0 and f"first bad commit: {shas[4]} commit 4" in out
    assert "first divergent key there: hkl_frac (|Δ| 2e-06)" in out


def test_every_registered_command_is_in_the_main_parser_with_its_own_handler():
    p = cli.build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(c.NAME for c in COMMANDS)
    for c in COMMANDS:
        assert sub.choices[c.NAME].get_default("handler") is c.handle, c.NAME
    args = p.parse_args(["--results-dir", "/tmp/x", "history", "c1", "--key", "k_frac"])
    assert (args.command, args.case, args.key, args.results_dir) == ("history", "c1", "k_frac", "/tmp/x")
