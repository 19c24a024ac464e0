"""Running the gateway: one process, or a supervisor and N workers.

Each worker is a full gateway on the same port (SO_REUSEPORT lets the kernel
spread connections); they share nothing but the store and the database,
exactly like gateways on separate hosts.  The supervisor only starts them,
restarts one that dies, and passes SIGTERM on.  Prometheus values go to a
directory all workers write, so any worker's /metrics shows the sum.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event

import uvloop
from aiohttp import web

from gateway import metrics
from gateway.app import create_app
from gateway.auth.signing import KeyRing
from gateway.config import Config
from gateway.logs import configure_logging
from gateway.operations import create_admin_app
from gateway.sessions import SessionPolicy, StoreUnavailable, open_store, redact_url
from gateway.users import DatabaseUnavailable, open_user_database

log = logging.getLogger("gateway")

STARTUP_TIMEOUT_S = 60
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
RESTART_DELAY_S = 1.0


class ListenFailed(Exception):
    """The listening socket could not be opened."""


def serve(config: Config, keys: KeyRing, workers: int) -> int:
    """Serve until SIGTERM; the exit code for the command."""
    if workers <= 1:
        return _run_worker(config, keys, None, reuse_port=False)
    # Reach the store and the database (and migrate it) once, up front, so a
    # bad address is one line from here rather than one from every worker.
    failure = _preflight(config)
    if failure is not None:
        print(f"gateway: {failure}", file=sys.stderr)
        return 1
    return _supervise(config, keys, workers)


def _preflight(config: Config) -> str | None:
    async def check() -> None:
        policy = SessionPolicy.from_seconds(1, 1)
        store = await open_store(config.store.url, config.store.timeout, policy)
        await store.close()
        database = await open_user_database(config.database)
        await database.close()

    try:
        asyncio.run(check())
    except StoreUnavailable:
        return f"cannot reach the session store at {redact_url(config.store.url)}"
    except DatabaseUnavailable as exc:
        return f"user database: {exc}"
    return None


def _run_worker(
    config: Config, keys: KeyRing, ready: Event | None, reuse_port: bool
) -> int:
    try:
        # uvloop's event loop, measured in `make bench`.
        uvloop.run(_serve(config, keys, ready, reuse_port))
    except StoreUnavailable:
        url = redact_url(config.store.url)
        print(f"gateway: cannot reach the session store at {url}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"gateway: user database: {exc}", file=sys.stderr)
        return 1
    except ListenFailed as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(
    config: Config, keys: KeyRing, ready: Event | None, reuse_port: bool
) -> None:
    """Run until SIGTERM or SIGINT; resources opened so far are always closed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    # A client that hangs up cancels its handler, and with it the upstream
    # request; SIGTERM lets requests in flight finish within the grace.
    runner = web.AppRunner(
        create_app(config, keys),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=config.listen.shutdown_grace,
    )
    cleanups = [runner]
    try:
        await runner.setup()
        await _listen(runner, config.listen.host, config.listen.port, reuse_port)
        if config.admin.enabled:
            admin = web.AppRunner(create_admin_app(runner.app), access_log=None)
            await admin.setup()
            cleanups.append(admin)
            await _listen(admin, config.admin.host, config.admin.port, reuse_port)
        _log_listening(config)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("gateway stopping")
    finally:
        for started in reversed(cleanups):
            await started.cleanup()


async def _listen(runner: web.AppRunner, host: str, port: int, reuse: bool) -> None:
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse or None).start()
    except OSError as exc:
        raise ListenFailed(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _log_listening(config: Config) -> None:
    admin = f"{config.admin.host}:{config.admin.port}"
    log.info(
        "gateway listening",
        extra={
            "listen": f"{config.listen.host}:{config.listen.port}",
            "upstream": config.upstream.url,
            "store": redact_url(config.store.url),
            "database": config.database.location,
            "admin": admin if config.admin.enabled else "off",
            "pid": os.getpid(),
        },
    )


def _supervise(config: Config, keys: KeyRing, count: int) -> int:
    """Start *count* workers, restart any that dies, stop them all on SIGTERM."""
    context = multiprocessing.get_context("fork")
    stopping = False

    def stop_all(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)

    def start() -> tuple[BaseProcess, Event]:
        ready = context.Event()
        worker = context.Process(
            target=_worker_main, args=(config, keys, ready), daemon=False
        )
        worker.start()
        return worker, ready

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    started = [start() for _ in range(count)]
    workers = [worker for worker, _ in started]
    failed = _wait_until_ready(started)
    if failed is not None:
        stop_all(signal.SIGTERM, None)
        _join(workers)
        return failed
    log.info("workers started", extra={"workers": count})

    while not stopping:
        time.sleep(0.2)
        for index, worker in enumerate(workers):
            if worker.is_alive() or stopping:
                continue
            log.error(
                "worker died; starting another",
                extra={"pid": worker.pid, "exit": worker.exitcode},
            )
            if worker.pid is not None:
                metrics.forget_worker(worker.pid)
            time.sleep(RESTART_DELAY_S)
            workers[index] = start()[0]
    return 0 if _join(workers) else 1


def _worker_main(config: Config, keys: KeyRing, ready: Event) -> None:
    # The supervisor's handlers must not run here; the worker installs its own.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # The log writer thread did not survive the fork: start this one's own.
    configure_logging(config.log.level, config.log.format)
    _die_with_parent()
    sys.exit(_run_worker(config, keys, ready, reuse_port=True))


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervisor dies, even by SIGKILL, so no
    orphaned worker keeps serving; elsewhere this does nothing."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the supervisor was gone before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _wait_until_ready(started: list[tuple[BaseProcess, Event]]) -> int | None:
    """None once every worker listens; the exit code of one that failed."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        for worker, _ in started:
            if worker.exitcode is not None:
                return worker.exitcode or 1
        if all(ready.is_set() for _, ready in started):
            return None
        time.sleep(0.05)
    print("gateway: workers did not start in time", file=sys.stderr)
    return 1


def _join(workers: list[BaseProcess]) -> bool:
    """Wait for every worker; True when all exited cleanly."""
    clean = True
    for worker in workers:
        worker.join()
        clean = clean and worker.exitcode == 0
    return clean
