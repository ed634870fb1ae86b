"""Replay a recorded C run (shared/golden layout) as if the C had just run."""
from __future__ import annotations

import time
from pathlib import Path

from harness.references import recordings
from harness.compare import traces
from harness.model.errors import ReferenceDataError, RunnerFailure, UsageError
from harness.model.run import RunOutput
from harness.runners.base import RunRequest, check_image


class RecordedRunner:
    name = "c-recorded"

    def __init__(self, root: Path):
        self.root = root

    def run(self, request: RunRequest) -> RunOutput:
        ref = request.reference
        if ref.recording is None:
            raise UsageError(f"case {request.case.name!r} has no recording for mode {request.mode!r} "
                             "(run with --live and a C binary)")
        t0 = time.monotonic()
        rec = recordings.load(self.root, ref.recording)
        recordings.verify(rec, request.case, ref, request.pixel)
        stdout = recordings.read_stdout(rec)
        stderr_path = rec.directory / "c_stderr.log"
        stderr = stderr_path.read_text(encoding="utf-8", errors="replace") if stderr_path.is_file() else ""
        image = recordings.read_image(rec) if request.want_image else None
        out = RunOutput(
            runner=self.name,
            description=f"recording {rec.name} sha256 {rec.manifest_sha256} ({rec.kind})",
            argv=tuple(["nanoBragg", *rec.argv]), cwd=str(rec.root),
            env={"OMP_NUM_THREADS": str(rec.manifest.get("omp_num_threads", 1))},
            exit_code=int(rec.manifest.get("exit_code", 0)), stdout=stdout, stderr=stderr,
            wall_s=time.monotonic() - t0, image=image, trace_supported=ref.traced,
            provenance={"recording": rec.name, "recording_dir": str(rec.directory),
                        "manifest_sha256": rec.manifest_sha256, "reference_kind": rec.kind,
                        "c_source": rec.manifest.get("c_source"),
                        "recorded_runtime_s": rec.manifest.get("runtime_s")},
        )
        if out.exit_code != 0:
            raise RunnerFailure(f"recorded C run {rec.name} exited with code {out.exit_code}", out)
        if image is not None:
            bad = check_image(image, f"recorded C ({rec.name})")
            if bad:
                raise RunnerFailure(bad, out)
        if ref.traced:
            missing = traces.missing_required(traces.parse(stdout, "C"))
            if missing:
                raise ReferenceDataError(f"corrupt reference: recording {rec.name} trace lacks {', '.join(missing)}", out)
        return out
