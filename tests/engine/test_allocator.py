"""engine.render.allocator keeps freed blocks in the process: a render's batch temporaries stop
faulting in fresh pages. Counted in a child process (the setting is process-wide)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_CHILD = r"""
import json, resource, sys
import torch
from engine import api
from engine.render.allocator import keep_freed_memory
on = keep_freed_memory()
argv = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-N", "5", "-lambda", "1",
        "-distance", "100", "-detpixels", "256", "-pixel", "0.1", "-gauss_xtal", "-nonoise", "-nopgm"]
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):            # warm-up: imports, the first heap growth
    api.run(argv, write_outputs=False)
before = faults()
for _ in range(3):
    api.run(argv, write_outputs=False)
print(json.dumps({"on": on, "faults": faults() - before}))
"""


def _child(env_value: str | None) -> dict:
    env = dict(os.environ)
    env.pop("NB_ENGINE_KEEP_FREED", None)
    if env_value is not None:
        env["NB_ENGINE_KEEP_FREED"] = env_value
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True,
                         timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_blocks_stop_page_faults_and_the_switch_turns_it_off():
    kept, default = _child(None), _child("0")
    assert kept["on"] is True and default["on"] is False
    # Three renders of a 256x256 detector: glibc's default hands the batches' temporaries back
    # and faults them in again (23,000-26,000 pages seen); kept, the warmed heap serves them
    # (300-600 seen).
    assert default["faults"] > 10_000, default
    assert kept["faults"] < 3_000, kept
