"""One parity run, step by step: check → choose → run → compare → label → evidence.

check: everything the user can get wrong is refused here (exit 2), before any run, evidence
folder or ledger row. choose: the reference runner. run: reference, then engine. compare and
label: harness.compare.verdict. evidence: harness.report.run_evidence, written into a staging
folder that is renamed into place only when complete.
"""
from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, ContextManager, Literal, Optional

from harness import autotrace
from harness.compare import keys
from harness.compare.verdict import Bars, Outcome, Sides, decide
from harness.model import gcpause
from harness.model.errors import HarnessError, InputError, ReferenceDataError, RunnerFailure, UsageError
from harness.model.result import ParityResult, RunInfo, jsonable
from harness.model.run import RunOutput
from harness.registry import profiles
from harness.registry.cases import Case, Reference, data_root
from harness.report.evidence import EvidenceDir
from harness.report.kept_data import keep_for_reanalysis
from harness.report.markers import autotraced_pixels
from harness.report.run_evidence import RunSettings, write_run_evidence
from harness.runners.base import RunRequest, Runner, check_inputs
from harness.runners.c import CRunner
from harness.runners.choose import binary_problem, choose
from harness.runners.engine import Prepared, TorchRunner, defects_for, load_engine
from harness.runners.recorded import RecordedRunner

Source = Literal["auto", "live", "recorded"]


@dataclass(frozen=True)
class RunOptions:
    mode: Optional[str] = None
    pixel: Optional[tuple[int, int]] = None
    keys: tuple[str, ...] = ()
    source: Source = "auto"
    c_bin: Optional[str] = None
    device: str = "cpu"
    dtype: str = "float64"
    trace_only: bool = False
    timeout_s: Optional[float] = None
    allow_known_defects: bool = False
    command_line: str = ""
    #: PNG pictures of the two images and their |Δ| in the evidence (needs matplotlib).
    pictures: bool = True
    #: Draw them for runs that pass too (the gate draws them only for the runs that do not).
    pictures_on_pass: bool = True
    #: Trace extra pixels (autopixel) when the images diverge but the traced pixel agrees.
    autotrace: bool = True
    #: Both float images in the evidence (images.npz): True always, False never, None up to
    #: harness.report.kept_data.KEEP_MAX_PIXELS per image.
    keep_images: Optional[bool] = None
    #: Keep them for runs that pass too (the gate keeps them only for the runs that do not, unless
    #: asked with --keep-images: 55 passing runs would otherwise leave tens of MB).
    images_on_pass: bool = True
    #: Point results/<case>/latest at this run (False for the autotraced pixels' own runs).
    mark_latest: bool = True


@dataclass
class Context:
    """Where things are and how to show progress; tests swap the engine runner here."""

    golden_dir: Path
    results_dir: Path
    cases_dir: Path
    engine_runner: Runner = field(default_factory=TorchRunner)
    progress: Callable[[str], ContextManager] = lambda msg: nullcontext()
    done: Callable[[str], None] = lambda msg: None


@dataclass(frozen=True)
class Plan:
    """A checked run: what to run, against what, and why that reference."""

    request: RunRequest
    selectors: tuple
    ref_runner: Runner
    why: str


# ---------------------------------------------------------------- check and choose


def choose_reference_runner(ref: Reference, opts: RunOptions, ctx: Context) -> tuple[Runner, str]:
    """The reference runner and why it was chosen (the report says which one was used)."""
    choice = choose(ref, opts.source, opts.c_bin)  # the one live-vs-recorded rule
    if not choice.live:
        return RecordedRunner(ctx.golden_dir), choice.why
    problem = binary_problem(choice.binary, ref.kind)  # the user's to fix (exit 2), before any run
    if problem:
        raise UsageError(f"--live: {problem}; or drop --live to use the recording" if opts.source == "live"
                         else problem)
    return CRunner(choice.binary), choice.why


