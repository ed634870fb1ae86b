"""`nbparity gate`, `nbparity import-recordings` and `nbparity record` (wired in harness.cli.main)."""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.service import gate
from harness.registry import importer
from harness.service import ledger
from harness.model import paths
from harness.registry.cases import Registry
from harness.model.errors import ExitCode, UsageError
from harness.runners.c import find_binary
from harness.pipeline import Context

_STYLE = {gate.PASS: "green", gate.XFAIL: "yellow", gate.FAIL: "bold red", gate.XPASS: "bold red",
          gate.ERROR: "bold red"}


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for chunk in values for v in chunk.split(",") if v.strip()]


def cmd_gate(args: argparse.Namespace, out: Console, err: Console, argv: Sequence[str]) -> int:
    cases_dir = paths.cases_dir(args.cases_dir)
    golden = paths.golden_dir(args.golden_dir)
    results = paths.results_dir(args.results_dir)
    reg = Registry(cases_dir)
    cases, load_errors = reg.load_all()
    extra = [e.message for e in load_errors]
    tags, names, excluded = _split(args.tags), _split(args.cases), _split(args.exclude_tags)
    known = {c.name for c in cases}
    missing = [n for n in names if n not in known]
    if missing:
        raise UsageError(f"--cases: no case {', '.join(map(repr, missing))} in {cases_dir}")
    selected = [c for c in cases if (not tags or set(tags) & set(c.tags)) and (not names or c.name in names)
                and not (set(excluded) & set(c.tags))]
    if not selected:
        raise UsageError(f"no case matches (tags {tags or 'any'}, cases {names or 'any'}, excluded tags {excluded})")
    if not (golden / "index.json").is_file() and args.source != "live":
        extra.append(f"recorded C runs not found at {golden} (set NB_GOLDEN_DIR or --golden-dir): "
                     "a missing reference fails the gate")
    elif not tags and not names and not excluded and args.source != "live":
        extra += importer.coverage_problems(golden, cases)
    items = gate.plan(selected, args.mode)
    if args.list:
        for it in items:
            xf = it.expected_failure
            out.print(f"{it.id:50s} {it.reference}" + (f"  [xfail: {xf}]" if xf else ""), highlight=False,
                      markup=False)
        return 0
    binary = find_binary("instrumented-c", args.c_bin)
    source_txt = ("recordings (--recorded)" if args.source == "recorded" else
                  f"live C {binary}" if binary is not None and (args.c_bin or binary.exists()) else
                  f"recordings under {golden} (no live C binary)")
    run_id = ledger.new_run_id()
    note = lambda m: err.print(f"nbparity: {m}", markup=False, highlight=False)  # noqa: E731
    ctx = Context(golden_dir=golden, results_dir=results, cases_dir=cases_dir)
    opts = gate.gate_options(source=args.source, c_bin=args.c_bin, device=args.device, dtype=args.dtype,
                             pictures=not args.no_pictures, autotrace=not args.no_autotrace,
                             command_line=shlex.join(["nbparity", *argv]))
    err.print(f"gate: {len(items)} runs over {len(selected)} cases against {source_txt}", highlight=False,
              markup=False)
    width = len(str(len(items)))

    def done(i: int, o: gate.Outcome) -> None:
        if o.result is not None:
            ledger.record(o.result, results, command="gate", run_id=run_id, device=args.device, dtype=args.dtype,
                          notice=note)
        err.print(Text.assemble(f"[{i + 1:>{width}}/{len(items)}] ", (f"{o.outcome.upper():5s}", _STYLE[o.outcome]),
                                f" {o.item.id} ({o.wall_s:.1f} s) {o.message}"), highlight=False)

    t0 = time.monotonic()
    outcomes = gate.run_gate(items, opts, ctx, on_done=done)
    wall = time.monotonic() - t0

    out.print(summary_table(outcomes, wall, extra))
    junit = Path(args.junit) if args.junit else results / "junit.xml"
    summary = Path(args.summary) if args.summary else results / "gate_summary.md"
    md = gate.markdown(outcomes, wall, source=source_txt, extra_errors=extra)
    for path, text in ((junit, gate.junit_xml(outcomes, wall, extra)), (summary, md)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    doc = {"run_id": run_id, "wall_s": round(wall, 3), "source": source_txt, "counts": gate.counts(outcomes),
           "registry_errors": extra,
           "runs": [{"case": o.item.case.name, "mode": o.item.mode, "outcome": o.outcome, "message": o.message,
                     "wall_s": round(o.wall_s, 3), "evidence": o.evidence,
                     "expected_failure": o.item.expected_failure} for o in outcomes]}
    results.mkdir(parents=True, exist_ok=True)
    (results / "gate.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    step = gate.write_step_summary(md)
    _print_flips(out, results, run_id, note)
    out.print(f"junit: {junit}\nsummary: {summary}" + (f" (and {step})" if step else ""), highlight=False)
    return gate.exit_code(outcomes, extra)


def summary_table(outcomes: Sequence[gate.Outcome], wall: float, extra: Sequence[str]) -> Table:
    c = gate.counts(outcomes)
    code = gate.exit_code(outcomes, extra)
    t = Table(title=f"nbparity gate: {'GREEN' if code == 0 else 'RED'} — {c['pass']} pass, {c['xfail']} xfail, "
                    f"{c['fail']} fail, {c['xpass']} xpass, {c['error']} error ({len(outcomes)} runs, {wall:.0f} s)")
    for col, kw in (("case", {"no_wrap": True}), ("mode", {}), ("outcome", {}), ("s", {"justify": "right"}),
                    ("first divergence / note", {"overflow": "fold"})):
        t.add_column(col, **kw)
    order = {gate.FAIL: 0, gate.XPASS: 0, gate.ERROR: 0, gate.XFAIL: 1, gate.PASS: 2}
    for o in sorted(outcomes, key=lambda o: (order[o.outcome], o.item.id)):
        t.add_row(o.item.case.name, o.item.mode, Text(o.outcome, style=_STYLE[o.outcome]), f"{o.wall_s:.1f}",
                  o.message)
    for e in extra:
        t.add_row("(registry)", "", Text("error", style="bold red"), "", e)
    return t


def _print_flips(out: Console, results: Path, run_id: str, note) -> None:
    try:
        df = ledger.Ledger.under(results, notice=note).read()
        flips = ledger.gate_flips(df, run_id)
    except Exception:  # noqa: BLE001 - history is a courtesy, never the verdict
        return
    for f in flips:
        out.print(f"newly red since the last green run on main ({(f.before_commit or '?')[:10]}): "
                  f"{f.case_name} [{f.mode}] {f.after}" + (f", first divergence {f.first_key}" if f.first_key else ""),
                  style="bold red", highlight=False)


def cmd_import(args: argparse.Namespace, out: Console, err: Console) -> int:
    golden = Path(args.dir).expanduser().resolve() if args.dir else paths.golden_dir(args.golden_dir)
    cases_dir = paths.cases_dir(args.cases_dir)
    plan = importer.plan_import(golden, cases_dir, args.names or None)
    for p in plan.problems:
        err.print(f"nbparity: skipped {p}", markup=False, highlight=False)
    t = Table(title=f"import-recordings {golden} → {cases_dir}")
    for col in ("case file", "action", "recordings"):
        t.add_column(col)
    for f in plan.files:
        if f.changes or not (args.check or args.dry_run):
            t.add_row(f.path.name, Text(f.action, style="green" if f.action == "unchanged" else "yellow"),
                      ", ".join(f.recordings))
    changed = plan.changed
    out.print(t)
    if args.check:
        if changed or plan.problems:
            out.print(f"{len(changed)} case files missing or out of date; run `nbparity import-recordings {golden}`",
                      highlight=False)
            return int(ExitCode.DIVERGENCE)
        out.print(f"registry up to date with {golden} ({len(plan.files)} case files)", highlight=False)
        return 0
    if args.dry_run:
        out.print(f"dry run: {len(changed)} case files would change", highlight=False)
        return 0
    written = importer.write_plan(plan)
    out.print(f"wrote {len(written)} case files ({sum(f.action == 'create' for f in written)} new); "
              f"{len(plan.files) - len(written)} unchanged", highlight=False)
    return int(ExitCode.USAGE) if plan.problems else 0


def cmd_record(args: argparse.Namespace, out: Console, err: Console) -> int:
    from harness.references import record  # noqa: PLC0415
    from harness.registry.cases import data_root  # noqa: PLC0415

    reg = Registry(paths.cases_dir(args.cases_dir))
    case = reg.get(args.case)
    golden = paths.golden_dir(args.golden_dir)
    kind = "fixed-c" if args.fixed else "instrumented-c"
    binary = find_binary(kind, args.c_bin)
    if binary is None:
        raise UsageError("no C binary: pass --c-bin, set NB_C_BIN (NB_C_FIXED_BIN with --fixed) or put one in "
                         "golden_bin/")
    out_root = Path(args.out).expanduser().resolve() if args.out else golden
    name = args.name or (f"{case.name}__cfixed" if args.fixed else case.name)
    with err.status(f"recording {name} with {binary} …", spinner="dots"):
        rec = record.record(case, binary=binary, out_root=out_root,
                            source_root=data_root(case, reg.root, golden), name=name, kind=kind,
                            pixel=tuple(args.pixel) if args.pixel else None, force=args.force,
                            timeout_s=args.timeout, derived_from=case.name if args.fixed else None)
    m = rec.manifest
    out.print(f"recorded {rec.directory}: {m['detpixels'][0]}x{m['detpixels'][1]} image, "
              f"{'trace of pixel ' + str(m['trace_pixel']) if m['trace_pixel'] else 'no trace'}, "
              f"{m['runtime_s']:.2f} s; case.json sha256 {rec.manifest_sha256}", highlight=False)
    out.print(f"next: nbparity import-recordings {out_root} {name}   (pins it in cases/{case.name}.toml)",
              highlight=False)
    return 0
