"""Turning a run's raw results into verdicts, a Markdown table, JSON and a
chart under bench/results/.

Ratios between targets are taken within each repetition and then the
median across repetitions, so that a slow patch of the machine lowers both
sides of a ratio rather than one.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.proxied import GATEWAY, HAPROXY, NGINX, ORIGIN, TARGETS

LABELS = {
    ORIGIN: "upstream alone (nginx, static body)",
    GATEWAY: "gateway (JWT, logs, metrics)",
    HAPROXY: "HAProxy jwt_verify",
    NGINX: "nginx proxy_pass (no auth)",
}


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Medians and ratios of the proxied runs, and a verdict per target."""
    runs: dict[str, list[dict[str, Any]]] = results["proxied"]
    rows = {name: _row(runs, name) for name in TARGETS if name in runs}
    summary: dict[str, Any] = {
        "rows": rows,
        "verdicts": _verdicts(results, runs),
        "others_cores": _disturbance(results),
    }
    return summary


def _disturbance(results: Mapping[str, Any]) -> dict[str, float]:
    """Cores that other programs took during the measured runs."""
    seen = [
        run[label]["others_cores"]
        for runs in results["proxied"].values()
        for run in runs
        for label in run
    ]
    seen += [run["others_cores"] for run in results["refresh"]]
    seen.append(results["soak"]["load"]["others_cores"])
    for storm in results["login_storms"].values():
        seen += [storm[key]["others_cores"] for key in ("idle", "during_storm")]
    return {
        "median": round(statistics.median(seen), 3),
        "max": round(max(seen), 3),
    }


def _row(runs: Mapping[str, list[dict[str, Any]]], name: str) -> dict[str, Any]:
    mine = runs[name]
    row: dict[str, Any] = {
        key: _median(mine, "loaded", key)
        for key in ("ok_per_s", "p50_ms", "p99_ms", "cpu_us_per_request")
    }
    row["unloaded_p50_ms"] = _median(mine, "unloaded", "p50_ms")
    row["unloaded_p99_ms"] = _median(mine, "unloaded", "p99_ms")
    row["errors"] = sum(r[label]["errors"] for r in mine for label in r)
    for other in (HAPROXY, NGINX, ORIGIN):
        if other in runs:
            row[f"x_{other}"] = _ratio(mine, runs[other], "ok_per_s")
    if HAPROXY in runs:
        # Requests per CPU-second relative to HAProxy's: the inverse ratio of
        # CPU time per request, i.e. throughput per core used.
        row["per_core_x_haproxy"] = _ratio(runs[HAPROXY], mine, "cpu_us_per_request")
    if ORIGIN in runs:
        row["added_p50_ms"] = _difference(mine, runs[ORIGIN], "unloaded", "p50_ms")
    return row


def _median(runs: Sequence[Mapping[str, Any]], label: str, key: str) -> float:
    return float(statistics.median(run[label][key] for run in runs))


def _ratio(
    mine: Sequence[Mapping[str, Any]], other: Sequence[Mapping[str, Any]], key: str
) -> float:
    pairs = zip(mine, other, strict=True)
    return float(
        statistics.median(a["loaded"][key] / b["loaded"][key] for a, b in pairs)
    )


def _difference(
    mine: Sequence[Mapping[str, Any]],
    other: Sequence[Mapping[str, Any]],
    label: str,
    key: str,
) -> float:
    pairs = zip(mine, other, strict=True)
    return float(statistics.median(a[label][key] - b[label][key] for a, b in pairs))


