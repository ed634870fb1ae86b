"""The implementation registry: every program nbparity can put on either side of a comparison.

An implementation is the C (instrumented, upstream or fixed), the bundled engine, or any other
port: a C-style command line (argv in, float image and ``PREFIX:key=value`` traces out) or a
Python callable run in-process. Built-in entries live in :data:`BUILTIN`; users add their own in
TOML (``implementations/*.toml`` next to the cases, ``--impls FILE`` or ``$NB_IMPLS``), one table
per implementation, validated here like the case files::

    [hoidn]
    kind = "command"
    command = ["${NB_HOIDN_PYTHON:?the python of its venv}", "-m", "nanobrag_torch"]
    trace_prefix = "TRACE_PY"
    [hoidn.units]
    pix0_vector_meters = { unit = "mm", factor = 1e-3 }
"""
from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Literal, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.compare import keys
from harness.compare.conventions import Convention, UnitConversion
from harness.model.errors import CaseFileError, UsageError
from harness.model.paths import REPO_ROOT
from harness.registry.cases import SLUG, _loc, expected_at_word

Kind = Literal["command", "in-process"]
ReferenceKind = Literal["instrumented-c", "fixed-c"]

#: The C's console line that gives the detector size, "(FASTxSLOW pixels)".
C_DETECTOR_SIZE = r"\((?P<fast>\d+)x(?P<slow>\d+) pixels\)"
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")
#: ``NAME=PATH``: while `nbparity bisect --impl NAME` probes a commit, the worktree that stands for
#: that implementation's ``{checkout}`` (set by harness.service.bisect for the run it starts).
CHECKOUT_ENV = "NB_IMPL_CHECKOUT"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitRule(_Frozen):
    """The implementation prints a catalog key in ``unit``; value × ``factor`` is the catalog's."""

    unit: str
    factor: float = Field(gt=0)
    catalog_unit: str = ""


class Capabilities(_Frozen):
    trace: bool = True
    phi_lines: bool = True
    smv: bool = False
    pgm: bool = False
    devices: list[str] = Field(default_factory=lambda: ["cpu"])
    dtypes: list[str] = Field(default_factory=lambda: ["float64"])


class KnownFailure(_Frozen):
    """A case this implementation is known to fail against ``vs``: the pair gate's xfail mark.

    A case file's own ``expected_failure`` describes the bundled engine against the C and never
    applies to another pair; an implementation's known failures live in its own entry.
    """

    reason: str = Field(min_length=1)
    #: The first trace key expected to diverge (name or alias), 'image' or 'engine'.
    at: str
    #: The reference it fails against.
    vs: str = "c"

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        return expected_at_word(v)


