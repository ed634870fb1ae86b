"""The static HTML report over a ledger whose latest run has real evidence pictures."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

from harness.service import html as html_report
from harness.service import ledger
from harness.report import pictures as visual
from harness.report.evidence import EvidenceDir
from tests.harness.conftest import recorded_image
from tests.harness.service_fixtures import append, make_result, silent_ledger



class Page(HTMLParser):
    """Collects rows (data-case → text, links, svg circles, image sources)."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, dict] = {}
        self.cur = None
        self.flips: list[str] = []
        self._in_flips = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-case" in a:
            self.cur = self.rows.setdefault(a["data-case"], {"text": "", "links": [], "circles": 0,
                                                             "imgs": [], "points": 0})
        elif tag == "ul" and a.get("class") == "flips":
            self._in_flips = True
        elif self.cur is not None:
            if tag == "a":
                self.cur["links"].append(a["href"])
            elif tag == "circle":
                self.cur["circles"] += 1
            elif tag == "img":
                self.cur["imgs"].append(a["src"])
            elif tag == "polyline":
                self.cur["points"] = len(a["points"].split())

    def handle_endtag(self, tag):
        if tag == "tr":
            self.cur = None
        elif tag == "ul":
            self._in_flips = False

    def handle_data(self, data):
        if self.cur is not None:
            self.cur["text"] += data
        if self._in_flips and data.strip():
            self.flips.append(data)


@pytest.fixture
def results(tmp_path, golden_dir):
    """results/ with a ledger: 'lattice_gauss' diverging in its last run (with pictures), 'b' green."""
    res = tmp_path / "results"
    lg = silent_ledger(ledger.ledger_path(res))
    c = recorded_image(golden_dir, "lattice_gauss")
    t = c.copy()
    t[20, 30] += 2.0
    with EvidenceDir(res, "lattice_gauss") as ev:
        ev.write_text("report.txt", "x")
        visual.write_run_images(ev.staging, c, t, beam_center=(128.5, 128.5), traced=[(129, 138)])
        final = ev.commit()
    append(lg, "lattice_gauss", "parity", 0, commit="1111111111aa")
    append(lg, "b", "parity", 1, evidence_dir=str(tmp_path / "vanished"))
    append(lg, "lattice_gauss", "parity", 2, commit="2222222222bb", k_delta=3e-7)
    append(lg, "lattice_gauss", "divergence", 3, commit="3333333333cc", k_delta=5e-6, image_delta=2.0,
           evidence_dir=str(final))
    append(lg, "b", "parity", 4)
    return res, final


def test_report_has_one_row_per_case_with_links_and_sparkline(results):
    res, final = results
    out = html_report.write_report(ledger.Ledger.under(res).read(), res)
    assert out == res / "index.html"
    text = out.read_text()
    assert len(text) > 3000 and "<script" not in text
    page = Page()
    page.feed(text)
    assert set(page.rows) == {"lattice_gauss", "b"}
    lat = page.rows["lattice_gauss"]
    assert "divergence" in lat["text"] and "hkl_frac" in lat["text"] and "5e-06" in lat["text"]
    assert "4 runs" not in lat["text"] and "3 runs" in lat["text"]
    assert lat["circles"] == 3 and lat["points"] == 3
    # Links are relative to the page and point at files that exist.
    for href in lat["links"] + lat["imgs"]:
        assert not href.startswith("/"), href
        assert (res / href).exists(), href
    assert f"lattice_gauss/{final.name}/" in lat["links"]
    assert f"lattice_gauss/{final.name}/abs_diff.png" in lat["imgs"]
    assert any(h.endswith("radial_profile.png") for h in lat["links"])
    assert (res / lat["imgs"][0]).stat().st_size > 15_000
    b = page.rows["b"]
    assert "parity" in b["text"] and b["circles"] == 2 and b["links"] == []
    assert "lattice_gauss" in "".join(page.flips) and "divergence" in "".join(page.flips)


