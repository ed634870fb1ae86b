"""The files a case's argv reads, where they come from, and the argv each runner gets.

The one place that rewrites a case's argv or places its input files:

* :func:`argv_reads`: the input files the argv names, found with the engine's option table (the
  C's own matching rules: ``-mat``, ``-hkl``, ``-img``, ``-mask``, ``-sourcefile``, ``-stol`` …);
* :func:`resolve`: each of them under the data root, never the caller's cwd; a file the argv
  reads that the case does not list in ``inputs`` is refused (a same-named file in the cwd once
  turned into a false regression);
* :func:`stage`: a child process (the C, `record`, the bench) sees them under their argv names
  in its private working directory; :func:`absolute_argv`: the in-process engine gets them as
  absolute paths instead;
* :func:`with_outputs`: the output and trace flags the harness adds to every C run.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional, Sequence

from harness.model.errors import InputError
from harness.registry.cases import Case

#: engine.config.options.Options fields that name a file the run reads (the option table's
#: ``store_text``/``-stol`` branches store them there).
INPUT_FIELDS = ("mat_file", "hkl_file", "img_file", "mask_file", "sourcefile", "stol_file")


def argv_reads(argv: Sequence[str], who: str = "argv") -> list[str]:
    """The files ``argv`` reads, as written in it (in the option table's order, no repeats)."""
    from engine.config.argv import parse_argv  # noqa: PLC0415 - imports torch; only when a run starts
    from engine.config.options import UsageError as ArgvError  # noqa: PLC0415

    try:
        opts = parse_argv(list(argv))
    except ArgvError as e:
        raise InputError(f"{who}: argv: {e}; fix the argv") from None
    return list(dict.fromkeys(v for f in INPUT_FIELDS if (v := getattr(opts, f, None))))


def resolve(case: Case, data_root: Path) -> dict[str, Path]:
    """{argv name: file under the data root} for every file the argv reads; exit 2 when one is
    not declared in ``inputs`` or is not there."""
    who = f"case {case.name}"
    undeclared = [f for f in argv_reads(case.argv, who) if f not in set(case.inputs)]
    if undeclared:
        raise InputError(f"{who}: argv reads {', '.join(map(repr, undeclared))}, which inputs does not "
                         f"list; add it to inputs in cases/{case.name}.toml (inputs resolve against the data "
                         "root, never the current directory)")
    return located(case.inputs, data_root, who)


def located(names: Sequence[str], data_root: Path, who: str) -> dict[str, Path]:
    """{name: data_root/name}, each of which must be a file (exit 2 otherwise)."""
    paths = {rel: data_root / rel for rel in names}
    for rel, p in paths.items():
        if not p.is_file():
            raise InputError(f"{who}: input {rel!r} not found at {p} "
                             f"(data root {data_root}; set NB_GOLDEN_DIR or --golden-dir)")
    return paths


def stage(inputs: dict[str, Path], workdir: Path, copy: bool = False) -> None:
    """Place each input in ``workdir`` under its argv name (a link, or a copy when asked or
    where links fail), so the command sees the recorded argv while its cwd stays private."""
    for rel, src in inputs.items():
        dst = workdir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if copy:
            shutil.copy2(src, dst)
            continue
        try:
            dst.symlink_to(src.resolve())
        except OSError:
            shutil.copy2(src, dst)


def absolute_argv(argv: Sequence[str], inputs: dict[str, Path]) -> list[str]:
    """``argv`` with each input file value (a token after a flag) replaced by its absolute path."""
    out = list(argv)
    for i in range(1, len(out)):
        if out[i] in inputs and out[i - 1].startswith("-"):
            out[i] = str(inputs[out[i]].resolve())
    return out


def with_outputs(argv: Sequence[str], floatfile: str, pixel: Optional[tuple[int, int]] = None,
                 side: Sequence[str] = ()) -> list[str]:
    """The case argv plus the float image path, ``side`` (e.g. ``-intfile PATH``) and, for a
    traced run, ``-trace_pixel S F``: the order the recordings' argv has."""
    out = [*argv, "-floatfile", floatfile, *side]
    if pixel is not None:
        out += ["-trace_pixel", str(pixel[0]), str(pixel[1])]
    return out
