"""The parity gate: every (case, mode) of the registry against its C reference, one verdict.

Each case is run once per engine mode it has a reference for (``c-parity`` against the
instrumented C, ``spec`` against a fixed C or a spec-mode comparison with the instrumented C).
A run's outcome is one of

* ``pass``  – parity (or, in spec mode against the instrumented C, only divergences that a
  registered C defect explains: the labeller names them "known C defect");
* ``fail``  – a divergence (the message is the first-divergence line and the evidence path);
* ``error`` – a runner failure, a missing/stale/corrupt reference or a missing input: never a
  skip, the comparison did not happen;
* ``xfail`` – marked expected-to-fail in the registry (reason shown) and it failed at what the
  mark names (``expected_failure_at``: the first divergent key, ``image`` or ``engine``); a
  marked run that fails any other way is a ``fail`` (or an ``error``);
* ``xpass`` – marked expected-to-fail but it passed: a failure, so that marks cannot rot.

The gate writes JUnit XML and a markdown summary (also appended to $GITHUB_STEP_SUMMARY),
records every run in the ledger, and exits non-zero on any fail, xpass or error.
"""
from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence
from xml.etree import ElementTree as ET

from harness.report import console as report
from harness.registry.cases import Case
from harness.model.errors import ExitCode
from harness.model.result import ParityResult
from harness.pipeline import Context, RunOptions, run_case
from harness.runners.choose import for_gate
from harness.service import workers

PASS, FAIL, ERROR, XFAIL, XPASS = "pass", "fail", "error", "xfail", "xpass"
BAD = (FAIL, ERROR, XPASS)


@dataclass(frozen=True)
class GateItem:
    case: Case
    mode: str

    @property
    def id(self) -> str:
        return f"{self.case.name}[{self.mode}]"

    @property
    def expected_failure(self) -> Optional[str]:
        return expected_failure(self.case, self.mode)

    @property
    def expected_at(self) -> Optional[str]:
        """What the mark says fails: a trace key's catalog name, 'image' or 'engine'."""
        return expected_failure_at(self.case, self.mode)

    @property
    def reference(self) -> str:
        ref = self.case.references[self.mode]  # type: ignore[index]
        return f"{ref.recording or 'live'} ({ref.kind})"


def expected_failure(case: Case, mode: str) -> Optional[str]:
    """The registry's expected-failure reason for this (case, mode), or None.

    ``expected_failure`` on a reference covers that mode; the case-level field covers the
    case's own mode.
    """
    ref = case.references.get(mode)  # type: ignore[call-overload]
    if ref is not None and ref.expected_failure:
        return ref.expected_failure
    return case.expected_failure if mode == case.mode else None


def expected_failure_at(case: Case, mode: str) -> Optional[str]:
    """What the mark of :func:`expected_failure` names as failing (same precedence)."""
    ref = case.references.get(mode)  # type: ignore[call-overload]
    if ref is not None and ref.expected_failure:
        return ref.expected_failure_at
    return case.expected_failure_at if mode == case.mode else None


def failed_at(result: ParityResult) -> Optional[str]:
    """What failed in a run that did not pass: the first divergent key, 'image' or 'engine'
    (None for a failure that no mark may cover: the reference's or the input's)."""
    if result.status == "runner-failure":
        return "engine" if _engine_failed(result) else None
    if result.status != "divergence":
        return None
    if result.first_divergence is not None:
        return result.first_divergence.key
    return "image"


def plan(cases: Iterable[Case], modes: Optional[Sequence[str]] = None) -> list[GateItem]:
    """One item per case and reference mode (the case's own mode first)."""
    items = []
    for c in sorted(cases, key=lambda c: c.name):
        for mode in sorted(c.references, key=lambda m: (m != c.mode, m)):
            if modes and mode not in modes:
                continue
            items.append(GateItem(c, mode))
    return items


@dataclass
class Outcome:
    item: GateItem
    outcome: str
    message: str
    wall_s: float
    result: Optional[ParityResult] = None
    details: list[str] = field(default_factory=list)

    @property
    def evidence(self) -> Optional[str]:
        return self.result.evidence_dir if self.result else None


