"""Live C runs that go wrong, played by fake C executables (/bin/sh scripts given with --c-bin).

A crash, an abort, a hang, a timeout or an unreadable output is a runner failure (exit 3); an
image or trace the C wrote in full but that does not match is a divergence (exit 1); NaN is
never parity. Every run comes back within its timeout plus a few seconds.
"""
from __future__ import annotations

import math
import struct

import pytest

from tests.faults import support as s

pytestmark = pytest.mark.faults


def _replay_stdout(world) -> str:
    return (world.replay / "stdout.log").read_text()


def _image(world) -> bytes:
    return (world.replay / "float.bin").read_bytes()


def fake(world, variant: str, *, stdout: str | None = None, image: bytes | None = None,
         before: str = "", after: str = "") -> str:
    """A fake C that prints ``stdout`` and writes ``image`` (the replay's by default)."""
    out_path, img_path = world.root / f"{variant}.stdout", world.root / f"{variant}.bin"
    out_path.write_text(_replay_stdout(world) if stdout is None else stdout)
    img_path.write_bytes(_image(world) if image is None else image)
    body = f'{before}cat "{out_path}"\ncp "{img_path}" "$out"\n{after}'
    return str(world.fake_c(variant, body))


def live(world, binary: str, timeout: float = 20, *extra: str) -> s.Result:
    return world.nbparity("run", s.CASE, "--live", "--c-bin", binary, "--timeout", f"{timeout:g}",
                          "--no-pictures", *extra, timeout=timeout + 60)


def _with_value(stdout: str, key: str, value: str) -> str:
    lines = stdout.splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if line.startswith(f"TRACE_C: {key} "))
    lines[i] = f"TRACE_C: {key} {value}\n"
    return "".join(lines)


def test_parity_through_the_fake_c(world):
    """The control: the unbroken fake C is parity, so each fault below is what makes it fail."""
    res = live(world, fake(world, "ok"))
    s.assert_contract(world, res, 0, evidence=True, stderr_lines=0)


def test_c_exits_1(world):
    res = live(world, str(world.fake_c("exit1", 'echo "ERROR: not enough HKL indices" >&2\nexit 1\n')))
    s.assert_contract(world, res, 3, evidence=True)
    assert "exit" in s.error_lines(res.stderr)[0]


def test_c_segfaults(world):
    res = live(world, str(world.fake_c("segv", 'head -n 30 "$STDOUT"\nkill -SEGV $$\n')))
    s.assert_contract(world, res, 3, evidence=True)
    assert "signal 11" in s.error_lines(res.stderr)[0] or "SIGSEGV" in s.error_lines(res.stderr)[0]


def test_c_aborts(world):
    res = live(world, str(world.fake_c("abort", 'kill -ABRT $$\n')))
    s.assert_contract(world, res, 3, evidence=True)


def test_c_hangs_past_the_timeout(world):
    res = live(world, str(world.fake_c("hang", f"exec sleep {s.HOLD_S}\n")), 2)
    s.assert_contract(world, res, 3, evidence=True)
    assert res.seconds < 2 + s.GRACE_S, res.show()
    assert not s.alive(world.pid_of("hang")), "the timed-out C is still running"


def test_grandchild_holding_stdout_does_not_hold_the_run(world):
    """The C exits, but a process it started in its own session keeps the stdout pipe open."""
    body = f'setsid sleep {s.HOLD_S} &\necho $! > "{world.root}/holder.grandchild"\n' + s.REPLAY
    res = live(world, str(world.fake_c("grandchild", body)), 2)
    assert res.seconds < 2 + s.GRACE_S, res.show()
    assert res.rc in (0, 3), res.show()
    s.assert_contract(world, res, res.rc, evidence=True, stderr_lines=None)


def test_all_nan_image(world):
    res = live(world, fake(world, "nan-all", image=struct.pack("<f", math.nan) * 16))
    s.assert_contract(world, res, 3, evidence=True)
    assert "NaN" in s.error_lines(res.stderr)[0]


def test_one_nan_pixel_is_a_divergence(world):
    data = bytearray(_image(world))
    data[20:24] = struct.pack("<f", math.nan)
    res = live(world, fake(world, "nan-one", image=bytes(data)))
    s.assert_contract(world, res, 1, evidence=True)


def test_nan_in_the_trace_is_a_divergence(world):
    res = live(world, fake(world, "nan-trace", stdout=_with_value(_replay_stdout(world), "I_before_scaling", "nan")))
    s.assert_contract(world, res, 1, evidence=True)
    assert "I_before_scaling" in res.stdout


def test_truncated_trace(world):
    text = _replay_stdout(world)
    res = live(world, fake(world, "trunc-trace", stdout=text[: text.index("TRACE_C: hkl_frac")]))
    s.assert_contract(world, res, 3, evidence=True)


def test_garbled_trace_value_is_never_parity(world):
    res = live(world, fake(world, "garbled-trace",
                           stdout=_with_value(_replay_stdout(world), "hkl_frac", "0.1@#!x 0.2 zz")))
    assert res.rc in (1, 3), res.show()
    s.assert_contract(world, res, res.rc, evidence=True)


def test_truncated_image(world):
    res = live(world, fake(world, "trunc-image", image=_image(world)[:20]))
    s.assert_contract(world, res, 3, evidence=True)


def test_garbage_image_of_the_right_size_is_a_divergence(world):
    res = live(world, fake(world, "garbage-image", image=b"\x41" * len(_image(world))))
    s.assert_contract(world, res, 1, evidence=True)


def test_no_image_written(world):
    res = live(world, str(world.fake_c("no-image", 'cat "$STDOUT"\n')))
    s.assert_contract(world, res, 3, evidence=True)


def test_missing_c_binary(world):
    res = live(world, str(world.root / "no-such-nanoBragg"))
    s.assert_contract(world, res, 2, evidence=False)
    assert "no-such-nanoBragg" in s.error_lines(res.stderr)[0]


def test_c_binary_not_executable(world):
    script = world.root / "not-executable"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    res = live(world, str(script))
    s.assert_contract(world, res, 2, evidence=False)
    assert "not-executable" in s.error_lines(res.stderr)[0]
