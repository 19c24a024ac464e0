"""Prometheus metrics: what operators graph and alert on.

Every series has a small, fixed set of label values (route names, outcomes,
operations), never user input, so cardinality stays bounded.  The metrics
live in the process-wide registry that the admin listener serves.

prometheus_client decides at import whether values live in memory or in the
files that several workers share, so it is imported only when a metric is
first used: by then ``gateway serve --workers`` has said which.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram


class _Deferred:
    """Stands in for a metric and creates it on first use."""

    def __init__(self, create: Callable[[], object]) -> None:
        self._create = create
        self._metric: object | None = None

    def __getattr__(self, name: str) -> Any:
        if self._metric is None:
            self._metric = self._create()
        return getattr(self._metric, name)


def _deferred(kind: str, *args: Any, **kwargs: Any) -> Any:
    def create() -> object:
        import prometheus_client

        return getattr(prometheus_client, kind)(*args, **kwargs)

    return _Deferred(create)


def _counter(*args: Any, **kwargs: Any) -> Counter:
    return cast("Counter", _deferred("Counter", *args, **kwargs))


def _histogram(*args: Any, **kwargs: Any) -> Histogram:
    return cast("Histogram", _deferred("Histogram", *args, **kwargs))


def _gauge(*args: Any, **kwargs: Any) -> Gauge:
    return cast("Gauge", _deferred("Gauge", *args, **kwargs))


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

REQUESTS = _counter(
    "gateway_requests_total",
    "Requests answered, by route and status.",
    ["route", "status"],
)
REQUEST_SECONDS = _histogram(
    "gateway_request_duration_seconds",
    "Time to answer a request, by route (proxy, or the /user/* endpoint).",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = _counter(
    "gateway_upstream_errors_total",
    "Proxied requests that failed upstream: unreachable, timeout, interrupted.",
    ["kind"],
)
LOGINS = _counter(
    "gateway_logins_total",
    "Login attempts by outcome: success, rejected, throttled.",
    ["outcome"],
)
REFRESHES = _counter(
    "gateway_refreshes_total",
    "Refresh attempts by outcome: rotated, retried, superseded, reused, unknown.",
    ["outcome"],
)
SESSIONS_CREATED = _counter("gateway_sessions_created_total", "Sessions started.")
SESSIONS_ENDED = _counter(
    "gateway_sessions_ended_total",
    "Sessions ended before expiry, by reason.",
    ["reason"],
)
STORE_SECONDS = _histogram(
    "gateway_store_duration_seconds",
    "Session store round trips, by operation.",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
STORE_ERRORS = _counter(
    "gateway_store_errors_total", "Failed store operations.", ["operation"]
)
DATABASE_SECONDS = _histogram(
    "gateway_database_duration_seconds",
    "User database queries, by operation.",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
DATABASE_ERRORS = _counter(
    "gateway_database_errors_total", "Failed database operations.", ["operation"]
)
# With several workers, gauges add up over the live ones.
HASH_JOBS = _gauge(
    "gateway_password_hash_jobs",
    "bcrypt jobs running or waiting in the pool.",
    multiprocess_mode="livesum",
)
REVOKED_SESSIONS = _gauge(
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
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def forget_worker(pid: int) -> None:
    """Drop a dead worker's live gauges from the sums."""
    from prometheus_client import multiprocess

    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