def check_engine_accepts(request: RunRequest) -> Prepared:
    """The engine refuses the device, the case's argv or its size, or the pixel lies off the detector:
    exit 2 now.

    The engine's own set-up decides (one rule), without rendering; what it refuses would
    otherwise surface mid-run as a runner failure with an evidence folder and a ledger row.
    Returns that set-up, built as the engine run would build it, for the run to use (and count).
    """
    import torch  # noqa: PLC0415 - torch loads only when a run starts

    from engine.config.device import check_device  # noqa: PLC0415 - as above
    from engine.config.options import UsageError as EngineUsageError  # noqa: PLC0415 - as above
    from engine.config.setup import build_setup  # noqa: PLC0415 - as above
    from engine.io.errors import InputFileError  # noqa: PLC0415 - as above
    from engine.render.chunking import check_memory  # noqa: PLC0415 - as above

    name = request.case.name
    try:
        check_device(request.device)
    except EngineUsageError as e:
        raise UsageError(str(e)) from None
    try:
        t0 = time.monotonic()
        setup = build_setup(TorchRunner().argv(request), mode=request.mode, c_threads=request.case.c_threads,
                            device=request.device, dtype=getattr(torch, request.dtype),
                            defects=defects_for(request))
        build_s = time.monotonic() - t0
        check_memory(setup)  # an image that cannot fit in the device's memory
    except EngineUsageError as e:
        raise UsageError(f"case {name}: the engine refuses its argv: {e} (fix argv in its case file)") from None
    except InputFileError as e:
        raise InputError(f"case {name}: {e}") from None
    det = setup.detector
    s, f = request.pixel
    if not (0 <= s < det.spixels and 0 <= f < det.fpixels):
        raise UsageError(f"--pixel {s} {f}: outside the {det.spixels}x{det.fpixels} detector of case {name} "
                         f"(slow 0..{det.spixels - 1}, fast 0..{det.fpixels - 1})")
    return Prepared(setup, build_s)


def check(case: Case, opts: RunOptions, ctx: Context) -> Plan:
    """Refuse what the user can fix (exit 2) before anything runs or is written."""
    mode = opts.mode or case.mode
    if mode not in ("spec", "c-parity"):
        raise UsageError(f"--mode must be spec or c-parity, got {mode!r}")
    if opts.timeout_s is not None and not (0 < opts.timeout_s < float("inf")):
        raise UsageError(f"--timeout: expected a finite number of seconds > 0, got {opts.timeout_s}")
    ref = case.reference_for(mode)
    try:
        selectors = tuple(keys.resolve_all(opts.keys))
    except KeyError as e:
        raise UsageError(f"--keys: {e.args[0]}") from None
    pixel = tuple(opts.pixel) if opts.pixel else tuple(case.trace_pixels[0])
    request = RunRequest(case=case, mode=mode, pixel=pixel, data_root=data_root(case, ctx.cases_dir, ctx.golden_dir),
                         reference=ref, want_image=not opts.trace_only, device=opts.device, dtype=opts.dtype,
                         timeout_s=opts.timeout_s or case.timeout_s)
    load_engine()  # checking the argv needs the engine: its load is timed as the engine's
    check_inputs(request)
    profiles.for_dtype(case, opts.dtype)  # no bars for this dtype: exit 2 before anything runs
    request = replace(request, engine_setup=check_engine_accepts(request))
    ref_runner, why = choose_reference_runner(ref, opts, ctx)
    check_results_dir(ctx.results_dir)
    return Plan(request, selectors, ref_runner, why)


def check_results_dir(results: Path) -> None:
    """The evidence root must be (or become) a writable folder: a path through a file or an
    unwritable folder is the user's to fix, said before the run rather than after it."""
    for p in (results, *results.parents):
        if not p.exists():
            continue
        if not p.is_dir():
            raise UsageError(f"--results-dir {results}: {p} is a file, not a folder (choose another "
                             "--results-dir or NB_RESULTS_DIR)")
        if not os.access(p, os.W_OK | os.X_OK):
            raise UsageError(f"--results-dir {results}: {p} is not writable (choose another --results-dir "
                             "or NB_RESULTS_DIR)")
        return


