"""The one way the harness runs a child process (the C, `record`, the bench's runs).

Every child gets an argv list (no shell), a private working directory, the pinned environment,
a process group of its own (so one signal reaches it and everything it started, and Ctrl-C at
the terminal reaches only the harness), a timeout that kills that group, and bounded waits: a
grandchild that left the group and still holds stdout delays the result by at most ``drain_s``.

Peak memory: ``os.wait4`` on a child started from this (large, torch-importing) process reports
at least *this* process's peak, because the kernel carries the pre-exec address space's high
water mark into the child's rusage. So the child is started by a tiny launcher interpreter
(about 8 MiB) that spawns the real command, reaps it with ``wait4`` and reports that rusage and
the command's own wall time on a private pipe; the launcher passes the command's exit status on.

SIGINT raises KeyboardInterrupt and, once :func:`install_sigterm` ran, SIGTERM raises
:class:`~harness.model.errors.Terminated` (also when it arrives inside a gc callback, where Python
would drop the exception); either kills the child's group on the way out, and
:func:`private_workdir` removes its directory, so the CLI can exit 130 / 143 with nothing left.
"""
from __future__ import annotations

import gc
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Callable, Iterator, Optional, Sequence

from harness.model.errors import RunnerFailure, Terminated
from harness.model.run import RunOutput

#: How long the streams may stay open after the child ended or was killed.
DRAIN_S = 0.5
#: Thread-count variables pinned to the case's count; the C's tap variables are removed because
#: they make the instrumented C print extra line families.
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_DROP_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "TRACE_C_TAP5")

# Runs as `python -S -I -c _LAUNCHER REPORT_FD CMD...`: spawn CMD in a process group of its own,
# report its pid, reap it, report its rusage and wall time, pass its end on. SIGTERM makes it
# kill CMD's group and carry on to the reaping, so the harness can stop a run and still reap it.
_LAUNCHER = r"""
import os, signal, sys, time
fd = int(sys.argv[1]); argv = sys.argv[2:]
os.set_inheritable(fd, False)
state = {"pid": 0, "stop": False}
def stop(*_):
    state["stop"] = True
    if state["pid"]:
        try: os.killpg(state["pid"], signal.SIGKILL)
        except OSError: pass
signal.signal(signal.SIGTERM, stop)
t0 = time.perf_counter_ns()
try:
    pid = os.posix_spawnp(argv[0], argv, os.environ, setpgroup=0, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
except OSError as e:
    os.write(fd, ("error %s\n" % e.strerror).encode()); sys.stderr.write("%s: %s\n" % (argv[0], e.strerror))
    os._exit(127)
state["pid"] = pid
if state["stop"]:
    stop()
os.write(fd, ("pid %d\n" % pid).encode())
while True:
    try:
        _, status, ru = os.wait4(pid, 0); break
    except InterruptedError:
        continue
os.write(fd, ("rusage %d %d\n" % (ru.ru_maxrss, time.perf_counter_ns() - t0)).encode())
if os.WIFSIGNALED(status):
    sig = os.WTERMSIG(status); signal.signal(sig, signal.SIG_DFL); os.kill(os.getpid(), sig)
os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)
"""


@dataclass(frozen=True)
class Finished:
    """How one child ended. ``exit_code`` is None when the harness killed it (timeout);
    negative for a signal. ``peak_rss_bytes`` is the command's own peak (None if unknown)."""

    argv: tuple[str, ...]
    cwd: str
    exit_code: Optional[int]
    stdout: bytes
    stderr: bytes
    wall_s: float
    peak_rss_bytes: Optional[int]
    timed_out: bool
    spawn_error: Optional[str] = None

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    def how_it_ended(self) -> str:
        """'exited with code N' / 'was killed by signal N' / 'timed out'."""
        if self.timed_out or self.exit_code is None:
            return "timed out"
        if self.exit_code < 0:
            return f"was killed by signal {-self.exit_code}"
        return f"exited with code {self.exit_code}"