def first_line(result: ParityResult) -> str:
    """The one line that says what went wrong (or right): the first divergence, else the image
    verdict, else the failure."""
    if result.status in ("runner-failure", "reference-error", "input-error"):
        return f"{result.status}: {result.failure}"
    fd = result.first_divergence
    if fd is not None:
        comp = fd.worst_component or fd.component
        if fd.verdict in ("C only", "torch only"):
            return f"first divergence: {fd.label} (stage {fd.stage}) only in the {'C' if fd.verdict == 'C only' else 'torch'} trace"
        return (f"first divergence: {fd.label}{f' ({comp})' if comp else ''} at stage {fd.stage}: "
                f"{result.sides[0]} {report.fmt_values(fd.c)} vs {result.sides[1]} {report.fmt_values(fd.torch)}, "
                f"|Δ| {report.fmt_diff(fd)} > {report.fmt_tol(fd)}")
    m = result.image
    if m and not m.get("ok", True):
        traced = "trace agrees, " if result.trace_compared else ""
        return (f"image diverges ({traced}{m.get('reason')}): max|Δ| {report._g(m.get('max_abs_diff'))}, "
                f"max|Δ|/max|C| {report._g(m.get('rel_to_max'))} at (slow, fast) {tuple(m.get('worst_pixel') or ())}")
    if result.status == "divergence":
        return f"divergence: {result.label}"
    parts = []
    if result.trace_compared:
        parts.append(f"trace: {result.counts.get('total', 0)} values within tolerance")
    if m:
        parts.append(f"image within tolerance (max|Δ|/max|C| {report._g(m.get('rel_to_max'))})")
    return "parity: " + ", ".join(parts) if parts else "parity"


def judge(item: GateItem, result: ParityResult) -> tuple[str, str]:
    """(outcome, message) of one run against the registry's expectation."""
    line = first_line(result)
    xf = item.expected_failure
    if result.exit_code == int(ExitCode.PARITY):
        if result.status == "divergence" and result.label:
            line = f"only known C defects diverge ({result.label}); {line}"
        if xf:
            return XPASS, f"passed unexpectedly (marked expected-to-fail: {xf}); remove the mark. {line}"
        return PASS, line
    if result.status in ("reference-error", "input-error"):
        return ERROR, line  # a missing or stale reference is never an expected failure
    at = failed_at(result)
    if xf and at is not None and at == item.expected_at:
        return XFAIL, f"expected failure at {at} ({xf}): {line}"
    if xf:
        # Marked, but it failed some other way: the mark does not cover what happened.
        line = f"failed at {at or result.status}, not at {item.expected_at} as marked ({xf}): {line}"
    return (ERROR if result.status == "runner-failure" else FAIL), line


def _engine_failed(result: ParityResult) -> bool:
    """The reference ran and the engine did not (an unfinished engine feature raises)."""
    ref, eng = result.reference, result.engine
    return bool(ref and ref.exit_code == 0 and eng and eng.runner == "torch" and eng.wall_s is not None)


def run_item(item: GateItem, opts: RunOptions, ctx: Context) -> Outcome:
    t0 = time.monotonic()
    from harness.model.errors import HarnessError  # noqa: PLC0415

    ref = item.case.references[item.mode]  # type: ignore[index]
    source, c_bin = for_gate(ref, opts.source, opts.c_bin)  # the one live-vs-recorded rule, as the gate applies it
    try:
        result = run_case(item.case, RunOptions(**{**opts.__dict__, "mode": item.mode, "source": source, "c_bin": c_bin}), ctx)
    except HarnessError as e:  # before any run: usage/case problems
        return Outcome(item, ERROR, e.message, time.monotonic() - t0)
    outcome, message = judge(item, result)
    evidence = f" (evidence: {result.evidence_dir})" if result.evidence_dir else ""
    return Outcome(item, outcome, message + evidence if outcome in BAD else message, time.monotonic() - t0, result)


def gate_options(source: str = "auto", c_bin: Optional[str] = None, device: str = "cpu", dtype: str = "float64",
                 pictures: bool = True, autotrace: bool = True, command_line: str = "",
                 pictures_on_pass: bool = False, keep_images: bool = False) -> RunOptions:
    # allow_known_defects: a spec-mode run against the instrumented C passes when every
    # divergence is a registered C defect (in c-parity mode labels are always "regression").
    # Pictures and float images are for the runs someone will look at: the ones that do not
    # pass (--pictures, --keep-images: all; --keep-images full frames too, as `run`'s).
    return RunOptions(source=source, c_bin=c_bin, device=device, dtype=dtype, allow_known_defects=True,
                      pictures=pictures, pictures_on_pass=pictures_on_pass, autotrace=autotrace,
                      command_line=command_line, keep_images=True if keep_images else None,
                      images_on_pass=keep_images)


def run_gate(items: Sequence[GateItem], opts: RunOptions, ctx: Context,
             on_done: Callable[[int, Outcome], None] = lambda i, o: None, jobs: int = 1) -> list[Outcome]:
    """Every item's outcome, in plan order; ``on_done(i, outcome)`` is called in that order too.

    jobs > 1 runs the items in that many worker processes (see harness.service.workers).
    """
    return workers.run_in_order(items, lambda item: run_item(item, opts, ctx), on_done, jobs)


def counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    c = {k: 0 for k in (PASS, XFAIL, FAIL, XPASS, ERROR)}
    for o in outcomes:
        c[o.outcome] += 1
    return c


def exit_code(outcomes: Sequence[Outcome], extra_errors: Sequence[str] = ()) -> int:
    if extra_errors or any(o.outcome == ERROR for o in outcomes):
        # runner failures and missing references are as bad as a divergence: the gate is red
        return int(ExitCode.RUNNER_FAILURE) if any(
            o.result is not None and o.result.status == "runner-failure" for o in outcomes if o.outcome == ERROR) \
            else int(ExitCode.USAGE)
    if any(o.outcome in (FAIL, XPASS) for o in outcomes):
        return int(ExitCode.DIVERGENCE)
    return int(ExitCode.PARITY)


# ---------------------------------------------------------------- reports


def junit_xml(outcomes: Sequence[Outcome], wall_s: float, extra_errors: Sequence[str] = (),
              name: str = "nbparity-gate") -> str:
    c = counts(outcomes)
    suite = ET.Element("testsuite", name=name, tests=str(len(outcomes) + len(extra_errors)),
                       failures=str(c[FAIL] + c[XPASS]), errors=str(c[ERROR] + len(extra_errors)),
                       skipped=str(c[XFAIL]), time=f"{wall_s:.3f}",
                       timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    for o in outcomes:
        tc = ET.SubElement(suite, "testcase", classname=f"nbparity.{o.item.mode}", name=o.item.id,
                           time=f"{o.wall_s:.3f}")
        if o.outcome == FAIL:
            ET.SubElement(tc, "failure", message=o.message, type="divergence").text = _details(o)
        elif o.outcome == XPASS:
            ET.SubElement(tc, "failure", message=o.message, type="unexpected-pass").text = _details(o)
        elif o.outcome == ERROR:
            ET.SubElement(tc, "error", message=o.message,
                          type=o.result.status if o.result else "error").text = _details(o)
        elif o.outcome == XFAIL:
            ET.SubElement(tc, "skipped", message=o.message, type="expected-failure")
        if o.evidence:
            ET.SubElement(tc, "system-out").text = f"evidence: {o.evidence}\n"
    for i, e in enumerate(extra_errors):
        tc = ET.SubElement(suite, "testcase", classname="nbparity.registry", name=f"registry[{i}]", time="0")
        ET.SubElement(tc, "error", message=e, type="registry")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _details(o: Outcome) -> str:
    if o.result is None:
        return o.message
    return "\n".join(report.summary_lines(o.result) + ([f"evidence: {o.evidence}"] if o.evidence else []))


_ICON = {PASS: "✅ pass", XFAIL: "⚪ xfail", FAIL: "❌ FAIL", XPASS: "❌ XPASS", ERROR: "❌ ERROR"}


def markdown(outcomes: Sequence[Outcome], wall_s: float, *, source: str, extra_errors: Sequence[str] = (),
             title: str = "nbparity gate") -> str:
    c = counts(outcomes)
    code = exit_code(outcomes, extra_errors)
    verdict = "green" if code == 0 else "RED"
    lines = [f"## {title}: {verdict}", "",
             f"{len(outcomes)} runs over {len({o.item.case.name for o in outcomes})} cases in {wall_s:.0f} s "
             f"({source}): **{c[PASS]} pass**, {c[XFAIL]} expected failures, **{c[FAIL]} fail**, "
             f"**{c[XPASS]} unexpected pass**, **{c[ERROR]} error**.", ""]
    for e in extra_errors:
        lines.append(f"- ❌ registry: {_md(e)}")
    if extra_errors:
        lines.append("")
    lines += ["| case | mode | reference | outcome | first divergence / note | time (s) |",
              "|---|---|---|---|---|---:|"]
    order = {FAIL: 0, XPASS: 0, ERROR: 0, XFAIL: 1, PASS: 2}
    for o in sorted(outcomes, key=lambda o: (order[o.outcome], o.item.id)):
        lines.append(f"| {o.item.case.name} | {o.item.mode} | {_md(o.item.reference)} | {_ICON[o.outcome]} | "
                     f"{_md(o.message)} | {o.wall_s:.1f} |")
    bad = [o for o in outcomes if o.outcome in BAD and o.evidence]
    if bad:
        lines += ["", "Evidence of the failing runs (under the uploaded `results/`):", ""]
        lines += [f"- {o.item.id}: `{o.evidence}`" for o in bad]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def write_step_summary(text: str) -> Optional[Path]:
    """Append to $GITHUB_STEP_SUMMARY when set (GitHub Actions shows it on the run page)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return Path(target)
