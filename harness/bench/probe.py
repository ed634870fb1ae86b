"""The render probe: one process that renders a case several times and then runs the floor.

``python -m harness.bench.probe --warmup W --repeats R [--floor] -- ENGINE_ARGV`` renders
through engine.api (what ``python -m engine`` runs, without writing files), W warm-up renders
then R timed ones, each timed by the engine's own render clock (set-up, outputs and the
interpreter left out); with --floor it then times harness.bench.floor over the same number of
evaluations, dtype, device and threads, in this same process. Prints one JSON object on stdout.
Exit 2 for a bad command line, 3 when the engine fails.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional, Sequence


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.bench.probe")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--floor", action="store_true", help="also time the floor over the same evaluations")
    p.add_argument("engine_argv", nargs=argparse.REMAINDER, help="-- then the engine's argv")
    return p


def evaluations(result: Any) -> int:
    """Pixels rendered × (sub-pixels · sources · mosaic domains · φ steps) × detector layers."""
    setup = result.setup
    return int(result.stats["n_rendered"]) * int(setup.steps) * max(1, int(setup.detector.thicksteps))


def probe(engine_argv: Sequence[str], warmup: int, repeats: int, floor: bool) -> dict[str, Any]:
    from engine import api  # noqa: PLC0415 - torch loads only in the probe's own process
    from engine.config.argv import split_long_options  # noqa: PLC0415 - as above
    from harness.bench.floor import floor_seconds  # noqa: PLC0415 - as above

    c_argv, opts = split_long_options(list(engine_argv))
    kwargs = dict(mode=opts.get("mode", "spec"), device=opts.get("device", "cpu"),
                  dtype=opts.get("dtype", "float64"), c_threads=opts.get("c_threads", 1),
                  defects=opts.get("defects"), write_outputs=False)
    render_s: list[float] = []
    result = None
    for i in range(warmup + repeats):
        result = api.run(c_argv, **kwargs)
        if i >= warmup:
            render_s.append(float(result.stats["render_seconds"]))
    assert result is not None
    out: dict[str, Any] = {"render_s": render_s, "evaluations": evaluations(result), "floor_s": []}
    if floor:
        dtype = result.setup.detector.pix0.dtype
        device = str(result.setup.detector.pix0.device)
        for i in range(warmup + repeats):
            s = floor_seconds(out["evaluations"], dtype=dtype, device=device)
            if i >= warmup:
                out["floor_s"].append(s)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    engine_argv = args.engine_argv[1:] if args.engine_argv[:1] == ["--"] else args.engine_argv
    if args.repeats < 1 or args.warmup < 0 or not engine_argv:
        print("probe: expected --repeats >= 1, --warmup >= 0 and an engine argv after --", file=sys.stderr)
        return 2
    try:
        out = probe(engine_argv, args.warmup, args.repeats, args.floor)
    except Exception as e:  # noqa: BLE001 - the bench reports the last stderr line of a failed probe
        print(f"probe: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
