"""`nbparity import-recordings DIR`: registry entries (cases/*.toml) made from recorded C runs.

Every recording directory under ``DIR/cases`` becomes a reference of a case:

* an instrumented-C recording ``NAME`` is the ``c-parity`` reference of case ``NAME`` (created
  if missing), traced at the recording's pixel;
* a fixed-C recording (image only, ``reference_kind: "fixed-c"``, ``derived_from: BASE``) is the
  ``spec`` reference of case ``BASE``, with the ids of the C defects that build fixed.

Entries pin the recording by the sha256 of its ``case.json``, so a re-recorded reference is
noticed (the run stops with "stale reference") until it is imported again. Importing again
rewrites the fields it owns (argv, inputs, threads, the recorded pixel, the references it makes)
and keeps what people edit (description, tags, expected_failure, tolerances, other references,
extra trace pixels). Cases that no recording is named after (hand-written variants such as
``*_spec_vs_c``) only get their pins refreshed.

The recorded data stays where it is; cases find it through NB_GOLDEN_DIR.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from engine.config import defects as defect_registry
from harness.registry import casefile, pins, profiles
from harness.registry.cases import SLUG, Case, strip_output_flags
from harness.model.errors import CaseFileError, UsageError
from harness.model.hashing import sha256_bytes

DEFAULT_TOLERANCE = {"atol": 1e-6, "rtol": 1e-9}
DEFAULT_IMAGE = {"rtol_of_max": 1e-6}
TOLERANCE_NOTE = ("The engine's bar: 1e-6 absolute, plus 1e-9 relative so that values far above 1 (I_before_scaling\n"
                  "~1e15, where one float64 ulp is 0.25) are judged by their significant digits.")
FIXES_NOTE = ("# The C defects this build fixed (its fix/ branches); the engine reproduces the other registered\n"
              "# defects against it (engine/config/defects.py).\n")
#: Fix branches of the fixed C (c_source.commits keys) → engine/config/defects.py ids.
FIX_BRANCH_ALIASES = {"subpixel-oversampling": "oversample-running-sum"}
FULL_FRAME_PIXELS = 2000 * 2000
GENERIC_TRIGGERS = frozenset({"-N", "-Na", "-Nb", "-Nc"})

# argv flag → tag (the first flag present gives the tag; several flags may give one tag)
FLAG_TAGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("-phi", "-osc", "-phisteps", "-phistep"), "phi"),
    (("-mat",), "matrix"),
    (("-hkl",), "hkl"),
    (("-interpolate",), "interpolation"),
    (("-mosaic", "-mosaic_spread", "-mosaic_domains"), "mosaic"),
    (("-divergence", "-hdivrange", "-vdivrange", "-dispersion", "-dispsteps", "-divsteps"), "divergence"),
    (("-sourcefile",), "sources"),
    (("-oversample", "-oversample_thick", "-oversample_polar", "-oversample_omega"), "oversample"),
    (("-detector_abs", "-detector_thick", "-thicksteps"), "absorption"),
    (("-water",), "background"),
    (("-round_xtal", "-square_xtal", "-gauss_xtal", "-tophat_spots", "-binary_spots"), "lattice-shape"),
    (("-polar", "-nopolar"), "polarization"),
    (("-xds", "-dials", "-adxv", "-denzo", "-mosflm"), "convention"),
    (("-pivot", "-close_distance", "-ORGX", "-ORGY", "-Xclose", "-Yclose"), "pivot"),
    (("-odet_vector", "-sdet_vector", "-fdet_vector", "-pix0_vector", "-pix0_vector_mm"), "custom-detector"),
    (("-twotheta", "-detector_rotx", "-detector_roty", "-detector_rotz"), "detector-rotation"),
    (("-roi",), "roi"),
    (("-mask", "-img"), "smv-input"),
    (("-curved_det",), "curved-detector"),
    (("-misset",), "misset"),
    (("-dmin",), "dmin"),
    (("-xtalsize", "-xtal_size"), "xtalsize"),
    (("-pointpixel", "-point_pixel"), "point-pixel"),
    (("-fluence", "-flux"), "fluence"),
)
OUTPUT_TAGS = {"-intfile": "smv-output", "-noisefile": "noise", "-pgmfile": "pgm"}


@dataclass(frozen=True)
class Planned:
    """One case file the import would write."""

    path: Path
    action: str                 # "create" | "update" | "unchanged"
    text: str
    recordings: tuple[str, ...]
    #: the recording pins this write moves (each shown old -> new)
    pins: tuple[pins.PinChange, ...] = ()

    @property
    def changes(self) -> bool:
        return self.action != "unchanged"


@dataclass(frozen=True)
class ImportPlan:
    files: list[Planned]
    problems: list[str]          # recordings that could not be imported (one line each)

    @property
    def changed(self) -> list[Planned]:
        return [f for f in self.files if f.changes]


# ---------------------------------------------------------------- reading recordings


def recording_names(golden: Path) -> list[str]:
    """Every recording directory (one with a case.json) under golden/cases, sorted."""
    root = golden / "cases"
    if not root.is_dir():
        raise UsageError(f"no recordings at {root} (expected DIR/cases/<name>/case.json; set NB_GOLDEN_DIR)")
    return sorted(p.parent.name for p in root.glob("*/case.json"))


def _manifest(golden: Path, name: str) -> tuple[dict[str, Any], str]:
    raw = (golden / "cases" / name / "case.json").read_bytes()
    return json.loads(raw), sha256_bytes(raw)


def fixes_of(manifest: dict[str, Any]) -> list[str]:
    """Defect ids a fixed-C build fixed, from its fix branches (c_source.commits: fix/<name>)."""
    commits = (manifest.get("c_source") or {}).get("commits") or {}
    out: list[str] = []
    for branch in commits:
        if not branch.startswith("fix/"):
            continue
        name = branch.removeprefix("fix/")
        did = FIX_BRANCH_ALIASES.get(name, name)
        if did in defect_registry.BY_ID and did not in out:
            out.append(did)
    return out


def _flag_value(argv: list[str], flag: str, default: Optional[str] = None) -> Optional[str]:
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else default


def derive_tags(manifest: dict[str, Any]) -> list[str]:
    """Tags from what the recorded argv exercises (size, features, C defects it touches)."""
    full = list(manifest["argv"])
    argv = strip_output_flags(full)
    tags: list[str] = []
    det = manifest.get("detpixels") or [0, 0]
    n = int(det[0]) * int(det[1])
    tags.append("full-frame" if n >= FULL_FRAME_PIXELS else ("large" if n > 512 * 512 else "small"))
    for flags, tag in FLAG_TAGS:
        if any(f in argv for f in flags) and tag not in tags:
            tags.append(tag)
    for flag, tag in OUTPUT_TAGS.items():
        if flag in full:
            tags.append(tag)
    if int(manifest.get("omp_num_threads", 1)) > 1:
        tags.append("threads")
    if len(tags) == 1:
        tags.append("basic")
    for d in defect_registry.DEFECTS:
        # flags that nearly every argv has (-N) say nothing about whether the defect is reached
        specific = [t for t in d.triggers if t not in GENERIC_TRIGGERS]
        if specific and any(t in argv for t in specific):
            tags.append(f"defect:{d.id}")
    if _touches_phi0(argv):
        tags.append("defect:phi0-stale-rotation")
    return tags


def _touches_phi0(argv: list[str]) -> bool:
    """A φ step at exactly 0 after an earlier rotation: the C reuses a stale rotation there."""
    try:
        start = float(_flag_value(argv, "-phi", "0"))
        steps = int(float(_flag_value(argv, "-phisteps", "1")))
    except (TypeError, ValueError):
        return False
    if "-phistep" in argv and "-osc" not in argv:
        steps = 2  # the C's phistep quirk (see the recordings' README)
    return start == 0.0 and steps > 1


# ---------------------------------------------------------------- building entries


def _header(name: str) -> str:
    return (f"Generated by `nbparity import-recordings` from the recording {name!r} (NB_GOLDEN_DIR/cases/{name});\n"
            "its case.json is pinned by manifest_sha256. Re-import to refresh; description, tags,\n"
            "expected_failure, tolerance and image are kept as edited.")


def _base_entry(name: str, manifest: dict[str, Any]) -> dict[str, Any]:
    tp = manifest.get("trace_pixel")
    return {
        "name": name,
        "description": manifest.get("description", ""),
        "mode": "c-parity",
        "tags": derive_tags(manifest),
        "inputs": list(manifest.get("inputs") or []),
        "c_threads": int(manifest.get("omp_num_threads", 1)),
        "timeout_s": 600.0,
        "argv": strip_output_flags(list(manifest["argv"])),
        "trace_pixels": [[int(tp[0]), int(tp[1])]] if tp else [],
        "tolerance": dict(DEFAULT_TOLERANCE),
        "image": dict(DEFAULT_IMAGE),
        "references": {},
    }


def _order(entry: dict[str, Any]) -> dict[str, Any]:
    keys = ["name", "description", "mode", "tags", "inputs", "data_root", "c_threads", "timeout_s",
            "expected_failure", "expected_failure_at", "argv", "trace_pixels", "tolerance", "image", "references"]
    out = {k: entry[k] for k in keys if k in entry and entry[k] is not None}
    out.update({k: v for k, v in entry.items() if k not in out and v is not None})
    refs = out.get("references", {})
    out["references"] = {m: refs[m] for m in ("c-parity", "spec") if m in refs}
    out["references"].update({m: r for m, r in refs.items() if m not in out["references"]})
    return out


def render_entry(entry: dict[str, Any], recording: str) -> str:
    entry = _order(entry)
    text = casefile.dump_case(entry, header=_header(recording))
    note = "".join(f"# {line}\n" for line in TOLERANCE_NOTE.splitlines())
    text = text.replace("\n[tolerance]\n", "\n" + note + "[tolerance]\n", 1)
    text = text.replace("\nfixes = [", "\n" + FIXES_NOTE + "fixes = [")
    for dtype in entry.get("profiles") or {}:
        text = text.replace(f"\n[profiles.{dtype}]\n", "\n" + profiles.file_note(dtype) + f"[profiles.{dtype}]\n", 1)
    return text


def _merge(existing: dict[str, Any], fresh: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    """fresh's owned fields over existing's; hand-edited fields and unnamed recordings' pins kept."""
    pins.keep_unnamed(existing, fresh, wanted)
    out = dict(existing)
    for k in ("name", "argv", "inputs", "c_threads"):
        out[k] = fresh[k]
    recorded = fresh["trace_pixels"]
    if recorded:
        others = [list(p) for p in existing.get("trace_pixels", []) if list(p) not in recorded]
        out["trace_pixels"] = recorded + others
    for k in ("description", "mode", "tags", "timeout_s", "tolerance", "image"):
        out.setdefault(k, fresh[k])
    refs = dict(existing.get("references") or {})
    for mode, ref in fresh["references"].items():
        merged = dict(refs.get(mode) or {})
        merged.update({k: v for k, v in ref.items() if k != "fixes" or "fixes" not in merged})
        refs[mode] = merged
    out["references"] = refs
    return out