def test_report_written_elsewhere_is_self_contained_and_survives_a_move(tmp_path, results):
    res, final = results
    out = html_report.write_report(ledger.Ledger.under(res).read(), tmp_path / "site" / "deep")
    # Moved (as a CI artifact would be) and the results directory gone: every link still works.
    moved = tmp_path / "artifact"
    out.parent.rename(moved)
    res.rename(tmp_path / "results-gone")
    page = Page()
    page.feed((moved / "index.html").read_text())
    row = page.rows["lattice_gauss"]
    href = row["imgs"][0]
    assert href == f"_evidence/lattice_gauss/{final.name}/abs_diff.png"
    assert (moved / href).read_bytes() == (tmp_path / "results-gone" / "lattice_gauss" / final.name
                                           / "abs_diff.png").read_bytes()
    for link in row["links"] + row["imgs"]:
        assert not link.startswith(("/", "..")), link
        assert (moved / link).exists(), link
    assert f"_evidence/lattice_gauss/{final.name}/report.txt" in row["links"]


def test_sparkline_puts_larger_deltas_higher():
    svg = html_report.sparkline([1e-9, 0.0, 1e-3], ["pass", "pass", "fail"])
    pts = [tuple(map(float, p.split(","))) for p in svg.split('points="')[1].split('"')[0].split()]
    assert pts[2][1] < pts[0][1] < pts[1][1] or pts[2][1] < pts[0][1] == pts[1][1]
    assert svg.count("#cf222e") == 1 and svg.count("<circle") == 3


def test_escapes_untrusted_text(tmp_path):
    lg = silent_ledger(tmp_path / "l.sqlite")
    row = ledger.row_from_result(make_result("evil"), git=("c", False, "main"))
    row["label"] = "<script>alert(1)</script>"
    lg.append(row)
    text = html_report.render_html(lg.read(), tmp_path)
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_empty_ledger_gives_a_page_that_says_so(tmp_path):
    text = html_report.render_html(ledger.empty_frame(), tmp_path)
    assert "0 cases" in text and "<tbody>\n\n</tbody>" in text


def test_report_shows_the_gate_outcome_known_defects_green(tmp_path):
    """A spec run that only diverges by registered C defects passes the gate: green, labelled."""
    res = tmp_path / "res"
    lg = silent_ledger(ledger.ledger_path(res))
    row = ledger.row_from_result(make_result("phi_carryover", status="divergence", mode="spec"), command="gate",
                                 git=("c", False, "main"), outcome="pass")
    row.update(exit_code=0, label="known C defect (phi0-stale-rotation)")
    lg.append(row)
    lg.append(ledger.row_from_result(make_result("lattice_gauss", status="divergence"), command="gate",
                                     git=("c", False, "main"), outcome="fail"))
    text = html_report.write_report(ledger.Ledger.under(res).read(), res).read_text()
    known = text.split('data-case="phi_carryover"')[1].split("</tr>")[0]
    assert 'class="parity">pass (divergence)' in known and "known C defect (phi0-stale-rotation)" in known
    bad = text.split('data-case="lattice_gauss"')[1].split("</tr>")[0]
    assert 'class="divergence">fail (divergence)' in bad
    assert "1 green" in text


def test_copies_the_page_no_longer_links_are_pruned(tmp_path, results):
    res, final = results
    site = tmp_path / "site"
    stale = site / html_report.ASSETS / "lattice_gauss" / "20200101T000000.000000Z"
    stale.mkdir(parents=True)
    (stale / "abs_diff.png").write_bytes(b"old")
    html_report.write_report(ledger.Ledger.under(res).read(), site)
    assert not stale.exists()
    assert (site / html_report.ASSETS / "lattice_gauss" / final.name / "abs_diff.png").is_file()
    # With --out the results directory itself nothing is copied, and no evidence is ever pruned.
    html_report.write_report(ledger.Ledger.under(res).read(), res)
    assert not (res / html_report.ASSETS).exists() and (final / "abs_diff.png").is_file()
