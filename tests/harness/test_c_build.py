"""`nbparity build-c`: pinned sources (GitHub or NB_C_SOURCE_DIR), sha256 refusal, merge, compile,
provenance. The real pins are exercised with a fake opener; compiling uses small C files of our own."""
from __future__ import annotations

import hashlib
import json
import stat
import subprocess
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.model.errors import ReferenceDataError, UsageError
from harness.references import c_build, c_sources
from harness.references.c_build import Target
from harness.references.c_sources import GitHubStore, LocalStore, PinnedFile

PROGRAM = b'#include <stdio.h>\nint main(void) { puts("one"); return 0; }\n'
COMMIT = "c" * 40


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pin(data: bytes, path: str = "src/prog.c", commit: str = COMMIT, repo: str = "someone/prog") -> PinnedFile:
    return PinnedFile(repo, commit, path, _sha(data), "test source")


def _plain_folder(root: Path, pin: PinnedFile, data: bytes) -> Path:
    f = root / pin.repo / pin.commit / pin.path
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(data)
    return f


def test_github_store_fetches_the_raw_url_at_the_pinned_commit_and_checks_sha256():
    asked = []
    files = {c_sources.INSTRUMENTED.url: b"instrumented", c_sources.UPSTREAM.url: b"upstream"}

    def opener(url: str) -> bytes:
        asked.append(url)
        return files[url]

    pins = [PinnedFile(p.repo, p.commit, p.path, _sha(files[p.url])) for p in (c_sources.INSTRUMENTED, c_sources.UPSTREAM)]
    got = c_sources.fetch_verified(pins, GitHubStore(opener))
    assert asked == [f"https://raw.githubusercontent.com/hoidn/nanoBragg/{c_sources.HOIDN_COMMIT}/"
                     "golden_suite_generator/nanoBragg.c",
                     f"https://raw.githubusercontent.com/bl831/nanoBragg/{c_sources.BL831_MAIN}/nanoBragg.c"]
    assert [g.data for g in got.values()] == [b"instrumented", b"upstream"]
    # the real pins refuse these stand-in bytes, naming the file and where it came from
    with pytest.raises(ReferenceDataError) as e:
        c_sources.fetch_verified([c_sources.INSTRUMENTED], GitHubStore(opener))
    assert "hoidn/nanoBragg@8b8c48d0:golden_suite_generator/nanoBragg.c" in e.value.message
    assert c_sources.INSTRUMENTED.url in e.value.message and "nothing was built" in e.value.message


def test_github_store_network_failure_names_the_url_and_the_offline_variable():
    def opener(url: str) -> bytes:
        raise OSError("no route to host")

    with pytest.raises(Exception) as e:
        GitHubStore(opener).get(c_sources.UPSTREAM)
    assert c_sources.UPSTREAM.url in str(e.value) and "NB_C_SOURCE_DIR" in str(e.value)


def test_local_store_reads_a_plain_folder_and_a_git_clone(tmp_path):
    pin = _pin(PROGRAM)
    _plain_folder(tmp_path / "plain", pin, PROGRAM)
    assert LocalStore(tmp_path / "plain").get(pin)[0] == PROGRAM

    clone = tmp_path / "clones" / "someone+prog"
    (clone / "src").mkdir(parents=True)
    (clone / "src" / "prog.c").write_bytes(PROGRAM)
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    at_commit = _pin(PROGRAM, commit=commit)
    data, origin = LocalStore(tmp_path / "clones").get(at_commit)
    assert data == PROGRAM and "git" in origin
    with pytest.raises(Exception) as e:
        LocalStore(tmp_path / "clones").get(_pin(PROGRAM, commit="d" * 40))
    assert "someone/prog@dddddddd:src/prog.c" in str(e.value)


def test_a_corrupted_source_makes_the_build_refuse_and_build_nothing(tmp_path):
    pin = _pin(PROGRAM)
    corrupt = bytearray(PROGRAM)
    corrupt[10] ^= 0x01  # one byte changed
    _plain_folder(tmp_path / "src", pin, bytes(corrupt))
    out = tmp_path / "bin"
    with pytest.raises(ReferenceDataError) as e:
        c_build.build(out, LocalStore(tmp_path / "src"), targets=(Target("prog", "test", pin),))
    assert "someone/prog@cccccccc:src/prog.c" in e.value.message and "refusing to build" in e.value.message
    assert sorted(p.name for p in out.iterdir()) == []


def test_make_c_refuses_a_corrupted_pinned_source(tmp_path, capsys):
    """The real pins through the CLI: one byte changed in the instrumented source -> exit 2, one line."""
    src = tmp_path / "src"
    for pin in c_build.TARGETS[0].pins:
        _plain_folder(src, pin, b"/* not the pinned nanoBragg.c */\n")
    out = tmp_path / "golden_bin"
    code = main(["build-c", "--out", str(out), "--source-dir", str(src)])
    err = capsys.readouterr().err
    assert code == 2
    assert "hoidn/nanoBragg@8b8c48d0:golden_suite_generator/nanoBragg.c" in err and "sha256" in err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len([x for x in lines if "sha256" in x]) == 1
    assert lines[-1].startswith("nbparity: sha256 mismatch: hoidn/nanoBragg@8b8c48d0")
    assert not any(p.name.startswith("nanoBragg") for p in out.iterdir())


