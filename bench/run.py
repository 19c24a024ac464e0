"""``make bench``: every scenario in one run of a few minutes, then the
table on stdout and results.json, table.md, profile.txt, flamegraph.svg and
chart.png in bench/results/.

Everything listens on 127.0.0.1 on free ports, every load is bounded in
time, and every process started here is stopped on the way out, whether the
run ends normally, fails or is interrupted.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

from bench import identities, load, procs, proxied, report, servers, sessions
from bench.servers import Scratch

# BENCH_QUICK=1: every step, briefly, to check the harness (not for numbers);
# its results go to a folder of their own that git ignores.
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
RESULTS_DIR = Path(__file__).parent / "results" / ("quick" if QUICK else "")
SCALE = 0.2 if QUICK else 1.0


def _seconds(full: int) -> int:
    return max(1, round(full * SCALE))


REPETITIONS = 1 if QUICK else 3
# Full load: enough connections to keep every proxy busy on two cores.
LOADED = load.Load(threads=2, connections=32, seconds=_seconds(10))
# One connection, one request at a time: latency without queueing.
UNLOADED = load.Load(threads=1, connections=1, seconds=_seconds(5))
SOAK = load.Load(threads=2, connections=32, seconds=_seconds(60))
ACCESS_TOKENS = 1000
# Users with one session each; the first MULTI_USERS get MULTI_SESSIONS.
MEMBERS = int(10_000 * SCALE)
MULTI_USERS, MULTI_SESSIONS = int(500 * SCALE), 10
STORM_USERS = 1000
MEMBER_COST, STORM_COST = 4, 12
REFRESH = load.Load(threads=2, connections=16, seconds=_seconds(10))
REFRESH_SESSIONS = (
    range(0, int(4000 * SCALE)),
    range(int(4000 * SCALE), int(8000 * SCALE)),
)
REVOCATION_SESSIONS = range(int(8000 * SCALE), int(8000 * SCALE) + 20)
# The GETs measured beside a login storm, and the storm: 8 logins in flight
# keep the bcrypt pool busy, without waits past wrk's 5 s timeout.
STORM_GETS = load.Load(threads=1, connections=4, seconds=_seconds(10))
STORM = load.Load(threads=1, connections=8, seconds=_seconds(10) + 2)


def main() -> int:
    _stop_on_signals()
    quiet = _wait_for_quiet()
    scratch = Scratch(Path(tempfile.mkdtemp(prefix="gateway-bench-", dir=_tmpfs())))
    started = time.monotonic()
    try:
        results = _run(scratch)
        results["others_before_start_cores"] = quiet
        results["wall_seconds"] = round(time.monotonic() - started, 1)
        results["summary"] = report.summarise(results)
        report.write(results, RESULTS_DIR)
        _chart(results)
        print("\n" + report.table(results))
        _say(f"done in {results['wall_seconds']:.0f} s; results in {RESULTS_DIR}")
        return 0
    except Exception:
        _show_logs(scratch)
        raise
    finally:
        procs.stop_all()
        shutil.rmtree(scratch.root, ignore_errors=True)


def _run(scratch: Scratch) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    tokens = scratch.path("access-tokens.txt")
    tokens.write_text("\n".join(identities.mint_access_tokens(secret, ACCESS_TOKENS)))
    access_lua = load.script(scratch, "access")
    access_args = [str(tokens), "/resource"]
    results: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": _machine(),
        "settings": _settings(),
    }

    _say("scenarios 1-4: origin, gateway (memory://), HAProxy, nginx")
    origin = servers.nginx_origin(scratch)
    origin_url = f"http://{procs.HOST}:{origin.port}"
    gateway = servers.gateway(
        scratch,
        "gateway-memory",
        {
            "GATEWAY_STORE_URL": "memory://",
            "GATEWAY_UPSTREAM_URL": origin_url,
            "GATEWAY_JWT_SECRET": secret,
        },
    )
    haproxy = servers.haproxy(scratch, _port(origin), secret)
    nginx = servers.nginx_proxy(scratch, _port(origin))
    targets = {
        proxied.ORIGIN: proxied.Target(origin_url, origin),
        proxied.GATEWAY: proxied.Target(_url(gateway), gateway),
        proxied.HAPROXY: proxied.Target(_url(haproxy), haproxy),
        proxied.NGINX: proxied.Target(_url(nginx), nginx),
    }
    _check_auth(targets, tokens.read_text().splitlines()[0])
    loads = {"loaded": LOADED, "unloaded": UNLOADED}
    results["proxied"] = proxied.interleaved(
        targets, access_lua, access_args, loads, REPETITIONS, _say
    )

    _say("scenario 7: 60 s of full load on the gateway, py-spy in the middle")
    results["soak"] = proxied.soak(
        targets[proxied.GATEWAY],
        access_lua,
        access_args,
        SOAK,
        RESULTS_DIR,
        scratch.root,
    )
    for done in (gateway, haproxy, nginx):
        done.stop()

    results |= _session_scenarios(scratch, secret, origin_url, access_lua, tokens)
    return results


def _session_scenarios(
    scratch: Scratch, secret: str, origin_url: str, access_lua: Path, tokens: Path
) -> dict[str, Any]:
    _say("scenarios 5, 6, 8: redis-server, users, 14,500 logins")
    store = servers.redis(scratch)
    database = scratch.path("users.db")
    hashes = asyncio.run(
        identities.create_users(
            database,
            [("member", MEMBERS, MEMBER_COST), ("storm", STORM_USERS, STORM_COST)],
        )
    )
    common = {
        "GATEWAY_STORE_URL": f"redis://{procs.HOST}:{store.port}/0",
        "GATEWAY_UPSTREAM_URL": origin_url,
        "GATEWAY_JWT_SECRET": secret,
        "GATEWAY_DATABASE_PATH": str(database),
        # The login clients give their own addresses in X-Forwarded-For.
        "GATEWAY_LISTEN_TRUSTED_PROXIES": f"{procs.HOST}/32",
    }
    # Gateway A makes the sessions (cheap bcrypt: the session record does
    # not depend on the cost) and is the instance logouts are sent to.
    minting = servers.gateway(
        scratch, "gateway-a", common | {"GATEWAY_ACCOUNTS_BCRYPT_COST": "4"}
    )
    # Gateway B is configured as in production, and is what is measured.
    measured = servers.gateway(scratch, "gateway-b", common)

    members = range(1, MEMBERS + 1)
    again = [i for _ in range(MULTI_SESSIONS - 1) for i in range(1, MULTI_USERS + 1)]
    logins_started = time.monotonic()
    logged_in = asyncio.run(identities.log_in(_url(minting), "member", members))
    asyncio.run(identities.log_in(_url(minting), "member", again))
    login_seconds = time.monotonic() - logins_started
    user_ids = [session.refresh_token.split("__")[0] for session in logged_in]
    found: dict[str, Any] = {
        "setup_logins_per_s": round((len(members) + len(again)) / login_seconds, 1),
    }

    _say("scenario 6: MEMORY USAGE of the session keys")
    found["store_memory"] = sessions.session_memory(
        _port(store),
        {
            "1 session per user": user_ids[MULTI_USERS:],
            f"{MULTI_SESSIONS} sessions per user": user_ids[:MULTI_USERS],
        },
    )

    _say("scenario 5: refresh-token rotations")
    files = []
    for number, chosen in enumerate(REFRESH_SESSIONS):
        path = scratch.path(f"refresh-{number}.txt")
        path.write_text("\n".join(logged_in[i].refresh_token for i in chosen))
        files.append(path)
    found["refresh"] = sessions.refresh_rotations(
        _url(measured), measured, load.script(scratch, "refresh"), files, REFRESH
    )
    for run in found["refresh"]:
        _say(f"  {run['ok_per_s']:,.0f} rotations/s, p99 {run['p99_ms']:.2f} ms")

    _say("scenario 8: revocation from gateway A to gateway B")
    found["revocation"] = sessions.revocation_latency(
        _port(minting), _port(measured), [logged_in[i] for i in REVOCATION_SESSIONS]
    )
    minting.stop()

    _say("scenario 5: bcrypt limit and login storms")
    checkpw = identities.checkpw_seconds(hashes[STORM_COST])
    cores = sessions.cores()
    found["bcrypt"] = {
        "cost": STORM_COST,
        "checkpw_ms": round(checkpw * 1000, 2),
        "cores": cores,
        "limit_per_s": round(cores / checkpw, 2),
    }
    login_lua = load.script(scratch, "login")
    storm_args = (access_lua, [str(tokens), "/resource"])
    storms: dict[str, Any] = {}
    workers = max(1, cores - 1)
    storms[f"default hash_workers ({workers})"] = sessions.login_storm(
        _url(measured),
        measured,
        storm_args,
        login_lua,
        ("storm", STORM_USERS),
        (STORM_GETS, STORM),
    )
    measured.stop()
    every_core = servers.gateway(
        scratch, "gateway-c", common | {"GATEWAY_ACCOUNTS_HASH_WORKERS": str(cores)}
    )
    storms[f"hash_workers={cores}"] = sessions.login_storm(
        _url(every_core),
        every_core,
        storm_args,
        login_lua,
        ("storm", STORM_USERS),
        (STORM_GETS, STORM),
    )
    for name, storm in storms.items():
        # What the pool itself could do: its threads, each one check at a time.
        threads = cores if name.startswith("hash_workers") else workers
        storm["hash_workers"] = threads
        storm["pool_limit_per_s"] = round(threads / checkpw, 2)
        _say(
            f"  {name}: {storm['logins']['ok_per_s']:.2f} logins/s, p99 "
            f"{storm['idle']['p99_ms']:.2f} -> {storm['during_storm']['p99_ms']:.2f}"
        )
    found["login_storms"] = storms
    return found


def _wait_for_quiet(limit: float = 0.25, patience_s: float = 60) -> float:
    """Wait (a minute at most) for other programs to leave the cores alone.

    On a shared machine a test suite running beside the benchmark takes a
    core from it; waiting costs less than numbers nobody can trust.  The
    run goes ahead either way, and every measurement records the others'
    share, so a disturbed run shows as one.
    """
    deadline = time.monotonic() + patience_s
    while True:
        window = procs.Bystanders()
        time.sleep(3)
        others, _ = window.cores()
        if others <= limit:
            return round(others, 3)
        if time.monotonic() >= deadline:
            _say(f"other programs use {others:.2f} cores; measuring anyway")
            return round(others, 3)
        _say(f"waiting: other programs use {others:.2f} cores")


def _check_auth(targets: dict[str, proxied.Target], token: str) -> None:
    """Each proxy lets a valid token through and refuses a forged one, so
    the comparison is between proxies doing the same job."""
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for name, target in targets.items():
        good = _status(target.url, token)
        if good != 200:
            raise RuntimeError(f"{name} answered {good} to a valid token")
        if name in (proxied.GATEWAY, proxied.HAPROXY):
            bad = _status(target.url, forged)
            if bad != 401:
                raise RuntimeError(f"{name} answered {bad} to a forged token")


def _status(url: str, token: str) -> int:
    async def fetch() -> int:
        async with (
            aiohttp.ClientSession() as client,
            client.get(
                f"{url}/resource", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            await response.read()
            return response.status

    return asyncio.run(fetch())


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cores": sessions.cores(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": servers.version([servers.binary("nginx"), "-v"], r"nginx/(\S+)"),
        "haproxy": servers.version([servers.binary("haproxy"), "-v"], r"version (\S+)"),
        "wrk": servers.version([servers.binary("wrk"), "-v"], r"wrk (\S+)"),
        "redis": servers.version(
            [servers.binary("redis-server"), "--version"], r"v=(\S+)"
        ),
        "aiohttp": aiohttp.__version__,
        "commit": _commit(),
    }


def _settings() -> dict[str, Any]:
    return {
        "repetitions": REPETITIONS,
        "loaded": vars(LOADED),
        "unloaded": vars(UNLOADED),
        "soak": vars(SOAK),
        "refresh": vars(REFRESH),
        "storm": vars(STORM),
        "storm_gets": vars(STORM_GETS),
        "access_tokens": ACCESS_TOKENS,
        "gateway": "python -m gateway serve; HS256; log level info (JSON access "
        "line per request to a file); admin listener and metrics on",
    }


def _commit() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent,
    )
    return done.stdout.strip() or "unknown"


def _chart(results: dict[str, Any]) -> None:
    try:
        from bench import chart
    except ImportError:
        _say("matplotlib is missing: no chart (make bench installs it)")
        return
    chart.draw(results, RESULTS_DIR / "chart.png")


def _url(child: procs.Child) -> str:
    return f"http://{procs.HOST}:{_port(child)}"


def _port(child: procs.Child) -> int:
    if child.port is None:
        raise RuntimeError(f"{child.name} has no port")
    return child.port


def _tmpfs() -> str | None:
    # Logs and SQLite in memory: a disk's fsync latency is not what is measured.
    shm = "/dev/shm"  # noqa: S108 - mkdtemp makes a private directory in it
    return shm if os.access(shm, os.W_OK) else None


def _stop_on_signals() -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, stop)


def _show_logs(scratch: Scratch) -> None:
    for log in sorted(scratch.root.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-15:]
        print(f"--- {log.name}", *lines, sep="\n", file=sys.stderr)


def _say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
