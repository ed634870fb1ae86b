"""`nbparity run CASE --impl A --vs B`: one parity run between any two registered implementations.

B is the reference (the C column, the right of the relative tolerance), A the one under test.
The default pair, the bundled engine against the C, is today's run (harness.pipeline.run_case)
unchanged. Any other pair runs both sides through harness.runners.external, aligns their traces
through each side's key and unit tables (harness.compare.conventions) and compares the images
with the case's bars; the evidence directory and the result name both sides.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Optional, Sequence

from harness.compare.conventions import compare_pair_traces
from harness.compare.verdict import Bars, Outcome, Sides, compare_images
from harness.model.errors import ExitCode, HarnessError
from harness.model.result import ParityResult, RunInfo, jsonable
from harness.model.run import RunOutput
from harness import pipeline
from harness.pipeline import Context, Plan, RunOptions, check, run_case
from harness.registry import profiles
from harness.registry.cases import Case
from harness.registry.implementations import DEFAULT_IMPL, DEFAULT_VS, Implementation
from harness.report.evidence import EvidenceDir
from harness.runners.base import Runner
from harness.runners.external import runner_for
from harness.service.gate import ERROR, FAIL, PASS, XFAIL, XPASS, GateItem, judge
from harness.service.gate import Outcome as GateOutcome
from harness.service import workers

#: The label of a pair's divergence (the C-defect labels describe the engine against the C only).
PAIR_LABEL = "implementations differ"


@dataclass(frozen=True)
class Pair:
    """A (under test) against B (reference), both resolved from the registry."""

    impl: Implementation
    vs: Implementation

    @property
    def is_default(self) -> bool:
        return (self.impl.name, self.vs.name) == (DEFAULT_IMPL, DEFAULT_VS)

    @property
    def title(self) -> str:
        return f"{self.impl.name} vs {self.vs.name}"


def run_pair(case: Case, pair: Pair, opts: RunOptions, ctx: Context) -> ParityResult:
    """One run of ``pair`` on ``case`` with its evidence directory (exit code on the result)."""
    if pair.is_default:
        return run_case(case, opts, ctx)
    plan = check(case, opts, ctx)  # mode, keys, pixel, inputs: refused before anything runs
    req = plan.request
    ref_runner, why_ref = runner_for(pair.vs, req, ctx.golden_dir, opts.source, opts.c_bin)
    cand_runner, why_cand = runner_for(pair.impl, req, ctx.golden_dir, opts.source, opts.c_bin)
    plan = replace(plan, ref_runner=ref_runner, why=f"{pair.title}: {why_ref}; {why_cand}")
    result = ParityResult(case=case.name, mode=req.mode, pixel=req.pixel, status="parity", exit_code=0,
                          keys_filter=list(opts.keys), reference_choice=plan.why, sides=(pair.vs.name, pair.impl.name))
    outs = pipeline.Outputs()
    outcome = Outcome()
    with EvidenceDir(ctx.results_dir, case.name) as ev:
        try:
            for side, runner, impl in (("reference", ref_runner, pair.vs), ("engine", cand_runner, pair.impl)):
                with ctx.progress(f"{impl.name} …"):
                    setattr(outs, side, runner.run(req))
                ctx.done(f"{impl.name}: {getattr(outs, side).description} ({getattr(outs, side).wall_s:.1f} s)")
            outcome = _compare(pair, plan, outs.reference, outs.engine)
            update = outcome.update
        except HarnessError as e:
            update = pipeline.failure_update(e, outs)  # the one rule for what a failed run keeps
        update.update(reference=_info(outs.reference, ref_runner, pair.vs),
                      engine=_info(outs.engine, cand_runner, pair.impl))
        result = result.model_copy(update=update)
        ev.write_json("pair.json", {"impl": pair.impl.model_dump(mode="json"), "vs": pair.vs.model_dump(mode="json")})
        # The same evidence as a default run: commands, traces, images kept, report, pictures.
        result = pipeline.write_evidence(ev, result, outcome, plan, outs, opts, replace(ctx, engine_runner=cand_runner))
        final = ev.commit()
    return result.model_copy(update=dict(evidence_dir=str(final)))


def _compare(pair: Pair, plan: Plan, ref: RunOutput, cand: RunOutput) -> Outcome:
    req = plan.request
    traced = ref.trace_supported and cand.trace_supported
    profile = profiles.for_dtype(req.case, req.dtype)  # the one place bars come from
    if traced:
        out = compare_pair_traces(ref.stdout, cand.stdout, pair.vs.convention(), pair.impl.convention(),
                                  profile.tolerances, plan.selectors)
    else:
        out = Outcome()
        who = pair.vs.name if not ref.trace_supported else pair.impl.name
        out.update.update(trace_compared=False, trace_note=f"image-only pair: {who} prints no trace")
    sides = Sides(c_stdout=ref.stdout, torch_stdout=cand.stdout, c_image=ref.image, torch_image=cand.image,
                  trace_supported=traced, want_image=req.want_image)
    bars = Bars(tolerances=profile.tolerances, image=profile.image, argv=req.case.argv,
                mode=req.mode, reference_traced=traced, reference_kind=req.reference.kind)
    image_diverged, _ = compare_images(sides, bars, None, out)
    if image_diverged or out.update.get("first_divergence") is not None:
        out.update.update(status="divergence", exit_code=int(ExitCode.DIVERGENCE), label=PAIR_LABEL)
    elif not traced and "image" not in out.update:
        out.update.update(status="input-error", exit_code=int(ExitCode.USAGE),
                          failure="nothing to compare: an image-only pair and --trace-only")
    return out


def _info(out: Optional[RunOutput], runner: Runner, impl: Implementation) -> RunInfo:
    if out is None:
        return RunInfo(runner=impl.name, description=f"{impl.name} (did not finish)", trace_supported=impl.can.trace)
    return RunInfo(runner=impl.name, description=out.description, trace_supported=out.trace_supported,
                   wall_s=round(out.wall_s, 3), exit_code=out.exit_code,
                   provenance=jsonable({**out.provenance, "runner": getattr(runner, "name", "")}))


def pair_options(opts: RunOptions, **changes) -> RunOptions:
    """RunOptions for a pair run (autotrace re-runs the engine against the C: not for other pairs)."""
    return replace(opts, autotrace=False, **changes)


# ---------------------------------------------------------------- the gate over a pair


@dataclass(frozen=True)
class PairItem(GateItem):
    """One case of the registry run as a pair. The case file's expected-failure marks describe the
    bundled engine against the C and never apply here; the marks that do are the implementation
    under test's own (its registry entry's ``expected_failures`` for this case and reference)."""

    pair: Optional[Pair] = None

    @property
    def id(self) -> str:
        return f"{self.case.name}[{self.pair.title if self.pair else self.mode}]"

    @property
    def expected_failure(self) -> Optional[str]:
        mark = self.pair.impl.known_failure(self.case.name, self.pair.vs.name) if self.pair else None
        return mark.reason if mark else None

    @property
    def expected_at(self) -> Optional[str]:
        mark = self.pair.impl.known_failure(self.case.name, self.pair.vs.name) if self.pair else None
        return mark.at if mark else None


def pair_plan(cases: Iterable[Case], pair: Pair) -> list[PairItem]:
    """One item per case, in the case's own mode (a pair has one comparison per case)."""
    return [PairItem(c, c.mode, pair) for c in sorted(cases, key=lambda c: c.name)]