def plan_import(golden: Path, cases_dir: Path, names: Optional[Iterable[str]] = None) -> ImportPlan:
    """What importing the recordings under ``golden`` into ``cases_dir`` would write."""
    golden = Path(golden)
    all_names = recording_names(golden)
    chosen = list(names) if names is not None else all_names
    unknown = [n for n in chosen if n not in all_names]
    if unknown:
        raise UsageError(f"no recording {', '.join(map(repr, unknown))} under {golden / 'cases'}")
    problems: list[str] = []
    manifests: pins.Manifests = {}
    for name in all_names:
        try:
            manifests[name] = _manifest(golden, name)
        except (OSError, json.JSONDecodeError) as e:
            problems.append(f"{name}: unreadable case.json ({e})")
    wanted = set(chosen)
    # instrumented recordings first: they make the cases that fixed-C recordings attach to
    entries, sources = _instrumented_entries(manifests, wanted, problems)
    _attach_fixed(manifests, wanted, entries, sources, problems)
    files = [_planned(cases_dir / f"{case_name}.toml", case_name, fresh, sources[case_name], wanted)
             for case_name, fresh in sorted(entries.items())]
    files += _refresh_pins(cases_dir, {p.path for p in files}, manifests, wanted)
    return ImportPlan(files, problems)


