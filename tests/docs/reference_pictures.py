"""Make the runs behind docs/images/: a real run of a case against its recording, with the
engine as it is ("clean") or with its image perturbed after it ran ("perturbed": one block of
pixels ×1.001 and one pixel +5 photons, so the images diverge while the traced pixel agrees and
the run autotraces more pixels).

    .venv/bin/python -m tests.docs.reference_pictures supervisor perturbed /tmp/refs
    .venv/bin/python -m tests.docs.reference_pictures simple_cubic_mosflm_beam clean /tmp/refs

then copy the PNGs wanted from the printed evidence directory to docs/images/ (keep each
under 200 KB; tests/docs/test_reference_pictures.py checks).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from harness.model import paths
from harness.pipeline import Context, RunOptions, run_case
from harness.registry.cases import Registry
from harness.runners.engine import TorchRunner

#: (slow rows, fast columns) of the block ×1.001, and the pixel +5, per detector size.
FULL_FRAME = (((1000, 1100), (1200, 1300)), (2000, 300))
SMALL = (((60, 80), (400, 420)), (450, 37))


class PerturbedEngine:
    """The engine, with its image edited after the run (its trace is untouched)."""

    name = "torch-perturbed"

    def __init__(self, inner, block, pixel):
        self.inner, self.block, self.pixel = inner, block, pixel

    def run(self, request):
        out = self.inner.run(request)
        if out.image is None:
            return out
        img = np.array(out.image, copy=True)
        (s0, s1), (f0, f1) = self.block
        img[s0:s1, f0:f1] *= 1.001
        img[self.pixel] += 5.0
        return dataclasses.replace(out, image=img)


def main(case_name: str, how: str, results: str) -> int:
    case = Registry(paths.cases_dir()).get(case_name)
    engine = TorchRunner()
    if how == "perturbed":
        block, pixel = FULL_FRAME if "full-frame" in case.tags else SMALL
        engine = PerturbedEngine(engine, block, pixel)
    ctx = Context(golden_dir=paths.golden_dir(), results_dir=Path(results), cases_dir=paths.cases_dir(),
                  engine_runner=engine, progress=lambda msg: nullcontext(), done=lambda msg: print(msg))
    t0 = time.time()
    r = run_case(case, RunOptions(source="recorded"), ctx)
    print(case_name, how, r.status, r.exit_code, r.evidence_dir, f"{time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