class Implementation(_Frozen):
    """One registered implementation (see the module docstring for the TOML shape)."""

    name: str
    kind: Kind
    description: str = ""
    #: argv prefix; ``${VAR}``/``${VAR:-default}``, ``{python}``, ``{repo}`` and ``{checkout}`` (the
    #: ``repository``, or the commit bisect is probing) are expanded.
    command: list[str] = Field(default_factory=list)
    #: ``module:function`` with engine.api.run's contract (in-process kind only).
    entry: Optional[str] = None
    trace_prefix: str = "TRACE_PY"
    phi_prefix: Optional[str] = None
    #: How it is told where to write the float image (None: it writes none).
    float_flag: Optional[str] = "-floatfile"
    trace_flag: str = "-trace_pixel"
    trace_order: Literal["slow fast", "fast slow"] = "slow fast"
    #: A regex with groups ``fast`` and ``slow`` that finds the detector size in its stdout.
    detector_size: str = C_DETECTOR_SIZE
    dtype_flag: Optional[str] = None
    device_flag: Optional[str] = None
    #: Extra flags per engine mode; an implementation without modes runs the same for both.
    modes: dict[Literal["spec", "c-parity"], list[str]] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    can: Capabilities = Field(default_factory=Capabilities)
    #: Its key name -> the catalog's name (``nbparity keys``).
    keys: dict[str, str] = Field(default_factory=dict)
    #: Catalog key -> the unit it prints that key in.
    units: dict[str, UnitRule] = Field(default_factory=dict)
    #: For the C: which of a case's references (recordings) stands for it when no binary runs.
    reference_kind: Optional[ReferenceKind] = None
    #: For the C: the environment variable naming a live binary (its default path is `command`).
    binary_env: Optional[str] = None
    timeout_s: Optional[float] = Field(default=None, gt=0)
    #: Its source as a git checkout (``${VAR}`` expanded): what `nbparity bisect --impl` searches.
    repository: Optional[str] = None
    #: Environment that makes ``command`` run the code of ``{checkout}`` rather than an installed
    #: copy (e.g. ``PYTHONPATH = "{checkout}/src"``); applied only while bisect probes a commit.
    checkout_env: dict[str, str] = Field(default_factory=dict)
    #: Case name -> its known failure when this implementation is under test (``[NAME.expected_failures]``).
    expected_failures: dict[str, KnownFailure] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError(f"expected a slug (letters, digits, '-', '_'), got {v!r}")
        return v

    @field_validator("keys")
    @classmethod
    def _alias_targets(cls, v: dict[str, str]) -> dict[str, str]:
        for theirs, ours in v.items():
            if keys.canonical_name(ours) != ours:
                raise ValueError(f"{theirs!r} maps to {ours!r}, which is not a catalog key name "
                                 "(`nbparity keys` lists them)")
        return v

    @field_validator("units")
    @classmethod
    def _unit_keys(cls, v: dict[str, UnitRule]) -> dict[str, UnitRule]:
        for name in v:
            if keys.canonical_name(name) != name:
                raise ValueError(f"{name!r} is not a catalog key name (`nbparity keys` lists them)")
        return v

    @model_validator(mode="after")
    def _runnable(self) -> "Implementation":
        if self.kind == "command" and not self.command:
            raise ValueError("a command implementation needs `command` (its argv prefix)")
        if self.kind == "in-process" and not self.entry:
            raise ValueError("an in-process implementation needs `entry` (module:function)")
        return self

    @property
    def phi_marker(self) -> str:
        return self.phi_prefix or f"{self.trace_prefix}_PHI"

    @property
    def image_only(self) -> bool:
        return not self.can.trace

    def convention(self) -> Convention:
        """How it prints its trace, for harness.compare.conventions."""
        units = {k: UnitConversion(u.unit, u.factor, u.catalog_unit) for k, u in self.units.items()}
        return Convention(self.name, self.trace_prefix, self.phi_marker, dict(self.keys), units)

    def argv_prefix(self) -> list[str]:
        """The command with variables expanded (a live binary from ``binary_env`` first)."""
        if self.binary_env and os.environ.get(self.binary_env):
            return [os.path.expanduser(os.environ[self.binary_env]), *self.command[1:]]
        return [self._expand(tok) for tok in self.command]

    def probed_checkout(self) -> Optional[str]:
        """The worktree bisect is probing for this implementation (see :data:`CHECKOUT_ENV`)."""
        name, sep, path = os.environ.get(CHECKOUT_ENV, "").partition("=")
        return path if sep and name == self.name and path else None

    def repository_path(self) -> Optional[str]:
        return expand(self.repository) if self.repository else None

    def known_failure(self, case: str, vs: str) -> Optional[KnownFailure]:
        """Its mark for ``case`` when compared with ``vs``, if it has one."""
        mark = self.expected_failures.get(case)
        return mark if mark is not None and mark.vs == vs else None

    def runs_a_checkout(self) -> bool:
        """Whether its command or checkout_env uses ``{checkout}`` (else bisect has nothing to vary)."""
        return any("{checkout}" in tok for tok in (*self.command, *self.checkout_env.values()))

    def run_env(self) -> dict[str, str]:
        """Its own environment, plus checkout_env while bisect probes one of its commits."""
        probing = self.probed_checkout() is not None
        return {**self.env, **({k: self._expand(v) for k, v in self.checkout_env.items()} if probing else {})}

    def _expand(self, token: str) -> str:
        if "{checkout}" in token:
            checkout = self.probed_checkout() or self.repository_path()
            if not checkout:
                raise UsageError(f"implementation {self.name!r} runs {{checkout}} but names no `repository` "
                                 "(the git checkout of its source): add one to its entry")
            token = token.replace("{checkout}", checkout)
        return expand(token)

    def mode_flags(self, mode: str) -> list[str]:
        if not self.modes:
            return []
        if mode not in self.modes:
            raise UsageError(f"implementation {self.name!r} has no mode {mode!r}; "
                             f"it has: {', '.join(self.modes)}")
        return list(self.modes[mode])


