"""Run the bundled PyTorch engine in-process with the case's argv.

engine.api is imported only when a run starts, so the harness (and its tests, which patch
:func:`load_api`) works before and without the engine. Inputs are rewritten to absolute paths
against the data root instead of changing the process's cwd.
"""
from __future__ import annotations

import gc
import inspect
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from harness.model import gcpause
from harness.model.errors import RunnerFailure
from harness.model.run import RunOutput
from harness.runners import inputs
from harness.runners.base import RunRequest, check_inputs

DTYPES = ("float64", "float32")


def load_api() -> Callable[..., Any]:
    """engine.api.run; a separate function so tests can replace the engine."""
    from engine import api  # noqa: PLC0415 - lazy on purpose

    return api.run


#: Seconds this process spent loading the engine (torch with it), and whether a run claimed them.
_load: dict[str, Any] = {"s": None, "claimed": False}


def load_engine() -> None:
    """Import the engine once per process, timing it.

    A `python -m engine` process pays this load inside its own wall; in process, the harness
    pays it on the engine's behalf (pipeline.check triggers it first, to check the argv). The
    next engine run records it as its provenance ``load_s``, so the harness overhead (run wall −
    engine wall − load − reference wall) is the harness's own. Already loaded: nothing to time.
    """
    if _load["s"] is not None:
        return
    t0 = time.perf_counter()
    with gcpause.paused():  # torch's import builds millions of objects, none of them garbage
        import engine.api  # noqa: F401, PLC0415 - torch loads only when a run starts
    # They live as long as the process: later collections (the comparison, the evidence, a
    # gate's next case) need not walk them again.
    gc.freeze()
    _load["s"] = time.perf_counter() - t0


def claim_load_s() -> float:
    """The engine's load seconds for the first run that asks, 0 for every later one."""
    load_engine()
    if _load["claimed"]:
        return 0.0
    _load["claimed"] = True
    return round(float(_load["s"] or 0.0), 3)


@dataclass(frozen=True)
class Prepared:
    """The engine's set-up built ahead of its run (by the pipeline's check, from the same argv and
    settings) and the seconds that took: the run uses it and counts them as its own."""

    setup: Any
    build_s: float


class TorchRunner:
    name = "torch"

    def argv(self, request: RunRequest) -> list[str]:
        argv = inputs.absolute_argv(request.case.argv, check_inputs(request))
        return argv + ["-trace_pixel", str(request.pixel[0]), str(request.pixel[1])]

    def run(self, request: RunRequest) -> RunOutput:
        argv = self.argv(request)
        shown = shown_command(request, argv)
        base = dict(runner=self.name, argv=tuple(shown), cwd="(in-process)",
                    env={"device": request.device, "dtype": request.dtype}, description=f"torch engine in-process ({request.mode}, {request.device}, {request.dtype})")
        t0 = time.monotonic()
        try:
            load_s = claim_load_s()  # before t0 below: the load is the engine's, timed apart
            t0 = time.monotonic()
            import torch  # noqa: PLC0415 - loaded by load_engine

            run = load_api()
            kwargs: dict[str, Any] = dict(mode=request.mode, device=request.device,
                                          dtype=getattr(torch, request.dtype),
                                          c_threads=request.case.c_threads, write_outputs=False)
            # Skip the full frame when only the trace is wanted and the engine can do that.
            if not request.want_image and _accepts(run, "trace_only"):
                kwargs["trace_only"] = True
            defects = defects_for(request)
            if defects is not None and _accepts(run, "defects"):
                kwargs["defects"] = defects
            prepared = request.engine_setup if _accepts(run, "setup") else None
            if prepared is not None:
                kwargs["setup"] = prepared.setup
            result = run(argv, **kwargs)
        except RunnerFailure:
            raise
        except ImportError as e:
            raise RunnerFailure(f"torch engine not importable ({e}); is engine/api.py there?",
                                RunOutput(exit_code=None, stdout="", stderr=traceback.format_exc(),
                                          wall_s=time.monotonic() - t0, **base)) from None
        except Exception as e:  # noqa: BLE001 - any engine crash is a runner failure (Ctrl-C and exits are not)
            raise RunnerFailure(f"torch engine raised {type(e).__name__}: {e}",
                                RunOutput(exit_code=None, stdout="", stderr=traceback.format_exc(),
                                          wall_s=time.monotonic() - t0, **base)) from None
        wall = time.monotonic() - t0 + (prepared.build_s if prepared is not None else 0.0)
        image = None
        if request.want_image:
            img = getattr(result, "float_image", None)
            if img is None and getattr(result, "image", None) is not None:
                img = result.image.detach().cpu().numpy().astype(np.float32)
            image = None if img is None else np.asarray(img)
        stdout = getattr(result, "stdout", "") or ""
        trace = getattr(result, "trace", None)
        if not stdout and trace:
            stdout = "\n".join(trace) + "\n"
        try:
            import torch  # noqa: PLC0415 - already loaded by the run above
            versions = {"torch": torch.__version__}
        except ImportError:  # pragma: no cover
            versions = {}
        out = RunOutput(exit_code=0, stdout=stdout, stderr="", wall_s=wall, image=image,
                        provenance={"mode": request.mode, "device": request.device, "dtype": request.dtype,
                                    "load_s": load_s,
                                    "defects": kwargs.get("defects", "engine default"),
                                    "python": sys.version.split()[0], **versions,
                                    "stats": _jsonable(getattr(result, "stats", {}) or {})},
                        **base)
        if request.want_image and image is None:
            raise RunnerFailure("torch engine returned no image", out)
        return out


#: Where the shown engine command writes its image (relative to the directory it is run in).
SHOWN_FLOATFILE = "torch_floatimage.bin"


def shown_command(request: RunRequest, argv: list[str]) -> list[str]:
    """The `python -m engine` command that repeats this in-process run exactly: every setting the
    call passes (mode, device, dtype, C threads, the C defects a fixed-C reference needs) and,
    when the image is wanted, a float file to write it to."""
    cmd = ["python", "-m", "engine", *argv]
    if request.want_image:
        cmd += ["-floatfile", SHOWN_FLOATFILE]
    cmd += ["--mode", request.mode, "--device", request.device, "--dtype", request.dtype,
            "--c-threads", str(request.case.c_threads)]
    defects = defects_for(request)
    if defects is not None:
        cmd += ["--c-defects", ",".join(defects) or "none"]
    return cmd


def defects_for(request: RunRequest) -> Optional[list[str]]:
    """The C defects the engine must reproduce to match this reference, or None (its default).

    A fixed C has only some defects fixed: against it the engine runs with every registered
    defect except those fixes (the engine's default is all of them in c-parity mode and none in
    spec mode, which is right for an instrumented C).
    """
    ref = request.reference
    if ref.kind != "fixed-c" or not ref.fixes:
        return None
    from engine.config.defects import DEFECTS  # noqa: PLC0415

    return [d.id for d in DEFECTS if d.id not in ref.fixes]


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[str(k)] = v
        else:
            out[str(k)] = str(v)
    return out

