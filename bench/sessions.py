"""The session side against a real redis-server: refresh rotations
(scenario 5), logins against the bcrypt limit and the proxy's p99 while
they run (5), store memory per session (6), and how fast a logout on one
gateway reaches another (8).
"""

from __future__ import annotations

import http.client
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from bench import load, procs
from bench.identities import PASSWORD, LoggedIn
from gateway.sessions.base import records_key, sessions_key

REVOCATION_DEADLINE_S = 3.0


def refresh_rotations(
    url: str,
    gateway: procs.Child,
    lua: Path,
    token_files: Sequence[Path],
    shape: load.Load,
) -> list[dict[str, Any]]:
    """One wrk run per file of refresh tokens; sessions are never reused
    across runs, so each starts from tokens that are current."""
    runs = []
    for tokens in token_files:
        measured = load.run(
            url, lua, shape, [str(tokens), str(shape.threads)], watch=gateway
        )
        runs.append(measured.as_dict())
    return runs


def session_memory(
    port: int, groups: dict[str, list[str]], sample_records: int = 200
) -> dict[str, Any]:
    """MEMORY USAGE of each user's two session keys, per live session.

    *groups* names sets of user ids that share a layout (one session each,
    ten each), since the per-key overhead is shared by a user's sessions.
    """
    client = redis.Redis(host=procs.HOST, port=port, decode_responses=True)
    try:
        found: dict[str, Any] = {
            name: _memory_of(client, users) for name, users in groups.items()
        }
        # The last group's first user, whose keys hold the most sessions.
        some_user = list(groups.values())[-1][0]
        sample = [str(r) for r in client.hvals(records_key(some_user))]
        found["encoding"] = {
            "sessions": client.object("encoding", sessions_key(some_user)),
            "records": client.object("encoding", records_key(some_user)),
        }
        # Past these sizes a hash or sorted set leaves the compact encoding.
        found["server_limits"] = {
            **client.config_get("hash-max-listpack-*"),
            **client.config_get("zset-max-listpack-*"),
        }
        found["record_bytes"] = statistics.mean(
            len(record.encode()) for record in sample[:sample_records]
        )
    finally:
        client.close()
    return found


def _memory_of(client: redis.Redis, users: Sequence[str]) -> dict[str, Any]:
    pipe = client.pipeline(transaction=False)
    for user in users:
        pipe.memory_usage(sessions_key(user), samples=0)
        pipe.memory_usage(records_key(user), samples=0)
        pipe.zcard(sessions_key(user))
    replies = pipe.execute()
    set_bytes = sum(int(n or 0) for n in replies[0::3])
    record_bytes = sum(int(n or 0) for n in replies[1::3])
    sessions = sum(int(n or 0) for n in replies[2::3])
    return {
        "users": len(users),
        "sessions": sessions,
        "sessions_key_bytes": set_bytes,
        "records_key_bytes": record_bytes,
        "bytes_per_session": round((set_bytes + record_bytes) / max(sessions, 1), 1),
    }


def revocation_latency(
    origin_port: int, other_port: int, sessions: Sequence[LoggedIn]
) -> dict[str, Any]:
    """Log out on one gateway, then ask the other with the session's access
    token until it says 401; the time from sending the logout to that 401."""
    origin = http.client.HTTPConnection(procs.HOST, origin_port, timeout=5)
    other = http.client.HTTPConnection(procs.HOST, other_port, timeout=5)
    times, polls = [], []
    try:
        for session in sessions:
            if _get(other, session.access_token) != 200:
                raise RuntimeError("a fresh access token was refused before logout")
            sent = time.perf_counter()
            origin.request(
                "POST",
                "/user/logout",
                headers={"Authorization": f"Bearer {session.refresh_token}"},
            )
            answer = origin.getresponse()
            answer.read()
            if answer.status != 204:
                raise RuntimeError(f"logout answered {answer.status}")
            tries = 0
            while time.perf_counter() - sent < REVOCATION_DEADLINE_S:
                tries += 1
                if _get(other, session.access_token) == 401:
                    break
            else:
                times.append(float("inf"))
                polls.append(tries)
                continue
            times.append(time.perf_counter() - sent)
            polls.append(tries)
    finally:
        origin.close()
        other.close()
    finite = [t for t in times if t != float("inf")]
    return {
        "trials": len(times),
        "not_within_deadline": len(times) - len(finite),
        "median_ms": round(statistics.median(finite) * 1000, 3) if finite else None,
        "max_ms": round(max(finite) * 1000, 3) if finite else None,
        "polls_median": statistics.median(polls) if polls else None,
    }


def _get(connection: http.client.HTTPConnection, token: str) -> int:
    connection.request("GET", "/resource", headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    response.read()
    return response.status


def login_storm(
    url: str,
    gateway: procs.Child,
    access: tuple[Path, Sequence[str]],
    login_lua: Path,
    storm_users: tuple[str, int],
    shapes: tuple[load.Load, load.Load],
) -> dict[str, Any]:
    """Logins alone, for their rate against the bcrypt limit; proxied GETs
    alone, for an idle p99; then both at once, for the p99 during a storm."""
    access_lua, access_args = access
    gets, logins = shapes
    prefix, users = storm_users
    storm_args = [str(users), prefix, PASSWORD]
    alone = load.run(url, login_lua, logins, storm_args, watch=gateway)
    idle = load.run(url, access_lua, gets, access_args, watch=gateway)

    bystanders = procs.Bystanders()
    storm = load.start(url, login_lua, logins, storm_args)
    try:
        # Let the pool fill before the GETs start, and end them before it
        # drains: the storm outlasts the measurement on both sides.
        time.sleep(1)
        during = load.run(url, access_lua, gets, access_args)
        storm_report = load.finish(storm, logins)
    finally:
        if storm.poll() is None:
            storm.kill()
            storm.wait()
    return {
        "logins": alone.as_dict(),
        "idle": idle.as_dict(),
        "during_storm": during.as_dict(),
        "logins_during_gets": load.measured(storm_report, 0.0, bystanders).as_dict(),
        "p99_ratio": round(during.p99_ms / idle.p99_ms, 2),
    }


def cores() -> int:
    return os.cpu_count() or 1