# ---------------------------------------------------------------- run, compare, label


@dataclass
class Outputs:
    reference: Optional[RunOutput] = None
    engine: Optional[RunOutput] = None


def _run_both(plan: Plan, ctx: Context, outs: Outputs) -> None:
    req = plan.request
    with ctx.progress(f"reference: {plan.ref_runner.name} …"):
        outs.reference = plan.ref_runner.run(req)
    ctx.done(f"reference {outs.reference.description} ({outs.reference.wall_s:.1f} s)")
    with ctx.progress(f"torch engine ({req.mode}, {req.device}, {req.dtype}) …"):
        outs.engine = ctx.engine_runner.run(req)
    ctx.done(f"engine {outs.engine.description} ({outs.engine.wall_s:.1f} s)")


def _bars(plan: Plan) -> Bars:
    case, ref = plan.request.case, plan.request.reference
    bars = profiles.for_dtype(case, plan.request.dtype)  # the one place bars come from, per dtype
    return Bars(tolerances=bars.tolerances, image=bars.image, argv=case.argv,
                mode=plan.request.mode, reference_traced=ref.traced, reference_kind=ref.kind,
                reference_fixes=ref.fixes)


def _compare(plan: Plan, outs: Outputs, opts: RunOptions) -> Outcome:
    ref_out, eng_out = outs.reference, outs.engine
    sides = Sides(c_stdout=ref_out.stdout, torch_stdout=eng_out.stdout, c_image=ref_out.image,
                  torch_image=eng_out.image, trace_supported=ref_out.trace_supported,
                  want_image=plan.request.want_image, no_trace_note="; ".join(ref_out.notes) or None)
    outcome = decide(sides, _bars(plan), plan.selectors, opts.allow_known_defects)
    return outcome


def failure_update(e: HarnessError, outs: Outputs) -> dict:
    """A run that could not finish: keep what it produced, say why (the result fields to update;
    the one rule for every run, default or pair)."""
    if isinstance(e, (RunnerFailure, ReferenceDataError)):
        if outs.reference is None:
            outs.reference = e.output
        else:
            outs.engine = e.output
        status = "runner-failure" if isinstance(e, RunnerFailure) else "reference-error"
    else:
        status = "input-error" if isinstance(e, InputError) else "reference-error"
    return dict(status=status, exit_code=int(e.exit_code), failure=e.message)


def _info(out: Optional[RunOutput], runner: Runner, fallback: str, traced: bool) -> RunInfo:
    if out is None:
        return RunInfo(runner=runner.name, description=fallback, trace_supported=traced)
    return RunInfo(runner=out.runner, description=out.description, trace_supported=out.trace_supported,
                   wall_s=round(out.wall_s, 3), exit_code=out.exit_code, provenance=jsonable(out.provenance))


def _run_infos(plan: Plan, outs: Outputs, ctx: Context) -> dict:
    engine_note = "torch engine (not run)" if outs.reference is None or outs.engine is None else "torch engine"
    return dict(reference=_info(outs.reference, plan.ref_runner, f"{plan.ref_runner.name} (did not finish)",
                                plan.request.reference.traced),
                engine=_info(outs.engine, ctx.engine_runner, engine_note, True))


# ---------------------------------------------------------------- the run


