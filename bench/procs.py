"""Processes the benchmark starts, and what /proc says about them.

Every child gets its own process group and is registered here, so one call
stops all of them (nginx workers included) however the run ends.  CPU time
and resident memory come from /proc, not from the processes themselves, so
they cost the measured process nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
# Looked up once here: the child between fork and exec should only call it.
_LIBC = ctypes.CDLL(None, use_errno=True)
_STARTED: list[Child] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # If the driver is killed outright (SIGKILL), its finally blocks never
    # run; the kernel then still sends each direct child SIGTERM.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One started program: its process group is stopped as a whole."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The process and its direct children (nginx's workers)."""
        return [self.pid, *_children(self.pid)]

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process and its children so far."""
        return sum(_cpu_seconds(pid) for pid in self.pids())

    def rss_kib(self) -> int:
        return _status_kib(self.pid, "VmRSS")

    def wait_for_port(self, timeout_s: float = 30) -> None:
        if self.port is None:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name}: nothing on port {self.port}:\n{self.tail()}")

    def stop(self, timeout_s: float = 15) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.process.wait()
        # Anything left in the group (a worker that outlived its master).
        _signal_group(self.pid, signal.SIGKILL)

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start(
    name: str,
    command: Sequence[str],
    log: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start *command* in its own process group, output to *log*."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    child = Child(name, process, log, port)
    _STARTED.append(child)
    child.wait_for_port()
    return child


def stop_all() -> None:
    """Stop every child started so far, newest first."""
    while _STARTED:
        _STARTED.pop().stop()


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU time spent by every process on the machine (user, nice, system),
    and time stolen by the hypervisor, both summed over cores since boot.

    Interrupt time is left out: loopback traffic's softirq work is charged
    there rather than to the processes that cause it.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, steal = (int(fields[i]) for i in (0, 1, 2, 7))
    return (user + nice + system) / CLOCK_TICKS, steal / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU time of this driver, of its reaped children (wrk), and of every
    server it started that is still running."""
    used = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        used += usage.ru_utime + usage.ru_stime
    return used + sum(child.cpu_seconds() for child in _STARTED if not child.stopped)


class Bystanders:
    """How much CPU other programs on the machine took during an interval:
    a benchmark on a shared machine is only as good as this is small."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._machine, self._steal = machine_cpu_seconds()
        self._own = own_cpu_seconds()

    def cores(self) -> tuple[float, float]:
        """Average cores used by others, and stolen, since construction."""
        wall = max(time.monotonic() - self._started, 1e-6)
        machine, steal = machine_cpu_seconds()
        own = own_cpu_seconds()
        others = (machine - self._machine) - (own - self._own)
        return max(others, 0.0) / wall, (steal - self._steal) / wall


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return 0.0
    # stat(5): utime and stime are fields 14 and 15; fields[0] is field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == parent:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {key}")