def _verdicts(
    results: Mapping[str, Any], runs: Mapping[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    gateway = _row(runs, GATEWAY)
    per_core = gateway.get("per_core_x_haproxy", 0.0)
    added = gateway.get("added_p50_ms", float("inf"))
    verdicts = [
        _verdict(
            "proxied throughput per core >= 0.15x HAProxy jwt_verify",
            per_core >= 0.15,
            f"{per_core:.2f}x per core (raw throughput "
            f"{gateway.get('x_haproxy', 0.0):.2f}x)",
        ),
        _verdict(
            "unloaded added p50 <= 0.25 ms over the upstream alone",
            added <= 0.25,
            f"+{added:.3f} ms",
        ),
    ]
    limit = results["bcrypt"]["limit_per_s"]
    for name, storm in results["login_storms"].items():
        logins = storm["logins"]["ok_per_s"]
        verdicts.append(
            _verdict(
                f"logins >= 90 % of the bcrypt limit ({name})",
                logins >= 0.9 * limit,
                f"{logins:.2f}/s = {logins / limit:.0%} of {limit:.2f}/s "
                f"({logins / storm['pool_limit_per_s']:.0%} of what "
                f"{storm['hash_workers']} hashing thread(s) allow)",
            )
        )
        verdicts.append(
            _verdict(
                f"proxied p99 during the login storm <= 2x idle ({name})",
                storm["p99_ratio"] <= 2,
                f"{storm['during_storm']['p99_ms']:.2f} ms vs "
                f"{storm['idle']['p99_ms']:.2f} ms = {storm['p99_ratio']:.2f}x",
            )
        )
    refresh = statistics.median(run["ok_per_s"] for run in results["refresh"])
    verdicts.append(
        _verdict(
            ">= 3,000 refresh rotations/s per worker",
            refresh >= 3000,
            f"{refresh:,.0f}/s (one worker)",
        )
    )
    for layout, memory in results["store_memory"].items():
        if isinstance(memory, dict) and "bytes_per_session" in memory:
            per = memory["bytes_per_session"]
            verdicts.append(
                _verdict(
                    f"<= 200 bytes of store memory per session ({layout})",
                    per <= 200,
                    f"{per:.0f} bytes",
                )
            )
    growth = results["soak"]["rss_growth"]
    verdicts.append(
        _verdict(
            "gateway RSS flat (within 10 %) after 60 s of full load",
            abs(growth) <= 0.10,
            f"{results['soak']['rss_before_kib'] / 1024:.1f} MiB -> "
            f"{results['soak']['rss_after_kib'] / 1024:.1f} MiB ({growth:+.1%})",
        )
    )
    revocation = results["revocation"]
    worst = revocation["max_ms"]
    verdicts.append(
        _verdict(
            "revocation reaches another instance in < 1 s",
            worst is not None
            and worst < 1000
            and revocation["not_within_deadline"] == 0,
            f"median {revocation['median_ms']} ms, worst {worst} ms "
            f"over {revocation['trials']} logouts",
        )
    )
    return verdicts


def _verdict(target: str, met: bool, measured: str) -> dict[str, Any]:
    return {"target": target, "met": bool(met), "measured": measured}


def table(results: Mapping[str, Any]) -> str:
    """The proxied comparison, the session numbers and the verdicts."""
    summary = results["summary"]
    lines = [
        "| target | req/s | p50 ms | p99 ms | CPU µs/req | × HAProxy | "
        "× nginx | × upstream | per core × HAProxy | unloaded p50 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in summary["rows"].items():
        lines.append(
            f"| {LABELS[name]} | {row['ok_per_s']:,.0f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['cpu_us_per_request']:.0f} | "
            f"{row.get('x_haproxy', 0):.2f} | {row.get('x_nginx', 0):.2f} | "
            f"{row.get('x_upstream', 0):.2f} | "
            f"{row.get('per_core_x_haproxy', 0):.2f} | "
            f"{row['unloaded_p50_ms']:.3f} |"
        )
    others = summary["others_cores"]
    lines += [
        "",
        f"Other programs on the machine took {others['median']:.2f} cores "
        f"(median over the measured runs; at most {others['max']:.2f}).",
        "",
        *_session_lines(results),
        "",
        "| target | met | measured |",
    ]
    lines.append("| --- | --- | --- |")
    for verdict in summary["verdicts"]:
        met = "yes" if verdict["met"] else "**no**"
        lines.append(f"| {verdict['target']} | {met} | {verdict['measured']} |")
    return "\n".join(lines)


def _session_lines(results: Mapping[str, Any]) -> list[str]:
    bcrypt = results["bcrypt"]
    lines = [
        "| session scenario | result |",
        "| --- | --- |",
    ]
    for run in results["refresh"]:
        lines.append(
            f"| refresh rotations (redis-server, {run['requests']:,} requests) | "
            f"{run['ok_per_s']:,.0f}/s, p50 {run['p50_ms']:.2f} ms, "
            f"p99 {run['p99_ms']:.2f} ms, {run['cpu_us_per_request']:.0f} µs CPU "
            "each |"
        )
    lines.append(
        f"| bcrypt checkpw at cost {bcrypt['cost']} | "
        f"{bcrypt['checkpw_ms']:.1f} ms; limit {bcrypt['cores']} cores ÷ that = "
        f"{bcrypt['limit_per_s']:.2f} logins/s |"
    )
    for name, storm in results["login_storms"].items():
        logins = storm["logins"]
        lines.append(
            f"| login storm, {name} | {logins['ok_per_s']:.2f} logins/s "
            f"({logins['status_errors']} refused); proxied p99 "
            f"{storm['idle']['p99_ms']:.2f} ms idle -> "
            f"{storm['during_storm']['p99_ms']:.2f} ms during |"
        )
    for layout, memory in results["store_memory"].items():
        if isinstance(memory, dict) and "bytes_per_session" in memory:
            lines.append(
                f"| store memory, {layout} ({memory['sessions']:,} sessions) | "
                f"{memory['bytes_per_session']:.0f} bytes/session |"
            )
    soak = results["soak"]
    lines.append(
        f"| 60 s full load on the gateway | {soak['load']['ok_per_s']:,.0f} req/s; "
        f"RSS {soak['rss_before_kib'] / 1024:.1f} -> "
        f"{soak['rss_after_kib'] / 1024:.1f} MiB |"
    )
    revocation = results["revocation"]
    lines.append(
        f"| revocation A -> B ({revocation['trials']} logouts) | median "
        f"{revocation['median_ms']} ms, worst {revocation['max_ms']} ms |"
    )
    return lines


def write(results: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (directory / "table.md").write_text(table(results) + "\n")
    (directory / "profile.txt").write_text(profile_text(results["soak"]["profile"]))


def profile_text(profile: Mapping[str, Any]) -> str:
    if "error" in profile:
        return f"{profile['error']}\n"
    lines = [f"py-spy, {profile['samples']} samples of the gateway under full load"]
    for title, key in (
        ("self time by function", "self"),
        ("self time by package", "self_by_package"),
        ("samples with the package anywhere on the stack", "inclusive_by_package"),
        ("gateway functions including what they call", "gateway_inclusive"),
    ):
        lines += ["", title]
        lines += [f"  {share:6.1%}  {name}" for name, share in profile[key]]
    return "\n".join(lines) + "\n"
