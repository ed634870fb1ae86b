"""One parity run, step by step: select the reference, run both sides, compare, keep evidence.

load case → choose reference runner → run reference → run engine → align traces → compare
images → label → write evidence (atomically) → ParityResult with its exit code.
"""
from __future__ import annotations

import shlex
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, ContextManager, Literal, Optional, Sequence

from harness.compare import keys
from harness.compare import labels
from harness.compare import traces
from harness.registry.cases import Case, Reference, data_root
from harness.compare.primitive import VERDICT_OK, Row, align, first_divergence, image_metrics, narrow
from harness.model.environment import snapshot
from harness.model.errors import ExitCode, HarnessError, InputError, ReferenceDataError, RunnerFailure, UsageError
from harness.report.evidence import EvidenceDir
from harness.report.console import export_text, markdown_summary
from harness.model.result import ParityResult, RowModel, RunInfo, jsonable
from harness.runners.base import RunOutput, RunRequest, Runner, check_inputs
from harness.runners.c import CRunner, find_binary
from harness.runners.engine import TorchRunner
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
    #: Trace extra pixels (autopixel) when the images diverge but the traced pixel agrees.
    autotrace: bool = True


@dataclass
class Context:
    """Where things are and how to show progress; tests swap the engine runner here."""

    golden_dir: Path
    results_dir: Path
    cases_dir: Path
    engine_runner: Runner = field(default_factory=TorchRunner)
    progress: Callable[[str], ContextManager] = lambda msg: nullcontext()
    done: Callable[[str], None] = lambda msg: None


def choose_reference_runner(ref: Reference, opts: RunOptions, ctx: Context) -> tuple[Runner, str]:
    """The reference runner and why it was chosen (the report says which one was used)."""
    if opts.source == "recorded":
        return RecordedRunner(ctx.golden_dir), "recorded reference (--recorded)"
    binary = find_binary(ref.kind, opts.c_bin)
    if opts.source == "live":
        return CRunner(binary), "live C (--live)"
    if ref.live and binary is not None and (opts.c_bin or binary.exists()):
        return CRunner(binary), f"live C binary found at {binary}"
    where = ("--c-bin, NB_C_BIN, golden_bin/nanoBragg" if ref.kind == "instrumented-c"
             else "--c-bin, NB_C_FIXED_BIN, golden_bin/nanoBragg_fixed")
    if ref.recording is not None:
        why = "live C not allowed for this reference" if not ref.live else f"no live C binary ({where})"
        return RecordedRunner(ctx.golden_dir), f"{why}: using the recording"
    return CRunner(binary), f"no recording for this reference and no live C binary ({where})"


def _info(out: Optional[RunOutput], runner: Runner, fallback: str, traced: bool) -> RunInfo:
    if out is None:
        return RunInfo(runner=runner.name, description=fallback, trace_supported=traced)
    return RunInfo(runner=out.runner, description=out.description, trace_supported=out.trace_supported,
                   wall_s=round(out.wall_s, 3), exit_code=out.exit_code, provenance=jsonable(out.provenance))


def run_case(case: Case, opts: RunOptions, ctx: Context) -> ParityResult:
    mode = opts.mode or case.mode
    if mode not in ("spec", "c-parity"):
        raise UsageError(f"--mode must be spec or c-parity, got {mode!r}")
    ref = case.reference_for(mode)
    pixel = tuple(opts.pixel) if opts.pixel else tuple(case.trace_pixels[0])
    try:
        selectors = keys.resolve_all(opts.keys)
    except KeyError as e:
        raise UsageError(f"--keys: {e.args[0]}") from None
    root = data_root(case, ctx.cases_dir, ctx.golden_dir)
    request = RunRequest(case=case, mode=mode, pixel=pixel, data_root=root, reference=ref,
                         want_image=not opts.trace_only, device=opts.device, dtype=opts.dtype,
                         timeout_s=opts.timeout_s or case.timeout_s)
    check_inputs(request)  # a missing input is the user's to fix (exit 2), before any run
    ref_runner, why = choose_reference_runner(ref, opts, ctx)

    result = ParityResult(case=case.name, mode=mode, pixel=pixel, status="parity", exit_code=0,
                          expected_failure=case.expected_failure, keys_filter=list(opts.keys),
                          reference_choice=why)
    ref_out = eng_out = None
    all_rows: list[Row] = []
    with EvidenceDir(ctx.results_dir, case.name) as ev:
        try:
            with ctx.progress(f"reference: {ref_runner.name} …"):
                ref_out = ref_runner.run(request)
            ctx.done(f"reference {ref_out.description} ({ref_out.wall_s:.1f} s)")
            with ctx.progress(f"torch engine ({mode}, {opts.device}, {opts.dtype}) …"):
                eng_out = ctx.engine_runner.run(request)
            ctx.done(f"engine {eng_out.description} ({eng_out.wall_s:.1f} s)")
            result, all_rows = _compare(result, case, mode, ref, request, ref_out, eng_out, selectors, opts)
        except (RunnerFailure, ReferenceDataError) as e:
            partial = e.output
            if ref_out is None:
                ref_out = partial
            else:
                eng_out = partial
            status = "runner-failure" if isinstance(e, RunnerFailure) else "reference-error"
            result = result.model_copy(update=dict(status=status, exit_code=int(e.exit_code), failure=e.message))
        except HarnessError as e:
            status = "input-error" if isinstance(e, InputError) else "reference-error"
            result = result.model_copy(update=dict(status=status, exit_code=int(e.exit_code), failure=e.message))
        result = result.model_copy(update=dict(
            reference=_info(ref_out, ref_runner, f"{ref_runner.name} (did not finish)", ref.traced),
            engine=_info(eng_out, ctx.engine_runner, "torch engine (not run)" if ref_out is None or eng_out is None
                         else "torch engine", True)))
        traced = _autotrace(ev, result, case, request, ref_out, eng_out, opts, ctx)
        if traced:
            result = result.model_copy(update=dict(autopixels=traced))
        _write_evidence(ev, result, all_rows, request, ref_out, eng_out, opts)
        if opts.pictures:
            _write_pictures(ev, result, case, request, ref_out, eng_out)
        final = ev.commit()
    return result.model_copy(update=dict(evidence_dir=str(final)))


