"""The console entry point ``python -m engine`` / ``nanobragg-torch``: the C's argv plus our long
options (parsed in ``engine.config.argv``) → ``engine.api.run`` → exit status and stdout."""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from engine import api
from engine.config.argv import parse_argv, split_long_options
from engine.config.options import UsageError
from engine.io import InputFileError, OutputFileError

HELP = """\
usage: nanobragg-torch [nanoBragg flags ...] [--mode spec|c-parity] [--c-defects IDS]
                       [--device cpu|cuda] [--dtype float64|float32] [--c-threads N]

The PyTorch nanoBragg: takes the C program's flags with the C's meaning (e.g. -cell, -mat,
-hkl, -default_F, -N, -lambda, -distance, -detpixels, -pixel, -trace_pixel S F) and writes
the same outputs. Unlike the C, an unknown flag, a malformed value or a malformed input file
is an error.

outputs (as the C; relative names go into the current directory):
  -floatfile F    raw float32 image (default floatimage.bin)
  -intfile F      SMV image, always written (default intimage.img): floor(v*scale + adc + 0.5)
                  clipped to 0..65535; -scale S (default: 55000/max), -adc A (default 40)
  -pgmfile F      8-bit PGM (default image.pgm; -nopgm: none); -pgmscale S (default 250/(5*rmsd))
  -noisefile F    SMV image with Poisson noise (default noiseimage.img; -nonoise: none);
                  -seed N (default: the clock; the seed used is printed as 'seed: -N')
  of -nonoise/-noisefile and -nopgm/-pgmfile the last one given wins.

our options:
  --mode spec|c-parity   spec (default): the physics as intended. c-parity: reproduce every
                         registered defect of the C (see engine/config/defects.py). --phi-mode is a synonym.
  --c-defects IDS        comma-separated defect ids to reproduce instead (or all / none), e.g.
                         pix0-vector-ignored,phi0-stale-rotation
  --device DEV           torch device (default cpu)
  --dtype float64|float32  (default float64)
  --c-threads N          c-parity: reproduce a C run with N OpenMP threads (φ=0 carry-over)

exit status: 0 success, 2 bad command line or input file (one line on stderr naming the flag,
file and line; also a --device that is not there, or a detector/oversampling too large for the
memory available), 3 the image has NaN or infinite pixels (nothing written), 9 an output file
cannot be written, 70 an internal error (a bug in the engine: one line naming the exception;
NB_DEBUG=1 prints the traceback)."""


#: sysexits.h EX_SOFTWARE: distinct from every code a user's input can cause.
INTERNAL_ERROR = 70


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point: nanoBragg's argv plus our long options; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "-help"):
        print(HELP)
        return 0 if argv else 2
    try:
        c_argv, long_opts = split_long_options(argv)
        parse_argv(c_argv)   # refuse bad input before doing any work
        result = api.run(c_argv, mode=long_opts.get("mode", "spec"), device=long_opts.get("device", "cpu"),
                         dtype=long_opts.get("dtype", "float64"), c_threads=long_opts.get("c_threads", 1),
                         defects=long_opts.get("defects"), check_finite=True)
    except UsageError as exc:
        print(f"nanobragg-torch: usage error: {exc}", file=sys.stderr)
        return 2
    except InputFileError as exc:
        print(f"nanobragg-torch: input error: {exc}", file=sys.stderr)
        return 2
    except api.NonFiniteImageError as exc:
        _write_stdout(exc.stdout)
        print(f"nanobragg-torch: error: {exc}", file=sys.stderr)
        return 3
    except OutputFileError as exc:
        print(f"nanobragg-torch: output error: {exc}", file=sys.stderr)
        return 9
    except Exception as exc:  # a bug of ours, never the user's: one line, and a code of its own
        if os.environ.get("NB_DEBUG"):
            raise
        print(f"nanobragg-torch: internal error: {type(exc).__name__}: {exc} (a bug in the engine; "
              "NB_DEBUG=1 shows the traceback)", file=sys.stderr)
        return INTERNAL_ERROR
    _write_stdout(getattr(result, "stdout", ""))
    return 0


def _write_stdout(out: str) -> None:
    if out:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
        sys.stdout.flush()


def exit_with(rc: int) -> None:
    """Leave the process with status ``rc``: skipping the interpreter's teardown of torch's
    module graph (≈0.6 s of finalizers, no output, on the 2-core machine; everything is written
    and closed by now), except under a tracer or profiler (coverage, cProfile), whose own exit
    hooks must run."""
    if sys.gettrace() is None and sys.getprofile() is None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:          # e.g. a closed pipe: let the normal exit report it
            sys.exit(rc)
        os._exit(rc if isinstance(rc, int) else 1)
    sys.exit(rc)


def console_main() -> None:
    """The ``nanobragg-torch`` console script: ``main`` and then ``exit_with``, as ``python -m engine``."""
    exit_with(main())

