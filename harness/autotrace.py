"""When the images diverge while the traced pixel agrees, trace the pixels that say why.

harness.compare.autopixel chooses the pixels (worst |Δ|, peak, edge, background); this module
traces them: against a live C when one is found (each a trace-only parity run with its own
evidence), else in the engine alone. The pipeline calls :func:`trace_more_pixels` and passes its
own ``run_case``, so this module sits below the pipeline and imports nothing above it.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Optional, Sequence

from harness.compare import autopixel, traces
from harness.compare.autopixel import ChosenPixel, PixelTrace
from harness.model.errors import HarnessError
from harness.model.result import ParityResult, jsonable
from harness.model.run import RunOutput
from harness.registry.cases import data_root
from harness.report.evidence import EvidenceDir
from harness.runners.base import RunRequest
from harness.runners.choose import choose

#: The engine's trace keys holding a pixel's final value (the last one printed wins).
FINAL_KEYS = ("floatimage_accumulated", "I_pixel_final")

RunCase = Callable[..., ParityResult]


def live_c_available(case: Any, mode: str, c_bin: Optional[str] = None, source: str = "auto") -> bool:
    ref = case.reference_for(mode)
    choice = choose(ref, source, c_bin)  # the one live-vs-recorded rule
    return bool(choice.live and ref.traced and choice.binary is not None and choice.binary.exists())


def trace_chosen(case: Any, chosen: Sequence[ChosenPixel], opts: Any, ctx: Any, run_case: RunCase, *,
                 live: Optional[bool] = None) -> list[PixelTrace]:
    """Trace each chosen pixel: a trace-only parity run against a live C, else the engine alone.

    opts/ctx are the pipeline's RunOptions/Context; live=None decides by looking for a binary.
    """
    mode = opts.mode or case.mode
    if live is None:
        live = live_c_available(case, mode, opts.c_bin, opts.source)
    out: list[PixelTrace] = []
    for ch in chosen:
        if not live:
            out.append(_engine_only(case, mode, ch, opts, ctx))
            continue
        res = run_case(case, replace(opts, pixel=ch.pixel, trace_only=True, source="live", mark_latest=False), ctx)
        fd = res.first_divergence
        delta = fd.abs_diff if fd is not None and isinstance(fd.abs_diff, (int, float)) else None
        out.append(PixelTrace(ch, compared=res.trace_compared, status=res.status,
                              first_key=fd.label if fd else None, first_delta=delta,
                              evidence_dir=res.evidence_dir, note=res.failure or ""))
    return out


def _engine_only(case: Any, mode: str, ch: ChosenPixel, opts: Any, ctx: Any) -> PixelTrace:
    request = RunRequest(case=case, mode=mode, pixel=ch.pixel,
                         data_root=data_root(case, ctx.cases_dir, ctx.golden_dir),
                         reference=case.reference_for(mode), want_image=False, device=opts.device,
                         dtype=opts.dtype, timeout_s=opts.timeout_s or case.timeout_s)
    try:
        run = ctx.engine_runner.run(request)
    except HarnessError as e:
        return PixelTrace(ch, compared=False, status="runner-failure", note=e.message)
    final = None
    for rec in traces.parse(run.stdout, "PY"):
        if rec.kind == "pixel" and rec.key in FINAL_KEYS and rec.values and isinstance(rec.values[0], (int, float)):
            final = float(rec.values[0])
    note = "no live C binary: traced in the engine only"
    if final is not None and math.isfinite(ch.c_value):
        note += f"; engine final {final:.9g} vs C image {ch.c_value:.9g} (|Δ| {abs(final - ch.c_value):.3g})"
    return PixelTrace(ch, compared=False, status="engine-only", engine_final=final, note=note)


def trace_more_pixels(ev: EvidenceDir, result: ParityResult, request: RunRequest, ref_out: Optional[RunOutput],
                      eng_out: Optional[RunOutput], opts: Any, ctx: Any, run_case: RunCase) -> list[dict]:
    """The picks traced, written to autopixels.json and returned for the result (the report lists them)."""
    if not opts.autotrace or ref_out is None or eng_out is None or ref_out.image is None or eng_out.image is None:
        return []
    if not autopixel.should_autotrace(result):
        return []
    try:
        picks = autopixel.choose_pixels(ref_out.image, eng_out.image, exclude=[request.pixel])
    except ValueError:
        return []
    try:
        with ctx.progress(f"tracing {len(picks)} more pixels (images diverge, traced pixel agrees) …"):
            traced = trace_chosen(request.case, picks, opts, ctx, run_case)
    except HarnessError as e:  # the extra traces are a help; they never cost the run its verdict
        traced = [PixelTrace(ch, compared=False, status="not traced", note=e.message) for ch in picks]
    rows = [jsonable(t.as_dict()) for t in traced]
    ev.write_json("autopixels.json", {"case": request.case.name, "mode": request.mode,
                                      "traced_pixel": list(request.pixel),
                                      "why": "images diverge while the traced pixel agrees", "pixels": rows})
    return rows
