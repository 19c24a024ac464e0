"""The ``gateway`` command; the only place that sets up logging."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from gateway.app import create_app
from gateway.auth.signing import KeyRing
from gateway.config import Config, ConfigError, load_config
from gateway.logs import configure_logging
from gateway.operations import create_admin_app
from gateway.sessions import StoreUnavailable, redact_url
from gateway.users import DatabaseUnavailable

log = logging.getLogger("gateway")
DEFAULT_CONFIG = Path("config.yaml")


class ListenFailed(Exception):
    """The listening socket could not be opened."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "serve":
        parser.print_help()
        return 2
    try:
        config = load_config(_config_path(args.config))
    except ConfigError as exc:
        print(f"gateway: config: {exc}", file=sys.stderr)
        return 2
    return serve(config)


def serve(config: Config) -> int:
    configure_logging(config.log.level, config.log.format)
    try:
        keys = KeyRing.load(config.jwt)
    except ConfigError as exc:
        print(f"gateway: config: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, keys))
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


async def _serve(config: Config, keys: KeyRing) -> None:
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
        await _listen(runner, config.listen.host, config.listen.port)
        if config.admin.enabled:
            admin = web.AppRunner(create_admin_app(runner.app), access_log=None)
            await admin.setup()
            cleanups.append(admin)
            await _listen(admin, config.admin.host, config.admin.port)
        log.info(
            "gateway listening",
            extra={
                "listen": f"{config.listen.host}:{config.listen.port}",
                "upstream": config.upstream.url,
                "store": redact_url(config.store.url),
                "database": config.database.path,
                "admin": f"{config.admin.host}:{config.admin.port}"
                if config.admin.enabled
                else "off",
            },
        )
        await stop.wait()
        log.info("gateway stopping")
    finally:
        for started in reversed(cleanups):
            await started.cleanup()


async def _listen(runner: web.AppRunner, host: str, port: int) -> None:
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise ListenFailed(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _config_path(given: str | None) -> Path | None:
    if given:
        return Path(given)
    from_env = os.environ.get("GATEWAY_CONFIG")
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="Session gateway in front of an upstream."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the gateway")
    serve_cmd.add_argument(
        "--config",
        metavar="PATH",
        help="YAML config file (default: $GATEWAY_CONFIG, then ./config.yaml)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
