import os
import sys

from engine.cli import main

rc = main()
if sys.gettrace() is None and sys.getprofile() is None:
    # Everything is written and closed by now; skip the interpreter's teardown of torch's module
    # graph (≈0.3 s of finalizers, no output). Not under a tracer/profiler (coverage, cProfile),
    # whose own exit hooks must run.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:          # e.g. a closed pipe: let the normal exit report it
        sys.exit(rc)
    os._exit(rc if isinstance(rc, int) else 1)
sys.exit(rc)
