"""Authenticated GETs through the gateway, HAProxy and nginx, beside the
origin alone (scenarios 1 to 4), and a minute of full load on the gateway
for its memory and its profile (scenario 7).

Targets take turns within each repetition, in an order that rotates from
one repetition to the next, so a ratio between two targets compares runs
made minutes apart under the same conditions, not one target early and
another late.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import load, procs

# Scenario names, also the keys of the results.
ORIGIN, GATEWAY, HAPROXY, NGINX = "upstream", "gateway", "haproxy", "nginx"
TARGETS = (ORIGIN, GATEWAY, HAPROXY, NGINX)
SOAK_RSS_EVERY_S = 5
_REPOSITORY = Path(__file__).resolve().parent.parent
PROFILE_SECONDS = 10


@dataclass(frozen=True)
class Target:
    """Where to send requests, and whose CPU they cost."""

    url: str
    process: procs.Child


def interleaved(
    targets: Mapping[str, Target],
    lua: Path,
    args: Sequence[str],
    loads: Mapping[str, load.Load],
    repetitions: int,
    say: Callable[[str], None],
) -> dict[str, list[dict[str, Any]]]:
    """Every target under every load, *repetitions* times, taking turns."""
    names = list(targets)
    warm_up = load.Load(threads=2, connections=16, seconds=2)
    for name in names:
        # Connection pools, JIT-less caches and nginx workers all settle.
        load.run(targets[name].url, lua, warm_up, args)

    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for repetition in range(repetitions):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            target = targets[name]
            runs = {
                label: load.run(target.url, lua, shape, args, watch=target.process)
                for label, shape in loads.items()
            }
            results[name].append({k: v.as_dict() for k, v in runs.items()})
            say(_progress(repetition, name, runs))
    return results


def _progress(repetition: int, name: str, runs: Mapping[str, load.Measured]) -> str:
    parts = [
        f"{label} {run.ok_per_s:,.0f} req/s p50 {run.p50_ms:.2f} ms "
        f"p99 {run.p99_ms:.2f} ms {run.cpu_us_per_request:.0f} us/req"
        + (f" ERRORS {run.errors}" if run.errors else "")
        for label, run in runs.items()
    ]
    return f"  rep {repetition + 1} {name:8} " + "; ".join(parts)


def soak(
    target: Target,
    lua: Path,
    args: Sequence[str],
    shape: load.Load,
    results_dir: Path,
    scratch: Path,
) -> dict[str, Any]:
    """Full load for ``shape.seconds``: RSS before, during and after, and
    py-spy twice in the middle (collapsed stacks, then a flame graph)."""
    process = target.process
    spies: list[tuple[float, str, Path]] = [
        (shape.seconds * 0.25, "raw", results_dir / "profile.raw"),
        (shape.seconds * 0.6, "flamegraph", results_dir / "flamegraph.svg"),
    ]
    results_dir.mkdir(parents=True, exist_ok=True)
    for _, _, stale in spies:
        stale.unlink(missing_ok=True)  # a failed profile must not show an old one
    rss_before = process.rss_kib()
    cpu_before = process.cpu_seconds()
    bystanders = procs.Bystanders()
    wrk = load.start(target.url, lua, shape, args)
    started = time.monotonic()
    rss = [(0.0, rss_before)]
    running: list[procs.Child] = []
    try:
        while wrk.poll() is None:
            elapsed = time.monotonic() - started
            if spies and elapsed >= spies[0][0]:
                _, fmt, output = spies.pop(0)
                spy = _py_spy(process.pid, fmt, output, scratch)
                if spy is not None:
                    running.append(spy)
            if elapsed - rss[-1][0] >= SOAK_RSS_EVERY_S:
                rss.append((round(elapsed, 1), process.rss_kib()))
            time.sleep(0.2)
        report = load.finish(wrk, shape)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
        failed = []
        for spy in running:
            if spy.process.wait(timeout=PROFILE_SECONDS + 20) != 0:
                failed.append(f"{spy.name}: {spy.tail(3)}")
    cpu = process.cpu_seconds() - cpu_before
    rss_after = process.rss_kib()
    rss.append((round(time.monotonic() - started, 1), rss_after))
    profile = summarise_profile(results_dir / "profile.raw")
    if failed:
        profile["py_spy_failures"] = failed
    return {
        "load": load.measured(report, cpu, bystanders).as_dict(),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_growth": round(rss_after / rss_before - 1, 4),
        "rss_samples": rss,
        "profile": profile,
    }


def _py_spy(pid: int, fmt: str, output: Path, scratch: Path) -> procs.Child | None:
    binary = Path(sys.executable).parent / "py-spy"
    if not binary.exists():
        return None
    command = [
        str(binary),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(PROFILE_SECONDS),
        "--format",
        fmt,
        "--output",
        str(output),
        # Sample without stopping the gateway each time, so the profile
        # does not slow the soak whose memory it shares.
        "--nonblocking",
        "--nolineno",
        # Short names are ambiguous (gateway/auth/tokens.py is "tokens.py");
        # the summary shortens full paths itself.
        "--full-filenames",
    ]
    return procs.start(f"py-spy-{fmt}", command, scratch / f"py-spy-{fmt}.log")


def summarise_profile(raw: Path, top: int = 12) -> dict[str, Any]:
    """Where the samples are: by leaf function (self time), by the package
    that leaf belongs to, by package anywhere on the stack, and by gateway
    function including what it calls."""
    if not raw.exists():
        return {"error": "py-spy produced no profile (is it installed?)"}
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    under: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_shortened(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for package in {_package(frame) for frame in frames}:
            if not package.startswith("<"):  # <frozen runpy>: the entry point
                under[package] += count
        for frame in set(frames):
            if "(gateway/" in frame and not _is_entry_point(frame):
                inclusive[frame] += count
    if not total:
        return {"error": "the profile holds no samples"}

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(n / total, 4)) for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self": shares(own),
        "self_by_package": shares(packages),
        "inclusive_by_package": shares(under),
        "gateway_inclusive": shares(inclusive),
    }


def _is_entry_point(frame: str) -> bool:
    # The command's own frames sit under every sample and say nothing.
    return "(gateway/cli.py)" in frame or "(gateway/__main__.py)" in frame


def _shortened(frame: str) -> str:
    """``f (/…/site-packages/aiohttp/client.py)`` -> ``f (aiohttp/client.py)``;
    the same for the standard library and this repository."""
    name, _, where = frame.rpartition(" (")
    path = where.rstrip(")")
    for marker in ("/site-packages/", "/lib/python3.", str(_REPOSITORY) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = path.split("/", 1)[1]  # drop the minor version
            break
    return f"{name} ({path})"


def _package(frame: str) -> str:
    """``render (aiohttp/web_response.py)`` -> ``aiohttp``."""
    _, _, where = frame.rpartition("(")
    path = where.rstrip(")")
    head = path.split("/")[0]
    return head.removesuffix(".py") or frame


def median_of(runs: Sequence[Mapping[str, Any]], label: str, key: str) -> float:
    return float(statistics.median(run[label][key] for run in runs))
