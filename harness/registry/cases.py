"""Case files (cases/<name>.toml) and their validated, frozen model.

A case says what to run (nanoBragg argv without the program name and without output paths),
which pixel to trace, how close is close enough, and what the C reference is: a live binary
and/or a recorded run per engine mode. The registry loads each file on its own, so one bad
file is reported in one line and never hides the others.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Iterable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.config.defects import BY_ID
from harness.compare import keys
from harness.compare.images import ImageThreshold
from harness.compare.primitive import Tolerance, ToleranceTable
from harness.model.errors import CaseFileError, UsageError
from harness.model.suggest import did_you_mean

SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
Mode = Literal["spec", "c-parity"]
ReferenceKind = Literal["instrumented-c", "fixed-c"]

#: argv flags that name output files or the trace pixel; the harness adds them itself so that
#: every run writes into its own temporary directory and traces the pixel asked for.
OUTPUT_FLAGS: dict[str, int] = {"-floatfile": 1, "-intfile": 1, "-noisefile": 1, "-pgmfile": 1,
                                "-trace_pixel": 2}


def strip_output_flags(argv: list[str]) -> list[str]:
    """argv without output-file and trace-pixel flags (and their values)."""
    out: list[str] = []
    skip = 0
    for tok in argv:
        if skip:
            skip -= 1
            continue
        if tok in OUTPUT_FLAGS:
            skip = OUTPUT_FLAGS[tok]
            continue
        out.append(tok)
    return out


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyTolerance(_Frozen):
    atol: Optional[float] = Field(default=None, ge=0)
    rtol: Optional[float] = Field(default=None, ge=0)


class Tolerances(_Frozen):
    """Trace tolerance: |Δ| ≤ atol + rtol·|C|, with per-key overrides (names or aliases)."""

    atol: float = Field(default=1e-6, ge=0)
    rtol: float = Field(default=0.0, ge=0)
    keys: dict[str, KeyTolerance] = Field(default_factory=dict)

    @field_validator("keys")
    @classmethod
    def _known_keys(cls, v: dict[str, KeyTolerance]) -> dict[str, KeyTolerance]:
        out = {}
        for word, tol in v.items():
            name = keys.canonical_name(word)
            if name is None:
                raise ValueError(f"expected a trace key name or alias, got {word!r} "
                                 "(`nbparity keys` lists them)")
            out[name] = tol
        return out

    def table(self) -> ToleranceTable:
        default = Tolerance(self.atol, self.rtol)
        per_key = {name: Tolerance(t.atol if t.atol is not None else default.atol,
                                   t.rtol if t.rtol is not None else default.rtol)
                   for name, t in self.keys.items()}
        return ToleranceTable(default, per_key)


class ImageCheck(_Frozen):
    """Float-image bar: max|Δ| ≤ atol + rtol_of_max·max|C| (and an optional correlation floor)."""

    rtol_of_max: float = Field(default=1e-6, ge=0)
    atol: float = Field(default=0.0, ge=0)
    min_correlation: Optional[float] = Field(default=None, ge=-1, le=1)

    def threshold(self) -> ImageThreshold:
        return ImageThreshold(self.rtol_of_max, self.atol, self.min_correlation)


#: What an expected-failure mark may name besides a trace key: the image (it diverges while the
#: trace agrees, or the reference is image-only) or the engine (it raised before comparing).
EXPECTED_AT_WORDS = ("image", "engine")


def expected_at_word(v: Optional[str]) -> Optional[str]:
    """A mark's ``expected_failure_at``: 'image', 'engine' or a trace key's catalog name."""
    if v is None or v in EXPECTED_AT_WORDS:
        return v
    name = keys.canonical_name(v)
    if name is None:
        raise ValueError(f"expected a trace key name or alias (`nbparity keys`), 'image' or 'engine', got {v!r}")
    return name


def check_mark(reason: Optional[str], at: Optional[str]) -> None:
    """An expected failure names what is expected to fail, so that any other failure is a fail."""
    if reason and at is None:
        raise ValueError("expected_failure needs expected_failure_at: the first trace key expected to diverge "
                         "(a name or alias), 'image' or 'engine'")
    if at is not None and not reason:
        raise ValueError("expected_failure_at without expected_failure: say why it is expected to fail")


class KeyMeasured(_Frozen):
    """One trace key's measured error: max |Δ| where |C| < 1, max |Δ|/|C| where |C| ≥ 1."""

    abs_small: float = Field(ge=0)
    rel: float = Field(ge=0)


