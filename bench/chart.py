"""The run as one PNG: throughput, CPU per request, latency, and the
gateway's memory during the minute of full load.

matplotlib comes with the ``bench`` extra; the rest of the harness does not
need it, so it is imported here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a build machine

import matplotlib.pyplot as plt

from bench.proxied import TARGETS

SHORT = {
    "upstream": "upstream\nalone",
    "gateway": "gateway",
    "haproxy": "HAProxy\njwt_verify",
    "nginx": "nginx\nproxy_pass",
}


def draw(results: Mapping[str, Any], target: Path) -> None:
    runs = results["proxied"]
    names = [name for name in TARGETS if name in runs]
    rows = results["summary"]["rows"]
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    positions = list(range(len(names)))
    labels = [SHORT[name] for name in names]

    ax = axes[0][0]
    ax.bar(positions, [rows[n]["ok_per_s"] for n in names], color="#4c72b0")
    for x, name in enumerate(names):
        points = [run["loaded"]["ok_per_s"] for run in runs[name]]
        ax.plot([x] * len(points), points, "k.", markersize=5)
    ax.set_title("Throughput, authenticated GET (median, dots: repetitions)")
    ax.set_ylabel("requests/s")

    ax = axes[0][1]
    ax.bar(positions, [rows[n]["cpu_us_per_request"] for n in names], color="#dd8452")
    ax.set_title("CPU time of the process under test per request")
    ax.set_ylabel("µs per request")

    ax = axes[1][0]
    width = 0.27
    series = (
        ("loaded p50", "p50_ms", -width),
        ("loaded p99", "p99_ms", 0.0),
        ("1 connection p50", "unloaded_p50_ms", width),
    )
    for label, key, offset in series:
        values = [rows[n][key] for n in names]
        ax.bar([x + offset for x in positions], values, width, label=label)
    ax.set_yscale("log")
    ax.set_title("Latency (log scale)")
    ax.set_ylabel("ms")
    ax.legend()

    for ax in (axes[0][0], axes[0][1], axes[1][0]):
        ax.set_xticks(positions, labels)

    ax = axes[1][1]
    samples = results["soak"]["rss_samples"]
    mib = [kib / 1024 for _, kib in samples]
    ax.plot([t for t, _ in samples], mib, marker="o")
    ax.set_ylim(0, max(mib) * 1.25)
    seconds = results["settings"]["soak"]["seconds"]
    ax.set_title(f"Gateway RSS during {seconds} s of full load")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB")

    machine = results["machine"]
    figure.suptitle(
        f"Session gateway vs references, {machine['cores']} cores, "
        f"{machine['cpu']} ({results['started_at']})"
    )
    figure.tight_layout()
    figure.savefig(target, dpi=90)
    plt.close(figure)