def test_build_writes_provenance_beside_the_binary_and_keeps_a_current_one(tmp_path):
    pin = _pin(PROGRAM)
    _plain_folder(tmp_path / "src", pin, PROGRAM)
    target = Target("prog", "test", pin, defines=("-DTRACING=1",))
    out = tmp_path / "bin"
    first = c_build.build(out, LocalStore(tmp_path / "src"), targets=(target,))
    assert first[0].rebuilt
    assert subprocess.run([str(out / "prog")], capture_output=True, text=True).stdout == "one\n"
    prov = json.loads((out / "prog.provenance.json").read_text())
    assert prov["source_sha256"] == pin.sha256 and prov["sources"][0]["url"] == pin.url
    assert prov["flags"] == ["-O2", "-fno-fast-math", "-ffp-contract=off", "-DTRACING=1", "-fopenmp"]
    assert prov["ldlibs"] == ["-lm"] and prov["compiler"]["version"]
    assert prov["binary_sha256"] == _sha((out / "prog").read_bytes())
    assert "-DTRACING=1" in prov["compile_command"] and prov["compile_command"].endswith("nanoBragg.c -lm")
    assert c_build.read_provenance(out / "prog") == prov

    (tmp_path / "empty").mkdir()
    again = c_build.build(out, LocalStore(tmp_path / "empty"), targets=(target,))
    assert not again[0].rebuilt  # current: no source was even looked for (the folder is empty)
    (out / "prog").write_bytes(b"tampered")
    assert c_build.build(out, LocalStore(tmp_path / "src"), targets=(target,))[0].rebuilt


def test_three_way_merge_reproduces_the_pinned_sha_or_refuses(tmp_path):
    base = b"a\nb\nc\nd\ne\nf\ng\n"
    ours = base
    fix1 = base.replace(b"b\n", b"B\n")
    fix2 = base.replace(b"f\n", b"F\n")
    merged = b"a\nB\nc\nd\ne\nF\ng\n"
    files = {_pin(ours, commit="1" * 40): ours, _pin(base, commit="2" * 40): base,
             _pin(fix1, commit="3" * 40): fix1, _pin(fix2, commit="4" * 40): fix2}
    p_ours, p_base, p_fix1, p_fix2 = files
    fetched = {p: c_sources.Fetched(d, "test") for p, d in files.items()}
    good = Target("m", "fixed-c", p_ours, base=p_base, branches=(p_fix1, p_fix2), merged_sha256=_sha(merged))
    text, order = c_build.merged_source(good, fetched, tmp_path)
    assert text == merged and order == ["test source", "test source"]
    bad = Target("m", "fixed-c", p_ours, base=p_base, branches=(p_fix1, p_fix2), merged_sha256="0" * 64)
    with pytest.raises(UsageError) as e:
        c_build.merged_source(bad, fetched, tmp_path)
    assert "does not give the pinned sha256" in e.value.message


def test_missing_compiler_is_one_line_naming_what_to_install(tmp_path):
    with pytest.raises(UsageError) as e:
        c_build.build(tmp_path, LocalStore(tmp_path), cc="no-such-compiler-xyz", targets=())
    assert "install gcc" in e.value.message and "\n" not in e.value.message


def test_a_compiler_without_openmp_is_refused_up_front(tmp_path):
    fake = tmp_path / "fakecc"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && { echo "omp.h: No such file" >&2; '
                    'exit 1; }; done\necho "fakecc 1.0"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(UsageError) as e:
        c_build.build(tmp_path / "out", LocalStore(tmp_path), cc=str(fake), targets=())
    assert "OpenMP" in e.value.message and "libgomp" in e.value.message


def test_cache_key_follows_the_pins():
    key = c_build.cache_key()
    assert key == c_build.cache_key() and key.startswith("golden-bin-")
    moved = (Target("nanoBragg", "instrumented-c", c_sources.INSTRUMENTED, merged_sha256="0" * 64),)
    assert c_build.cache_key(moved) != c_build.cache_key(c_build.TARGETS[:1])


def test_the_pinned_table_is_the_issue_table():
    t = {x.binary: x for x in c_build.TARGETS}
    assert t["nanoBragg"].source_sha256 == "2de28701886574a07e517a41aa1c55afa6bb0af5f346822932efef485de5006b"
    assert t["nanoBragg"].flags == ("-O2", "-fno-fast-math", "-ffp-contract=off", "-DTRACING=1", "-fopenmp")
    assert t["nanoBragg_upstream"].source_sha256 == \
        "ff65983e2e527f171c08142c9e34e0558d43c0c5579e4e73f2757796520a3343"
    assert t["nanoBragg_fixed"].source_sha256 == "1d87a3d3b893395a350c1f60c7055c093732bef2071bf6f4036e374bbe96a5d9"
    assert "-DTRACING=1" not in t["nanoBragg_upstream"].flags + t["nanoBragg_fixed"].flags
    assert [b.commit for b in t["nanoBragg_fixed"].branches] == [c_sources.FIX_PHI0, c_sources.FIX_OVERSAMPLE]
    assert c_build.LDLIBS == ("-lm",)


def test_a_live_run_carries_the_build_provenance_into_its_output_and_ledger_row(fake_c, repo_case, request_for):
    from harness.runners.c import CRunner
    from harness.service.ledger import rows

    fake = fake_c("phi_carryover")
    build = {"binary": "nanoBragg", "source_sha256": "2de2" + "0" * 60, "flags": ["-O2"], "compiler": {"version": "x"}}
    c_build.provenance_path(fake).write_text(json.dumps(build))
    out = CRunner(fake).run(request_for(repo_case("phi_carryover")))
    assert out.provenance["build"] == build
    row = rows.row_from_result({"case": "phi_carryover", "status": "parity", "exit_code": 0,
                                "reference": {"runner": "c-live", "provenance": dict(out.provenance)}},
                               git=("0" * 40, False, "main"))
    assert row["reference_build"] == build and row["reference_id"] == out.provenance["binary_sha256"]
