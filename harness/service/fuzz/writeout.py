"""A minimal divergence written out: a case file under cases/fuzz/ and its recording.

The recording is made by the harness's record path (harness.service.record.record) into
cases/fuzz/recordings/, which is the data root of every fuzz case (their input files are
kept there, under the case's name). Reproduce one with::

    nbparity --cases-dir cases/fuzz --golden-dir cases/fuzz/recordings run NAME
"""
from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

from harness.model.paths import REPO_ROOT
from harness.registry.cases import Case, Reference, load_case
from harness.registry.casefile import dump_case
from harness.registry.importer import OUTPUT_TAGS
from harness.service import record
from harness.service.fuzz.campaign import Found
from harness.service.fuzz.example import IMAGE, MODE, TOLERANCES, case_for
from harness.service.fuzz.strategy import Example

RECORDINGS = "recordings"


def case_name(found: Found) -> str:
    ex = found.example
    digest = hashlib.sha256("\0".join((*ex.argv, *ex.outputs)).encode()
                            + b"".join(ex.files[k] for k in sorted(ex.files)))
    sig = re.sub(r"[^A-Za-z0-9]+", "_", found.verdict.signature).strip("_")[:40]
    return f"fuzz_{sig}_{digest.hexdigest()[:8]}"


def shown(path: Path) -> str:
    """``path`` relative to the checkout it lies in (this one, or the nearest folder above it with
    a pyproject.toml: a campaign may run from a snapshot of the tree), else as given. Case files
    are committed: no machine's absolute path in them."""
    p = Path(path).absolute()
    for root in (REPO_ROOT, *p.parents):
        if (root / "pyproject.toml").is_file() and p.is_relative_to(root):
            return p.relative_to(root).as_posix()
    return str(p)


def _renamed(ex: Example, name: str) -> Example:
    """The example with its input files under ``name/`` (one recordings root holds every case's)."""
    files = {f"{name}/{k}": v for k, v in ex.files.items()}
    argv = tuple(f"{name}/{t}" if t in ex.files else t for t in ex.argv)
    return Example(argv, files, ex.pixel, ex.outputs)


def write_case(found: Found, cases_dir: Path, binary: Path) -> tuple[Path, Case]:
    """Record the minimal example with the C and write its case file; (case file, case)."""
    name = case_name(found)
    ex = _renamed(found.example, name)
    base = case_for(ex, name)
    out_root = cases_dir / RECORDINGS
    out_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nbfuzz-src-") as tmp:
        for rel, data in ex.files.items():
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_bytes(data)
        rec = record.record(base, binary=binary, out_root=out_root, source_root=Path(tmp), name=name, force=True,
                            outputs=ex.outputs)
    v = found.verdict
    # The output tags make `record-all` keep the same output files (record_all.output_flags).
    tags = ["fuzz", *found.example.families(), *(OUTPUT_TAGS[f] for f in ex.outputs)]
    data = dict(name=name, mode=MODE, tags=tags,
                description=f"found by nbparity fuzz: {v.signature} diverges ({v.detail[:160]})",
                inputs=sorted(ex.files), c_threads=1, timeout_s=base.timeout_s, argv=list(ex.argv),
                trace_pixels=[list(ex.pixel)],
                tolerance=TOLERANCES.model_dump(exclude_defaults=True), image=IMAGE.model_dump(exclude_defaults=True),
                references={MODE: Reference(kind="instrumented-c", recording=name,
                                            manifest_sha256=rec.manifest_sha256, live=True)
                            .model_dump(exclude_none=True, exclude_defaults=False)})
    for k in ("fixes",):
        data["references"][MODE].pop(k, None)
    text = dump_case(data, header=f"Written by `nbparity fuzz`: a minimal divergence ({v.signature}).\n"
                                  f"Reproduce: nbparity --cases-dir {shown(cases_dir)} "
                                  f"--golden-dir {shown(out_root)} run {name}")
    path = cases_dir / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path, load_case(path)