def stale_marks(pairs: Iterable[Pair], cases: Iterable[Case]) -> list[str]:
    """Known-failure marks of the implementations under test that name no registered case (a
    renamed case would otherwise drop its mark silently); each one fails the gate."""
    names = {c.name for c in cases}
    return [f"implementation {p.impl.name}: expected_failures names case {case!r}, which is not in the "
            "registry (rename or remove the mark)"
            for p in pairs for case in p.impl.expected_failures if case not in names]


def run_pair_item(item: PairItem, opts: RunOptions, ctx: Context) -> GateOutcome:
    """Run one case as a pair, judged as the gate judges (pass, fail, error, and xfail/xpass
    against the implementation's own marks)."""
    t0 = time.monotonic()
    try:
        result = run_pair(item.case, item.pair, pair_options(opts, mode=item.mode), ctx)
    except HarnessError as e:  # before any run: usage/case problems
        return GateOutcome(item, ERROR, e.message, time.monotonic() - t0)
    outcome, line = judge(item, result)
    if outcome != PASS and result.evidence_dir:
        line += f" (evidence: {result.evidence_dir})"
    return GateOutcome(item, outcome, line, time.monotonic() - t0, result)


def run_pair_gate(items: Sequence[PairItem], opts: RunOptions, ctx: Context,
                  on_done: Callable[[int, GateOutcome], None] = lambda i, o: None, jobs: int = 1) -> list[GateOutcome]:
    """`nbparity gate --impl A --vs B`: every case of the registry, with gate outcomes (jobs > 1: in
    that many worker processes, as the gate)."""
    return workers.run_in_order(items, lambda item: run_pair_item(item, opts, ctx), on_done, jobs)


def _g(x: object) -> str:
    return f"{x:.3g}" if isinstance(x, (int, float)) else "—"


def pair_row(o: GateOutcome) -> dict:
    """One case of a pair gate as data: outcome, first divergent key, image metrics."""
    r, fd = o.result, (o.result.first_divergence if o.result else None)
    m = (r.image or {}) if r else {}
    return {"case": o.item.case.name, "mode": o.item.mode, "outcome": o.outcome, "wall_s": round(o.wall_s, 1),
            "first_key": fd.label if fd else None, "first_stage": fd.stage if fd else None,
            "first_delta": fd.abs_diff if fd else None,
            "compared": r.counts.get("total", 0) if r else 0,
            "pixels_over": m.get("n_failed"), "rel_to_max": m.get("rel_to_max"), "correlation": m.get("correlation"),
            "sum_ratio": m.get("sum_ratio"), "note": o.message if o.outcome == ERROR else "",
            "evidence": o.evidence}


def pair_markdown(outcomes: Sequence[GateOutcome], pair: Pair, wall_s: float) -> str:
    """The pair gate's table: per case, the first divergent key and the image metrics."""
    c = {k: sum(1 for o in outcomes if o.outcome == k) for k in (PASS, XFAIL, FAIL, XPASS, ERROR)}
    lines = [f"## nbparity gate --impl {pair.impl.name} --vs {pair.vs.name}", "",
             f"{len(outcomes)} cases in {wall_s:.0f} s: {c[PASS]} parity, {c[FAIL]} diverge, {c[ERROR]} error"
             + (f", {c[XFAIL]} known failures, {c[XPASS]} unexpected passes" if c[XFAIL] or c[XPASS] else "") + ".", "",
             "| case | outcome | first divergent key (stage, abs diff) | values compared | pixels over tol | "
             "max abs diff / max ref | correlation | sum ratio | time (s) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        d = pair_row(o)
        first = f"{d['first_key']} ({d['first_stage']}, {_g(d['first_delta'])})" if d["first_key"] else (
            d["note"].replace("|", "/") or "—")
        lines.append(f"| {d['case']} | {d['outcome']} | {first} | {d['compared']} | {_g(d['pixels_over'])} | "
                     f"{_g(d['rel_to_max'])} | {_g(d['correlation'])} | {_g(d['sum_ratio'])} | {d['wall_s']} |")
    return "\n".join(lines) + "\n"