def _write_pictures(ev: EvidenceDir, result: ParityResult, case: Case, request: RunRequest,
                    ref_out: Optional[RunOutput], eng_out: Optional[RunOutput]) -> None:
    """c_image.png, torch_image.png, abs_diff.png, radial_profile.png when both images exist.

    Pictures are for people: without matplotlib they are skipped, and a plotting error is
    noted in the evidence instead of costing the run its verdict.
    """
    if ref_out is None or eng_out is None or ref_out.image is None or eng_out.image is None:
        return
    try:
        from harness.report import pictures as visual  # noqa: PLC0415 - matplotlib is optional
    except ImportError:
        return
    try:
        centre = (visual.beam_center_from_stdout(ref_out.stdout)
                  or visual.beam_center_from_stdout(eng_out.stdout))
        visual.write_run_images(ev.staging, ref_out.image, eng_out.image, beam_center=centre,
                                traced=[request.pixel], worst=(result.image or {}).get("worst_pixel"),
                                case=case.name)
    except ImportError:
        return
    except Exception as e:  # noqa: BLE001 - a picture never decides a verdict
        ev.write_text("pictures_error.txt", f"{type(e).__name__}: {e}\n")


def _autotrace(ev: EvidenceDir, result: ParityResult, case: Case, request: RunRequest,
               ref_out: Optional[RunOutput], eng_out: Optional[RunOutput], opts: RunOptions,
               ctx: Context) -> list[dict]:
    """The images diverge while the traced pixel agrees: trace the pixels that say why.

    Picks (worst |Δ|, peak, edge, background) are traced against a live C when one is found
    (each a trace-only run with its own evidence), else in the engine alone. Written to
    autopixels.json; returned for the result (the report lists them).
    """
    if not opts.autotrace or ref_out is None or eng_out is None:
        return []
    from harness.compare import autopixel  # noqa: PLC0415

    if ref_out.image is None or eng_out.image is None or not autopixel.should_autotrace(result):
        return []
    try:
        picks = autopixel.choose_pixels(ref_out.image, eng_out.image, exclude=[request.pixel])
    except ValueError:
        return []
    try:
        with ctx.progress(f"tracing {len(picks)} more pixels (images diverge, traced pixel agrees) …"):
            traced = autopixel.trace_chosen(case, picks, opts, ctx)
    except HarnessError as e:  # the extra traces are a help; they never cost the run its verdict
        traced = [autopixel.PixelTrace(ch, compared=False, status="not traced", note=e.message) for ch in picks]
    rows = [jsonable(t.as_dict()) for t in traced]
    ev.write_json("autopixels.json", {"case": case.name, "mode": request.mode, "traced_pixel": list(request.pixel),
                                      "why": "images diverge while the traced pixel agrees",
                                      "pixels": rows})
    return rows


