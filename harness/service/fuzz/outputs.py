"""The output files of a fuzz example (-intfile, -pgmfile, -noisefile), compared byte for byte.

A case's argv never names output files (the registry refuses them: the harness places every
output itself), so an example keeps the output flags it asks for apart from its argv
(``Example.outputs``) and this step adds them, with the file names the record path keeps
(harness.service.record.SIDE_OUTPUT_FLAGS). The C runs in a private directory through the
process driver, as the C runner does; the bundled engine runs in-process with file writing on.
Another implementation (``--impl`` NAME) writes no files here: its outputs are not compared.

A byte difference, or a file one side wrote and the other did not, is a divergence with the
signature ``output:-intfile`` (etc.).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional, Sequence

from harness.runners import inputs, process
from harness.runners.base import Runner
from harness.runners.c import CRunner
from harness.runners.engine import TorchRunner
from harness.service.fuzz.strategy import Example
from harness.service.record import SIDE_OUTPUT_FLAGS


def _side(outputs: Sequence[str], where: Path) -> list[str]:
    return [tok for flag in outputs for tok in (flag, str(where / SIDE_OUTPUT_FLAGS[flag]))]


def _read(outputs: Sequence[str], where: Path) -> dict[str, Optional[bytes]]:
    files = {flag: where / SIDE_OUTPUT_FLAGS[flag] for flag in outputs}
    return {flag: p.read_bytes() if p.is_file() else None for flag, p in files.items()}


def _c_files(binary: Path, ex: Example, root: Path, timeout_s: float) -> Optional[dict[str, Optional[bytes]]]:
    """The C's output files for the example, or None where it failed (the image step judged that)."""
    env, _pinned = process.pinned_env(1)
    with process.private_workdir("fuzz-outputs") as work:
        inputs.stage(inputs.located(sorted(ex.files), root, "fuzz example"), work)
        argv = [str(binary), *inputs.with_outputs(ex.argv, str(work / "floatimage.bin"),
                                                  side=_side(ex.outputs, work))]
        done = process.run(argv, cwd=work, env=env, timeout_s=timeout_s)
        if done.timed_out or done.exit_code != 0:
            return None
        return _read(ex.outputs, work)


def _engine_files(ex: Example, root: Path, mode: str) -> Optional[dict[str, Optional[bytes]]]:
    from engine.api import run  # noqa: PLC0415 - imports torch; only when an engine side writes files

    argv = inputs.absolute_argv(ex.argv, inputs.located(sorted(ex.files), root, "fuzz example"))
    with tempfile.TemporaryDirectory(prefix="nbfuzz-out-") as tmp:
        work = Path(tmp)
        try:
            run([*argv, "-floatfile", str(work / "floatimage.bin"), *_side(ex.outputs, work)], mode=mode,
                write_outputs=True, workdir=work)
        except Exception:  # noqa: BLE001 - a failure here was judged by the image step already
            return None
        return _read(ex.outputs, work)


def _files(runner: Runner, ex: Example, root: Path, mode: str,
           timeout_s: float) -> Optional[dict[str, Optional[bytes]]]:
    if isinstance(runner, CRunner) and runner.binary is not None:
        return _c_files(runner.binary, ex, root, timeout_s)
    # The bundled engine, or the engine standing in for the C (example.EngineAsReference wraps it).
    if isinstance(runner, TorchRunner) or isinstance(getattr(runner, "runner", None), TorchRunner):
        return _engine_files(ex, root, mode)
    return None


def difference(ex: Example, reference: Runner, impl: Runner, root: Path, *, mode: str,
               timeout_s: float) -> Optional[tuple[str, str]]:
    """(the first output flag whose files differ, how), or None: they match, none were asked
    for, or a side cannot write them here."""
    if not ex.outputs:
        return None
    ref = _files(reference, ex, root, mode, timeout_s)
    out = _files(impl, ex, root, mode, timeout_s) if ref is not None else None
    if ref is None or out is None:
        return None
    for flag in ex.outputs:
        problem = _difference(ref[flag], out[flag])
        if problem:
            return flag, f"{flag} {SIDE_OUTPUT_FLAGS[flag]}: {problem}"
    return None


def _difference(c: Optional[bytes], impl: Optional[bytes]) -> Optional[str]:
    if c is None or impl is None:
        return None if c is impl else f"written by {'the implementation' if c is None else 'the C'} only"
    if c == impl:
        return None
    at = next((i for i, (a, b) in enumerate(zip(c, impl)) if a != b), min(len(c), len(impl)))
    return f"{len(c)} vs {len(impl)} bytes, first difference at byte {at} (C {c[at:at + 16]!r} vs {impl[at:at + 16]!r})"
