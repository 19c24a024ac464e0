"""Running wrk with one of bench/lua's scripts, and what a run measured.

The CPU time of the process under test is read from /proc just before and
just after wrk runs, so CPU per request covers exactly the loaded interval
(plus wrk's start-up, a few milliseconds out of seconds).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import procs
from bench.servers import Scratch, binary

LUA_DIR = Path(__file__).parent / "lua"
_MARKER = "WRK_JSON "


@dataclass(frozen=True)
class Load:
    """How hard to push: wrk's threads, connections and seconds."""

    threads: int
    connections: int
    # Whole seconds: wrk reads -d as an integer with a unit.
    seconds: int


@dataclass(frozen=True)
class Measured:
    """One wrk run against one target."""

    requests: int
    # Non-2xx/3xx answers, and every error wrk saw (resets, timeouts too).
    status_errors: int
    errors: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float
    # Cores that programs other than this run's used meanwhile, and cores the
    # hypervisor stole: more than a few tenths and the run was disturbed.
    others_cores: float = 0.0
    stolen_cores: float = 0.0

    @property
    def ok_per_s(self) -> float:
        """Completed requests answered with 2xx or 3xx, per second."""
        return (self.requests - self.status_errors) / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s * 1e6 / max(self.requests, 1)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "ok_per_s": round(self.ok_per_s, 1),
            "cpu_us_per_request": round(self.cpu_us_per_request, 1),
        }


def script(scratch: Scratch, name: str) -> Path:
    """The scenario's script with the thread setup and the report appended."""
    parts = [LUA_DIR / "threads.lua", LUA_DIR / f"{name}.lua", LUA_DIR / "report.lua"]
    target = scratch.path(f"wrk-{name}.lua")
    target.write_text("\n".join(part.read_text() for part in parts))
    return target


def start(
    url: str, lua: Path, load: Load, args: Sequence[str] = ()
) -> subprocess.Popen[str]:
    """wrk running in the background; :func:`finish` collects it."""
    command = [
        binary("wrk"),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(lua),
        url,
        "--",
        *args,
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def finish(wrk: subprocess.Popen[str], load: Load) -> dict[str, Any]:
    try:
        output, _ = wrk.communicate(timeout=load.seconds + 30)
    except subprocess.TimeoutExpired:
        wrk.kill()
        wrk.wait()
        raise RuntimeError("wrk did not finish in time") from None
    for line in output.splitlines():
        if line.startswith(_MARKER):
            report: dict[str, Any] = json.loads(line[len(_MARKER) :])
            return report
    raise RuntimeError(f"wrk gave no report (exit {wrk.returncode}):\n{output}")


def run(
    url: str,
    lua: Path,
    load: Load,
    args: Sequence[str] = (),
    watch: procs.Child | None = None,
) -> Measured:
    """Run wrk to the end; CPU is that of *watch* over the run."""
    cpu_before = watch.cpu_seconds() if watch else 0.0
    bystanders = procs.Bystanders()
    wrk = start(url, lua, load, args)
    try:
        report = finish(wrk, load)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    cpu_after = watch.cpu_seconds() if watch else 0.0
    return measured(report, cpu_after - cpu_before, bystanders)


def measured(
    report: dict[str, Any], cpu_s: float, bystanders: procs.Bystanders | None = None
) -> Measured:
    errors = sum(
        int(report[key])
        for key in (
            "connect_errors",
            "read_errors",
            "write_errors",
            "status_errors",
            "timeouts",
        )
    )
    others, stolen = bystanders.cores() if bystanders else (0.0, 0.0)
    return Measured(
        requests=int(report["requests"]),
        status_errors=int(report["status_errors"]),
        errors=errors,
        seconds=int(report["duration_us"]) / 1e6,
        p50_ms=float(report["p50_us"]) / 1000,
        p90_ms=float(report["p90_us"]) / 1000,
        p99_ms=float(report["p99_us"]) / 1000,
        max_ms=float(report["max_us"]) / 1000,
        cpu_s=cpu_s,
        others_cores=round(others, 3),
        stolen_cores=round(stolen, 3),
    )