class MeasuredError(_Frozen):
    """The engine's error in one dtype against the recordings, over every reference of a case
    (rows and images that a registered C defect explains are left out). ``keys`` holds the keys
    whose error is cancellation rather than rounding (harness.registry.profiles.CANCELLATION):
    they get bars of their own; the trace_max_* are over the other keys."""

    trace_max_abs_small: float = Field(ge=0)   # max |Δ| over traced values with |C| < 1
    trace_max_rel: float = Field(ge=0)         # max |Δ|/|C| over traced values with |C| ≥ 1
    keys: dict[str, KeyMeasured] = Field(default_factory=dict)
    image_rel_to_max: Optional[float] = Field(default=None, ge=0)  # max|Δ|/max|C| of the image
    image_correlation: Optional[float] = Field(default=None, ge=-1, le=1)
    runs: list[str] = Field(default_factory=list)  # the runs measured, as "mode: reference"


class DtypeProfile(_Frozen):
    """The bars for a dtype other than float64, stored with the error they were derived from."""

    derived: str
    measured: MeasuredError
    tolerance: Tolerances
    image: ImageCheck


class Reference(_Frozen):
    """The C reference for one engine mode.

    kind: 'instrumented-c' prints traces; 'fixed-c' (defects fixed upstream C) is image-only.
    recording: a directory name under the recordings' cases/ (see shared/golden/README.md),
    pinned by the sha256 of its case.json so that a re-recorded reference is noticed.
    live: whether a live binary of this kind may stand in when one is found.
    """

    kind: ReferenceKind = "instrumented-c"
    recording: Optional[str] = None
    manifest_sha256: Optional[str] = None
    live: bool = True
    #: Ids of engine.config.defects entries this C build has fixed (a fixed C still has the others).
    fixes: list[str] = Field(default_factory=list)
    #: Why the engine is expected not to match this reference yet (the gate's xfail mark for
    #: this mode; it turns into a failure the moment the run passes).
    expected_failure: Optional[str] = None
    #: What that failure is: the first divergent trace key, 'image' or 'engine'.
    expected_failure_at: Optional[str] = None

    @field_validator("expected_failure_at")
    @classmethod
    def _at(cls, v: Optional[str]) -> Optional[str]:
        return expected_at_word(v)

    @field_validator("fixes")
    @classmethod
    def _known_defects(cls, v: list[str]) -> list[str]:
        for d in v:
            if d not in BY_ID:
                raise ValueError(f"expected C defect ids from engine/config/defects.py ({', '.join(BY_ID)}), got {d!r}")
        return v

    @field_validator("recording")
    @classmethod
    def _slug(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not SLUG.match(v):
            raise ValueError(f"expected a recording directory name (letters, digits, _ and -), got {v!r}")
        return v

    @field_validator("manifest_sha256")
    @classmethod
    def _hex(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not HEX64.match(v):
            raise ValueError(f"expected 64 lowercase hex digits (sha256 of the recording's case.json), got {v!r}")
        return v

    @property
    def traced(self) -> bool:
        return self.kind == "instrumented-c"

    @model_validator(mode="after")
    def _some_source(self) -> "Reference":
        if self.recording is None and not self.live:
            raise ValueError("expected a recording name or live = true (a reference needs a source)")
        check_mark(self.expected_failure, self.expected_failure_at)
        return self


class Case(_Frozen):
    name: str
    description: str = ""
    argv: list[str]
    inputs: list[str] = Field(default_factory=list)
    #: Where inputs resolve: 'golden' (NB_GOLDEN_DIR) or a directory relative to the case file.
    data_root: str = "golden"
    trace_pixels: list[tuple[int, int]] = Field(min_length=1)
    mode: Mode = "c-parity"
    c_threads: int = Field(default=1, ge=1, le=256)
    timeout_s: float = Field(default=600.0, gt=0)
    tags: list[str] = Field(default_factory=list)
    #: Why the case's own mode is expected not to pass yet (see Reference.expected_failure for
    #: the other modes); the gate reports it as xfail and fails when the run passes.
    expected_failure: Optional[str] = None
    #: What that failure is: the first divergent trace key, 'image' or 'engine'.
    expected_failure_at: Optional[str] = None
    tolerance: Tolerances = Field(default_factory=Tolerances)
    image: ImageCheck = Field(default_factory=ImageCheck)
    references: dict[Mode, Reference] = Field(min_length=1)
    #: Bars per dtype other than float64 (which uses tolerance and image above); see
    #: harness.registry.profiles.
    profiles: dict[Literal["float32"], DtypeProfile] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError(f"expected a slug (letters, digits, _ and -, no '/' or '.'), got {v!r}")
        return v

    @field_validator("expected_failure_at")
    @classmethod
    def _at(cls, v: Optional[str]) -> Optional[str]:
        return expected_at_word(v)

    @field_validator("argv")
    @classmethod
    def _argv(cls, v: list[str]) -> list[str]:
        if v and not v[0].startswith("-"):
            raise ValueError(f"expected nanoBragg flags without the program name, got {v[0]!r} first")
        for flag in OUTPUT_FLAGS:
            if flag in v:
                raise ValueError(f"expected no {flag} (the harness adds output paths and -trace_pixel itself)")
        return v

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, v: list[str]) -> list[str]:
        for p in v:
            pp = PurePosixPath(p)
            if pp.is_absolute() or ".." in pp.parts:
                raise ValueError(f"expected a path relative to the data root without '..', got {p!r}")
        return v

    @field_validator("trace_pixels")
    @classmethod
    def _pixels(cls, v: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for s, f in v:
            if s < 0 or f < 0:
                raise ValueError(f"expected [slow, fast] pairs of non-negative integers, got {[s, f]}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Case":
        for p in self.inputs:
            if p not in self.argv:
                raise ValueError(f"input {p!r} is not named in argv (inputs lists the files argv reads)")
        if self.mode not in self.references:
            raise ValueError(f"expected a reference for the case's mode {self.mode!r} under [references.{self.mode}]")
        check_mark(self.expected_failure, self.expected_failure_at)
        return self

    def reference_for(self, mode: str) -> Reference:
        try:
            return self.references[mode]  # type: ignore[index]
        except KeyError:
            raise UsageError(f"case {self.name!r} has no reference for mode {mode!r}; "
                             f"it has: {', '.join(self.references)}") from None


# ---------------------------------------------------------------- loading


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _one_line(path: Path, err: ValidationError) -> CaseFileError:
    errors = err.errors()
    # A misspelt field also makes the real one "missing": name the misspelling first.
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        missing = [_loc(e["loc"]) for e in errors if e["type"] == "missing"]
        msg = (f"unknown field" + (f" (did you mean {missing[0]!r}?)" if missing else "")
               + (f"; expected one of: {', '.join(Case.model_fields)}" if len(first["loc"]) == 1 else ""))
    elif first["type"] == "missing":
        msg = "required field is missing"
    elif "input" in first and first["type"] not in ("value_error",):
        msg += f" (got {first['input']!r})"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return CaseFileError(str(path), _loc(first["loc"]), msg + more)


def load_case(path: Path) -> Case:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise CaseFileError(str(path), "", f"expected valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CaseFileError(str(path), "", f"cannot read: {e}") from None
    try:
        case = Case.model_validate(data)
    except ValidationError as e:
        raise _one_line(path, e) from None
    if case.name != path.stem:
        raise CaseFileError(str(path), "name", f"expected {path.stem!r} (the file name), got {case.name!r}")
    return case


class Registry:
    """Every case file under one directory, loaded one by one."""

    def __init__(self, root: Path):
        self.root = root

    def paths(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("*.toml") if not p.name.startswith("."))

    def load_all(self) -> tuple[list[Case], list[CaseFileError]]:
        cases, errors = [], []
        for p in self.paths():
            try:
                cases.append(load_case(p))
            except CaseFileError as e:
                errors.append(e)
        return cases, errors

    def get(self, name: str) -> Case:
        if not SLUG.match(name):
            raise UsageError(f"case name {name!r} is not a slug (letters, digits, _ and -)")
        path = self.root / f"{name}.toml"
        if not path.is_file():
            known = [p.stem for p in self.paths()]
            hint = did_you_mean(name, known) or f"; {len(known)} cases in {self.root} (`nbparity list`)"
            raise UsageError(f"no case {name!r}: {path} does not exist{hint}")
        return load_case(path)

    def select(self, tags: Optional[list[str]] = None) -> tuple[list[Case], list[CaseFileError]]:
        cases, errors = self.load_all()
        if tags:
            check_tags(tags, cases)
            cases = [c for c in cases if set(tags) & set(c.tags)]
        return cases, errors


def check_tags(tags: Iterable[str], cases: Iterable[Case], option: str = "--tag") -> None:
    """A tag that no case carries is a typo, not an empty selection: UsageError with the nearest tags."""
    known = {t for c in cases for t in c.tags}
    for tag in tags:
        if tag not in known:
            raise UsageError(f"{option}: no case has the tag {tag!r}"
                             + (did_you_mean(tag, known) or f"; tags: {', '.join(sorted(known))}"))


def data_root(case: Case, case_file_dir: Path, golden: Path) -> Path:
    if case.data_root == "golden":
        return golden
    return (case_file_dir / case.data_root).resolve()