def _instrumented_entries(manifests: pins.Manifests, wanted: set[str], problems: list[str]
                          ) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """Fresh entries of the named instrumented recordings (and of the bases of named fixed-C ones)."""
    entries: dict[str, dict[str, Any]] = {}
    sources: dict[str, list[str]] = {}
    bases = {manifests[n][0].get("derived_from") for n in wanted if n in manifests}
    for name, (m, sha) in manifests.items():
        if m.get("reference_kind", "instrumented-c") != "instrumented-c":
            continue
        if not SLUG.match(name):
            problems.append(f"{name}: not a usable case name")
            continue
        if name not in wanted and name not in bases:
            continue
        if not m.get("trace_pixel"):
            problems.append(f"{name}: instrumented recording without a trace_pixel")
            continue
        e = _base_entry(name, m)
        e["references"]["c-parity"] = {"kind": "instrumented-c", "recording": name, "manifest_sha256": sha,
                                       "live": True}
        entries[name] = e
        sources[name] = [name]
    return entries, sources


def _attach_fixed(manifests: pins.Manifests, wanted: set[str], entries: dict[str, dict[str, Any]],
                  sources: dict[str, list[str]], problems: list[str]) -> None:
    """Each named fixed-C recording becomes the spec reference of its base case."""
    for name, (m, sha) in manifests.items():
        if name not in wanted or m.get("reference_kind") != "fixed-c":
            continue
        base = m.get("derived_from")
        if base not in entries:
            problems.append(f"{name}: fixed-C recording derived from {base!r}, which is not an instrumented "
                            "recording here")
            continue
        if strip_output_flags(list(m["argv"])) != entries[base]["argv"]:
            problems.append(f"{name}: argv differs from its base {base!r} (a fixed-C reference must re-run the "
                            "base case's argv)")
            continue
        # live: a fixed C (golden_bin/nanoBragg_fixed, `make c`) may stand in with --live; auto
        # mode never picks one on its own (harness/runners/choose.py).
        entries[base]["references"]["spec"] = {"kind": "fixed-c", "recording": name, "manifest_sha256": sha,
                                               "live": True, "fixes": fixes_of(m)}
        sources[base].append(name)