def run_case(case: Case, opts: RunOptions, ctx: Context) -> ParityResult:
    with ctx.progress(f"checking {case.name}: case, inputs and engine flags …"):
        plan = check(case, opts, ctx)
    req = plan.request
    result = ParityResult(case=case.name, mode=req.mode, pixel=req.pixel, status="parity", exit_code=0,
                          expected_failure=case.expected_failure, keys_filter=list(opts.keys),
                          reference_choice=plan.why)
    outs = Outputs()
    outcome = Outcome()
    with EvidenceDir(ctx.results_dir, case.name, mark_latest=opts.mark_latest) as ev:
        try:
            _run_both(plan, ctx, outs)
            # Both steps build tens of thousands of objects that stay alive: collecting over the
            # engine's heap meanwhile cost seconds (harness/model/gcpause.py).
            with ctx.progress("comparing the traces and the images …"), gcpause.paused():
                outcome = _compare(plan, outs, opts)
                update = outcome.update
        except HarnessError as e:  # a runner failure, a bad reference or input: evidence of what ran
            update = failure_update(e, outs)
        result = result.model_copy(update={**update, **_run_infos(plan, outs, ctx)})
        traced = autotrace.trace_more_pixels(ev, result, req, outs.reference, outs.engine, opts, ctx, run_case)
        if traced:
            result = result.model_copy(update=dict(autopixels=traced))
        with gcpause.paused():
            result = write_evidence(ev, result, outcome, plan, outs, opts, ctx)
        final = ev.commit()
    return result.model_copy(update=dict(evidence_dir=str(final)))


def write_evidence(ev: EvidenceDir, result: ParityResult, outcome: Outcome, plan: Plan, outs: Outputs,
                   opts: RunOptions, ctx: Context) -> ParityResult:
    """Everything the run leaves behind, staged in ``ev``; the result as it says where things are."""
    req = plan.request
    settings = RunSettings(command_line=opts.command_line, device=req.device, dtype=req.dtype,
                           c_threads=req.case.c_threads)
    images = [o.image if o is not None else None for o in (outs.reference, outs.engine)]
    with ctx.progress("keeping the float images and source changes for re-analysis …"):
        passed_skip = not opts.images_on_pass and result.exit_code == 0
        result = result.model_copy(update=keep_for_reanalysis(ev, *images, keep=opts.keep_images,
                                                              passed_skip=passed_skip))
    write_run_evidence(ev, result, outcome.all_rows, settings, outs.reference, outs.engine, outcome.records)
    if opts.pictures and (opts.pictures_on_pass or result.exit_code != 0):
        started = time.monotonic()
        with ctx.progress("drawing the pictures … (--no-pictures skips this step)"):
            drawn = _write_pictures(ev, result, req, outs)
        if drawn:
            ctx.done(f"pictures in the evidence ({time.monotonic() - started:.1f} s; --no-pictures saves this)")
    return result


def _write_pictures(ev: EvidenceDir, result: ParityResult, request: RunRequest, outs: Outputs) -> bool:
    """c_image.png, torch_image.png, abs_diff.png, radial_profile.png when both images exist;
    whether they were drawn.

    Pictures are for people: without matplotlib they are skipped, and a plotting error is
    noted in the evidence instead of costing the run its verdict.
    """
    ref_out, eng_out = outs.reference, outs.engine
    if ref_out is None or eng_out is None or ref_out.image is None or eng_out.image is None:
        return False
    try:
        from harness.report import pictures as visual  # noqa: PLC0415 - matplotlib is optional
    except ImportError:
        return False
    try:
        centre = (visual.beam_center_from_stdout(ref_out.stdout)
                  or visual.beam_center_from_stdout(eng_out.stdout))
        visual.write_run_images(ev.staging, ref_out.image, eng_out.image, beam_center=centre,
                                traced=[request.pixel], worst=(result.image or {}).get("worst_pixel"),
                                autotraced=autotraced_pixels(result.autopixels), case=request.case.name,
                                sides=result.sides)
    except ImportError:
        return False
    except Exception as e:  # noqa: BLE001 - a picture never decides a verdict
        ev.write_text("pictures_error.txt", f"{type(e).__name__}: {e}\n")
    return True
