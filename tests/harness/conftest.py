"""Harness test helpers: a fake engine that replays a recorded C run, a fake C executable,
and case files in a temporary directory. Nothing here needs the real C binary or engine."""
from __future__ import annotations

import json
import stat
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional

import numpy as np
import pytest

from engine.io.floatimage import from_bytes, read_raw
from harness.compare import traces
from harness.registry.cases import Case, load_case
from harness.model import paths
from harness.runners.base import RunRequest

# The registry the tests read: cases/, or NB_CASES_DIR (which tests/conftest.py points at a copy pinned
# to regenerated recordings when there are none in ../shared and a built C stands in).
CASES = paths.cases_dir()


def recorded_image(golden: Path, name: str) -> np.ndarray:
    manifest = json.loads((golden / "cases" / name / "case.json").read_text())
    gz = manifest.get("floatimage_gzipped")
    raw = read_raw(golden / "cases" / name / ("floatimage.bin.gz" if gz else "floatimage.bin"))
    return from_bytes(raw, tuple(manifest["detpixels"]))


def perturb_line(stdout: str, prefix: str, component: int, delta: float) -> str:
    """Add delta to one value of the first line starting with ``prefix``."""
    out, done = [], False
    for line in stdout.splitlines():
        if not done and line.startswith(prefix):
            head, vals = line[: len(prefix)], line[len(prefix):].split()
            vals[component] = "%.15g" % (float(vals[component]) + delta)
            line = head + " " + " ".join(vals)
            done = True
        out.append(line)
    assert done, f"no line starts with {prefix!r}"
    return "\n".join(out) + "\n"


@pytest.fixture
def fake_engine(monkeypatch, golden_dir) -> Callable[..., list]:
    """Replace engine.api.run with a replay of a recording (C trace rewritten as TRACE_PY).

    ``fake_engine("phi_carryover", edit=fn)`` installs it; ``edit`` may change the stdout text,
    ``image_edit`` the image. Returns the list of calls (argv, kwargs) for inspection.
    """
    calls: list = []

    def install(recording: str, edit: Optional[Callable[[str], str]] = None,
                image_edit: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                raises: Optional[BaseException] = None) -> list:
        stdout = traces.to_engine_prefix((golden_dir / "cases" / recording / "c_stdout.log").read_text())
        if edit:
            stdout = edit(stdout)

        def run(argv, **kwargs):
            calls.append((list(argv), kwargs))
            if raises is not None:
                raise raises
            img = recorded_image(golden_dir, recording)
            if image_edit:
                img = image_edit(img.copy())
            return SimpleNamespace(image=None, float_image=img, stdout=stdout, trace=[], stats={"fake": True})

        monkeypatch.setattr("harness.runners.engine.load_api", lambda: run)
        return calls

    return install


@pytest.fixture
def repo_case() -> Callable[[str], Case]:
    return lambda name: load_case(CASES / f"{name}.toml")


@pytest.fixture
def request_for(golden_dir) -> Callable[..., RunRequest]:
    def make(case: Case, mode: Optional[str] = None, pixel=None, timeout_s: float = 60.0, want_image: bool = True):
        mode = mode or case.mode
        return RunRequest(case=case, mode=mode, pixel=tuple(pixel or case.trace_pixels[0]),
                          data_root=golden_dir, reference=case.references[mode], timeout_s=timeout_s,
                          want_image=want_image)
    return make


FAKE_C = '''#!{python}
"""Fake nanoBragg: replays a recorded run. Variant: {variant}."""
import os, sys, time
variant = {variant!r}
argv = sys.argv[1:]
stdout = open({log!r}, encoding="utf-8").read()
with open(os.path.join(os.getcwd(), "seen_cwd.txt"), "w") as f:
    f.write(",".join(sorted(os.listdir("."))))
sys.stderr.write("FAKE cwd_before=" + ",".join(sorted(x for x in os.listdir(".") if x != "seen_cwd.txt")) + "\\n")
sys.stderr.write("FAKE OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "") + "\\n")
sys.stderr.write("FAKE TAP5=" + os.environ.get("TRACE_C_TAP5", "") + "\\n")
open("Fdump.bin", "wb").write(b"stale")   # the C leaves this in its cwd
if {pidfile!r}:
    open({pidfile!r}, "w").write(str(os.getpid()))
if variant == "hang":
    time.sleep(120)
if variant == "crash":
    sys.stdout.write(stdout[: len(stdout) // 3]); sys.stdout.flush()
    os.kill(os.getpid(), 11)
if variant == "exit9":
    print("ERROR: not enough HKL indices"); sys.stderr.write("ERROR: not enough HKL indices\\n"); sys.exit(9)
if variant == "truncated":
    stdout = stdout[: stdout.index("TRACE_C: hkl_frac")]
if variant == "notrace":
    stdout = "".join(l + "\\n" for l in stdout.splitlines() if "TRACE_C" not in l)
sys.stdout.write(stdout)
data = open({image!r}, "rb").read()
if variant == "nan":
    import struct
    data = struct.pack("<f", float("nan")) * (len(data) // 4)
if variant == "half":   # a C that died while writing its image
    data = data[: len(data) // 2]
if variant != "noimage":
    out = argv[argv.index("-floatfile") + 1]
    open(out, "wb").write(data)
'''


@pytest.fixture
def fake_c(tmp_path, golden_dir) -> Callable[..., Path]:
    """Write a fake C executable that replays recording ``name`` (its stdout and image)."""

    def make(name: str = "phi_carryover", variant: str = "ok", pidfile: str = "") -> Path:
        rec = golden_dir / "cases" / name
        raw = tmp_path / f"{name}.floatimage.bin"
        manifest = json.loads((rec / "case.json").read_text())
        gz = manifest.get("floatimage_gzipped")
        raw.write_bytes(read_raw(rec / ("floatimage.bin.gz" if gz else "floatimage.bin")))
        script = tmp_path / f"fake-nanoBragg-{variant}"
        script.write_text(FAKE_C.format(python=sys.executable, variant=variant, log=str(rec / "c_stdout.log"),
                                        image=str(raw), pidfile=pidfile))
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return script

    return make


def write_case(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / f"{name}.toml"
    p.write_text(textwrap.dedent(body).lstrip())
    return p
