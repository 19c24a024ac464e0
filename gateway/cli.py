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

from gateway import admin
from gateway.app import create_app
from gateway.config import Config, ConfigError, load_config
from gateway.logs import configure_logging
from gateway.sessions import StoreUnavailable, redact_url
from gateway.users import DatabaseUnavailable

log = logging.getLogger("gateway")
DEFAULT_CONFIG = Path("config.yaml")


class ListenFailed(Exception):
    """The listening socket could not be opened."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(_config_path(args.config))
    except ConfigError as exc:
        print(f"gateway: config: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(config)
    # Admin commands print what they did; the server's log lines (a store
    # connected, a query failed) would only repeat it on stderr.
    logging.getLogger().addHandler(logging.NullHandler())
    return admin.run(args, config)


def serve(config: Config) -> int:
    configure_logging(config.log.level, config.log.format)
    try:
        asyncio.run(_serve(config))
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


async def _serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT; resources opened so far are always closed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    # A client that hangs up cancels its handler, and with it the upstream
    # request; SIGTERM lets requests in flight finish within the grace.
    runner = web.AppRunner(
        create_app(config),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=config.listen.shutdown_grace,
    )
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.listen.host, config.listen.port)
        try:
            await site.start()
        except OSError as exc:
            where = f"{config.listen.host}:{config.listen.port}"
            raise ListenFailed(f"cannot listen on {where}: {exc.strerror}") from exc
        log.info(
            "gateway listening",
            extra={
                "listen": f"{config.listen.host}:{config.listen.port}",
                "upstream": config.upstream.url,
                "store": redact_url(config.store.url),
                "database": config.database.path,
            },
        )
        await stop.wait()
        log.info("gateway stopping")
    finally:
        await runner.cleanup()


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
    # Every command finds and reads the config the same way.
    config_option = argparse.ArgumentParser(add_help=False)
    config_option.add_argument(
        "--config",
        metavar="PATH",
        help="YAML config file (default: $GATEWAY_CONFIG, then ./config.yaml)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gateway", parents=[config_option])
    admin.add_commands(commands, config_option)
    return parser


if __name__ == "__main__":
    sys.exit(main())