def _compare(result: ParityResult, case: Case, mode: str, ref: Reference, request: RunRequest,
             ref_out: RunOutput, eng_out: RunOutput, selectors: Sequence[keys.Selector],
             opts: RunOptions) -> tuple[ParityResult, list[Row]]:
    """Compare both outputs; also return the full (not narrowed) alignment for diff.json."""
    upd: dict = {}
    diverged = False
    label = None
    all_rows: list[Row] = []
    if ref_out.trace_supported:
        c_recs = traces.parse(ref_out.stdout, "C")
        py_recs = traces.parse(eng_out.stdout, "PY")
        all_rows = align(c_recs, py_recs, case.tolerance.table())
        rows = narrow(all_rows, selectors) if selectors else all_rows
        lab = labels.label(rows, case.argv, mode, ref.traced, context=all_rows)
        if lab is not None and lab.known_defect:
            rows = [r if r.ok else _with_defect(r, lab) for r in rows]
        lab_all = lab if not selectors else labels.label(all_rows, case.argv, mode, ref.traced)
        if lab_all is not None and lab_all.known_defect:
            all_rows = [r if r.ok else _with_defect(r, lab_all) for r in all_rows]
        div = first_divergence(rows)
        diverged = div.found
        label = lab
        upd.update(trace_compared=True, rows=[RowModel.of(r) for r in rows],
                   first_divergence=RowModel.of(div.first) if div.first else None,
                   downstream=[r.label for r in div.downstream],
                   counts=_counts(rows))
        if not py_recs:
            upd["trace_note"] = "the torch engine printed no TRACE_PY lines"
    else:
        upd.update(trace_compared=False,
                   trace_note=f"image-only reference ({ref.kind}): the trace was not compared")
    if request.want_image and ref_out.image is not None and eng_out.image is not None:
        m = image_metrics(ref_out.image, eng_out.image, case.image.threshold())
        upd["image"] = jsonable(m.as_dict())
        if not m.ok:
            diverged = True
            if label is None:
                label = (labels.label_image_only(case.argv, mode, ref.fixes) if not ref_out.trace_supported
                         else labels.Label(labels.REGRESSION))
    else:
        upd["image_note"] = "not compared (--trace-only)" if not request.want_image else "not compared (no image)"
        if not upd.get("trace_compared"):
            upd["trace_note"] = (upd.get("trace_note", "") + "; nothing was compared").lstrip("; ")
    if diverged:
        code = ExitCode.DIVERGENCE
        if opts.allow_known_defects and label is not None and label.known_defect:
            code = ExitCode.PARITY
        upd.update(status="divergence", exit_code=int(code), label=label.text if label else labels.REGRESSION)
    elif not upd.get("trace_compared") and "image" not in upd:
        # Nothing compared is not parity.
        upd.update(status="input-error", exit_code=int(ExitCode.USAGE),
                   failure="nothing to compare: image-only reference and --trace-only")
    return result.model_copy(update=upd), all_rows


def _with_defect(row: Row, lab: labels.Label) -> Row:
    return replace(row, defect=", ".join(lab.defect_ids))


def _counts(rows) -> dict[str, int]:
    out = {"total": len(rows), "ok": 0}
    for r in rows:
        k = "ok" if r.verdict == VERDICT_OK else r.verdict.replace(" ", "_")
        out[k] = out.get(k, 0) + 1
    return out


def _commands(request: RunRequest, ref_out: Optional[RunOutput], eng_out: Optional[RunOutput], opts: RunOptions) -> str:
    lines = ["# harness", f"cwd: {Path.cwd()}", f"command: {opts.command_line or '(API call)'}", ""]
    for title, out in (("reference", ref_out), ("engine", eng_out)):
        if out is None:
            lines += [f"# {title}: did not run", ""]
            continue
        lines += [f"# {title}: {out.description}", f"cwd: {out.cwd}",
                  "env: " + " ".join(f"{k}={v}" for k, v in out.env.items()),
                  f"command: {shlex.join(out.argv)}",
                  f"exit code: {out.exit_code}", f"wall time: {out.wall_s:.3f} s", ""]
    return "\n".join(lines)


def _trace_lines(stdout: str) -> str:
    return "".join(r.text + "\n" for r in _unique_lines(traces.parse(stdout)))


def _unique_lines(recs):
    seen = set()
    for r in recs:
        if (r.line_no, r.text) not in seen:
            seen.add((r.line_no, r.text))
            yield r


def _write_evidence(ev: EvidenceDir, result: ParityResult, all_rows: Sequence[Row], request: RunRequest,
                    ref_out: Optional[RunOutput], eng_out: Optional[RunOutput], opts: RunOptions) -> None:
    ev.write_text("commands.txt", _commands(request, ref_out, eng_out, opts))
    env = snapshot()
    env["case"] = {"name": request.case.name, "mode": request.mode, "pixel": list(request.pixel),
                   "c_threads": request.case.c_threads}
    env["reference"] = result.reference.model_dump(mode="json") if result.reference else None
    env["engine"] = {"device": request.device, "dtype": request.dtype, "mode": request.mode,
                     **(result.engine.model_dump(mode="json") if result.engine else {})}
    ev.write_json("env.json", jsonable(env))
    for name, out in (("c", ref_out), ("torch", eng_out)):
        if out is None:
            continue
        ev.write_text(f"{name}_stdout.log", out.stdout)
        if out.stderr:
            ev.write_text(f"{name}_stderr.log", out.stderr)
        ev.write_text(f"trace_{name}.txt", _trace_lines(out.stdout))
    ev.write_json("diff.json", {"case": result.case, "pixel": list(result.pixel), "mode": result.mode,
                                "trace_compared": result.trace_compared,
                                "rows": [RowModel.of(r).model_dump(mode="json") for r in all_rows]})
    if result.image is not None:
        ev.write_json("image_metrics.json", result.image)
    ev.write_text("diff_summary.md", markdown_summary(result))
    ev.write_json("result.json", result.model_dump(mode="json"))
    ev.write_text("report.txt", export_text(result))
