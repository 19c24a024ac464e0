"""Prometheus metrics: what operators graph and alert on.

Every series has a small, fixed set of label values (route names, outcomes,
operations), never user input, so cardinality stays bounded.  The metrics
live in the process-wide registry that the admin listener serves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

REQUESTS = Counter(
    "gateway_requests_total",
    "Requests answered, by route and status.",
    ["route", "status"],
)
REQUEST_SECONDS = Histogram(
    "gateway_request_duration_seconds",
    "Time to answer a request, by route (proxy, or the /user/* endpoint).",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Proxied requests that failed upstream: unreachable, timeout, interrupted.",
    ["kind"],
)
LOGINS = Counter(
    "gateway_logins_total",
    "Login attempts by outcome: success, rejected, throttled.",
    ["outcome"],
)
REFRESHES = Counter(
    "gateway_refreshes_total",
    "Refresh attempts by outcome: rotated, retried, superseded, reused, unknown.",
    ["outcome"],
)
SESSIONS_CREATED = Counter("gateway_sessions_created_total", "Sessions started.")
SESSIONS_ENDED = Counter(
    "gateway_sessions_ended_total",
    "Sessions ended before expiry, by reason.",
    ["reason"],
)
STORE_SECONDS = Histogram(
    "gateway_store_duration_seconds",
    "Session store round trips, by operation.",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
STORE_ERRORS = Counter(
    "gateway_store_errors_total", "Failed store operations.", ["operation"]
)
DATABASE_SECONDS = Histogram(
    "gateway_database_duration_seconds",
    "User database queries, by operation.",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
DATABASE_ERRORS = Counter(
    "gateway_database_errors_total", "Failed database operations.", ["operation"]
)
# With several workers, gauges add up over the live ones.
HASH_JOBS = Gauge(
    "gateway_password_hash_jobs",
    "bcrypt jobs running or waiting in the pool.",
    multiprocess_mode="livesum",
)
REVOKED_SESSIONS = Gauge(
    "gateway_revoked_sessions",
    "Ended sessions whose access tokens this gateway is still refusing.",
    multiprocess_mode="livemax",
)


@contextmanager
def timed(histogram: Histogram, errors: Counter, operation: str) -> Iterator[None]:
    """Observe how long the block takes; count it as an error if it raises."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        errors.labels(operation).inc()
        raise
    finally:
        histogram.labels(operation).observe(time.perf_counter() - started)


def exposition() -> bytes:
    """Every metric in the text format: this process's, or with several
    workers, the sum over all of them."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def forget_worker(pid: int) -> None:
    """Drop a dead worker's live gauges from the sums."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