def _planned(path: Path, case_name: str, fresh: dict[str, Any], sources: list[str], wanted: set[str]) -> Planned:
    old_text = path.read_text(encoding="utf-8") if path.is_file() else None
    data = fresh
    if old_text is not None:
        try:
            existing = tomllib.loads(old_text)
        except tomllib.TOMLDecodeError as e:
            raise CaseFileError(str(path), "", f"expected valid TOML before re-importing: {e}") from None
        data = _merge(existing, fresh, wanted)
    text = render_entry(data, case_name)
    _validate(path, text)
    action = "create" if old_text is None else ("unchanged" if old_text == text else "update")
    return Planned(path, action, text, tuple(sources), pins.changes(case_name, old_text, text))


def _refresh_pins(cases_dir: Path, generated: set[Path], manifests: pins.Manifests,
                  wanted: set[str]) -> list[Planned]:
    """Hand-written cases: only their pins of the named recordings follow the recordings."""
    out: list[Planned] = []
    for path in pins.hand_written(cases_dir, generated):
        old = path.read_text(encoding="utf-8")
        new, used = pins.refresh_text(old, manifests, wanted)
        if used:
            out.append(Planned(path, "unchanged" if new == old else "update", new, tuple(used),
                               pins.changes(path.stem, old, new)))
    return out


def _validate(path: Path, text: str) -> Case:
    from pydantic import ValidationError  # noqa: PLC0415

    from harness.registry.cases import _one_line  # noqa: PLC0415

    try:
        return Case.model_validate(tomllib.loads(text))
    except ValidationError as e:
        raise _one_line(path, e) from None


def write_plan(plan: ImportPlan) -> list[Planned]:
    """Write the files that change (each atomically); return them."""
    written = []
    for f in plan.changed:
        f.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.path.with_name(f".{f.path.name}.tmp")
        tmp.write_text(f.text, encoding="utf-8")
        tmp.replace(f.path)
        written.append(f)
    return written


# ---------------------------------------------------------------- coverage


def coverage_problems(golden: Path, cases: list[Case]) -> list[str]:
    """Every recording has an entry; every entry has a reference that exists and tags.

    One line per problem; empty when the registry covers the recordings.
    """
    problems: list[str] = []
    names = set(recording_names(golden))
    referenced: dict[str, list[str]] = {}
    for c in cases:
        if not c.tags:
            problems.append(f"case {c.name}: no tags")
        for mode, ref in c.references.items():
            if ref.recording is None:
                if not ref.live:
                    problems.append(f"case {c.name} [{mode}]: no recording and no live C")
                continue
            referenced.setdefault(ref.recording, []).append(f"{c.name}[{mode}]")
            if ref.recording not in names:
                problems.append(f"case {c.name} [{mode}]: recording {ref.recording!r} not found under "
                                f"{golden / 'cases'}")
                continue
            _, sha = _manifest(golden, ref.recording)
            if ref.manifest_sha256 is None:
                problems.append(f"case {c.name} [{mode}]: recording {ref.recording!r} is not pinned "
                                "(no manifest_sha256)")
            elif ref.manifest_sha256 != sha:
                problems.append(f"case {c.name} [{mode}]: recording {ref.recording!r} changed (case.json sha256 "
                                f"{sha}, pinned {ref.manifest_sha256}); re-run `nbparity import-recordings`")
    for n in sorted(names - set(referenced)):
        problems.append(f"recording {n}: no case refers to it (run `nbparity import-recordings {golden}`)")
    return problems