def expand(token: str) -> str:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR:?how to set it}``, ``{python}``, ``{repo}`` and ``~``
    in one argv token; an unset ``${VAR:?…}`` is a one-line UsageError with that text (an entry
    for a program installed per machine names no machine's path)."""
    token = token.replace("{python}", sys.executable).replace("{repo}", str(REPO_ROOT))
    return os.path.expanduser(_VAR.sub(_variable, token))


def _variable(m: re.Match) -> str:
    value = os.environ.get(m["name"])
    if value:
        return value
    if m["op"] == ":?":
        raise UsageError(f"{m['name']} is not set: {m['arg'] or 'set it to run this implementation'}")
    return m["arg"] or ""


# ---------------------------------------------------------------- built-ins

BUILTIN: dict[str, Implementation] = {
    "c": Implementation(
        name="c", kind="command", description="instrumented C nanoBragg (live binary or recording)",
        command=["{repo}/golden_bin/nanoBragg"], binary_env="NB_C_BIN", trace_prefix="TRACE_C",
        reference_kind="instrumented-c", can=Capabilities(smv=True, pgm=True)),
    "c-fixed": Implementation(
        name="c-fixed", kind="command", description="C with the defect fixes (image only)",
        command=["{repo}/golden_bin/nanoBragg_fixed"], binary_env="NB_C_FIXED_BIN",
        trace_prefix="TRACE_C", reference_kind="fixed-c",
        can=Capabilities(trace=False, phi_lines=False, smv=True, pgm=True)),
    "c-upstream": Implementation(
        name="c-upstream", kind="command", description="upstream C nanoBragg, untraced (image only)",
        command=["{repo}/golden_bin/nanoBragg_upstream"], binary_env="NB_C_UPSTREAM_BIN",
        trace_prefix="TRACE_C", can=Capabilities(trace=False, phi_lines=False, smv=True, pgm=True)),
    "engine": Implementation(
        name="engine", kind="in-process", description="bundled PyTorch engine (in-process)",
        entry="engine.api:run", trace_prefix="TRACE_PY", modes={"spec": [], "c-parity": []},
        can=Capabilities(smv=True, pgm=True, devices=["cpu", "cuda"], dtypes=["float64", "float32"])),
}
DEFAULT_IMPL = "engine"
DEFAULT_VS = "c"


# ---------------------------------------------------------------- loading


def _one_line(path: Path, name: str, err: ValidationError) -> CaseFileError:
    first = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = f"unknown field; expected one of: {', '.join(Implementation.model_fields)}"
    elif first["type"] == "missing":
        msg = "required field is missing"
    field = ".".join(filter(None, (name, _loc(first["loc"]))))
    return CaseFileError(str(path), field, msg)


def load_file(path: Path) -> dict[str, Implementation]:
    """Every ``[name]`` table of one TOML file, validated (one-line CaseFileError otherwise)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise CaseFileError(str(path), "", f"expected valid TOML: {e}") from None
    except OSError as e:
        raise CaseFileError(str(path), "", f"cannot read: {e.strerror} (check --impls / NB_IMPLS)") from None
    out: dict[str, Implementation] = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise CaseFileError(str(path), name, "expected a table [NAME] per implementation")
        try:
            out[name] = Implementation.model_validate({"name": name, **table})
        except ValidationError as e:
            raise _one_line(path, name, e) from None
    return out


def default_files(extra: Optional[str] = None) -> list[Path]:
    """implementations/*.toml in the repository, then ``--impls FILE`` or else ``$NB_IMPLS``."""
    files = sorted((REPO_ROOT / "implementations").glob("*.toml"))
    chosen = extra or os.environ.get("NB_IMPLS")
    if chosen:
        files.append(Path(chosen).expanduser())
    return files


def load_registry(extra: Optional[str] = None, files: Optional[Sequence[Path]] = None) -> dict[str, Implementation]:
    """Built-ins plus every file; a name defined twice is an error naming both places."""
    registry = dict(BUILTIN)
    where = {name: "built-in" for name in BUILTIN}
    for path in (default_files(extra) if files is None else files):
        for name, impl in load_file(path).items():
            if name in registry:
                raise CaseFileError(str(path), name, f"implementation {name!r} is already defined "
                                    f"({where[name]}); pick another name")
            registry[name] = impl
            where[name] = str(path)
    return registry


def resolve(name: str, registry: dict[str, Implementation]) -> Implementation:
    try:
        return registry[name]
    except KeyError:
        raise UsageError(f"unknown implementation {name!r} (--impl/--vs); registered: "
                         f"{', '.join(sorted(registry))} (add one with --impls FILE)") from None