def pinned_env(threads: int) -> tuple[dict[str, str], dict[str, str]]:
    """(the child's whole environment, the variables the harness set): one rule for every child."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES)}
    pinned = {**{v: str(threads) for v in _THREAD_VARS}, "LC_ALL": "C"}
    env.update(pinned)
    return env, pinned


@contextmanager
def private_workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A fresh empty directory for one child, removed afterwards (also on SIGINT/SIGTERM)."""
    path = Path(tempfile.mkdtemp(prefix=f"nbparity-{prefix}-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


#: How soon a stop that arrived inside a gc callback or ``__del__`` is raised again.
RETRY_S = 0.05


def _in_dropping_frame(frame: Optional[FrameType]) -> bool:
    """True when ``frame`` runs inside a gc callback or a ``__del__``: Python prints an exception
    raised there ("Exception ignored in ...") and drops it, so the stop would be lost and the
    run would go on (Hypothesis's gc callback swallowed a SIGTERM this way)."""
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _stop_exception(signum: int) -> BaseException:
    return Terminated(signum) if signum == signal.SIGTERM else KeyboardInterrupt()


def install_sigterm() -> Callable[[], None]:
    """Make SIGTERM raise Terminated (exit 143) and SIGINT KeyboardInterrupt, so the same clean-up
    runs for both; a stop that arrives where Python would drop the exception is raised again
    ``RETRY_S`` later. Returns the function that puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    pending: list[int] = []

    def _stop(signum: int, frame: Optional[FrameType]) -> None:
        if _in_dropping_frame(frame):
            pending.append(signum)
            signal.setitimer(signal.ITIMER_REAL, RETRY_S)
            return
        raise _stop_exception(signum)

    def _retry(_signum: int, frame: Optional[FrameType]) -> None:
        if pending:
            _stop(pending.pop(), frame)

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)}
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGALRM, _retry)

    def restore() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    return restore


def run(argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout_s: float,
        drain_s: float = DRAIN_S) -> Finished:
    """Run ``argv`` in ``cwd`` to its end or ``timeout_s``; every wait is bounded."""
    argv = [str(a) for a in argv]
    report_r, report_w = os.pipe()
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen([sys.executable, "-S", "-I", "-c", _LAUNCHER, str(report_w), *argv],
                                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, pass_fds=(report_w,))
    except OSError as e:
        os.close(report_r)
        raise RunnerFailure(f"cannot start {argv[0]} in {cwd}: {e.strerror}") from None
    finally:
        os.close(report_w)
    streams = _Streams(proc, report_r)
    try:
        timed_out = streams.collect(t0 + timeout_s, drain_s)
    finally:  # also on KeyboardInterrupt / Terminated: the command is stopped and reaped
        status = streams.finish()
    wall = time.perf_counter() - t0
    report = streams.report()
    code = None if timed_out or status is None else os.waitstatus_to_exitcode(status)
    return Finished(argv=tuple(argv), cwd=str(cwd), exit_code=code, stdout=bytes(streams.out),
                    stderr=bytes(streams.err), wall_s=report.get("wall_s", wall),
                    peak_rss_bytes=report.get("peak_rss_bytes"), timed_out=timed_out,
                    spawn_error=report.get("error"))


class _Streams:
    """stdout, stderr and the launcher's report pipe, read together with one selector."""

    def __init__(self, proc: subprocess.Popen, report_fd: int):
        self.proc = proc
        self.out, self.err, self._report = bytearray(), bytearray(), bytearray()
        self._bufs = {proc.stdout.fileno(): self.out, proc.stderr.fileno(): self.err, report_fd: self._report}
        self._report_fd = report_fd
        self.launcher_done = False
        self._sel = selectors.DefaultSelector()
        for fd in self._bufs:
            self._sel.register(fd, selectors.EVENT_READ)

    def collect(self, deadline: float, drain_s: float) -> bool:
        """Read until every stream is closed; True when the deadline passed first (command stopped).

        The report pipe closes when the launcher ends; from then on (or from the stop) the other
        streams get at most ``drain_s`` more.
        """
        timed_out = False
        while self._sel.get_map():
            now = time.perf_counter()
            if now >= deadline:
                if self.launcher_done or timed_out:
                    break
                self.stop()
                timed_out = True
                deadline = now + drain_s
                continue
            for key, _ in self._sel.select(deadline - now):
                data = os.read(key.fd, 1 << 16)
                if data:
                    self._bufs[key.fd].extend(data)
                    continue
                self._sel.unregister(key.fd)
                if key.fd == self._report_fd:
                    self.launcher_done = True
                    deadline = min(deadline, time.perf_counter() + drain_s)
        return timed_out

    def stop(self) -> None:
        """Kill the command's process group (or ask the launcher to, before it reported the pid)."""
        pid = self.report().get("pid")
        if pid:
            _kill_group(pid)
        else:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass

    def finish(self) -> Optional[int]:
        """Stop what still runs, reap the launcher (bounded) and close the streams."""
        if not self.launcher_done:
            self.stop()
        status = _reap(self.proc, bound_s=2.0)
        if status is None:  # a launcher that does not end: kill it with everything it holds
            _kill_group(self.proc.pid)
            self.stop()
            status = _reap(self.proc, bound_s=2.0)
        pid = self.report().get("pid")
        if pid:
            _kill_group(pid)  # what the command left running in its group
        self._sel.close()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        try:
            os.close(self._report_fd)
        except OSError:
            pass
        return status

    def report(self) -> dict:
        """What the launcher said: ``pid``, ``error`` (could not start), ``peak_rss_bytes``/``wall_s``."""
        out: dict = {}
        for line in bytes(self._report).decode("ascii", errors="replace").splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "pid" and words[1].isdigit():
                out["pid"] = int(words[1])
            elif words and words[0] == "error":
                out["error"] = " ".join(words[1:])
            elif len(words) == 3 and words[0] == "rusage" and words[1].isdigit() and words[2].isdigit():
                kib = int(words[1])  # Linux reports KiB, macOS bytes
                out.update(peak_rss_bytes=kib if sys.platform == "darwin" else kib * 1024, wall_s=int(words[2]) / 1e9)
        return out


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(proc: subprocess.Popen, bound_s: float) -> Optional[int]:
    """The launcher's wait status, waiting at most ``bound_s``."""
    end = time.perf_counter() + bound_s
    while True:
        try:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
            return status
        if time.perf_counter() >= end:
            return None
        time.sleep(0.001)


def fail(what: str, done: Finished, output: Optional[RunOutput] = None) -> RunnerFailure:
    """The one-line failure for a child that did not end well (timeout, signal, exit code)."""
    if done.spawn_error:
        return RunnerFailure(f"cannot start {done.argv[0]}: {done.spawn_error}", output)
    last = done.stderr_text.strip().splitlines()[-1] if done.stderr_text.strip() else ""
    return RunnerFailure(f"{what} {done.how_it_ended()}" + (f": {last}" if last and not done.timed_out else ""),
                         output)
