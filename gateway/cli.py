"""The ``gateway`` command; the only place that sets up logging."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gateway import admin
from gateway.config import Config, ConfigError, load_config

DEFAULT_CONFIG = Path("config.yaml")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(_config_path(args.config))
    except ConfigError as exc:
        print(f"gateway: config: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        if args.workers is not None and args.workers < 1:
            print("gateway: --workers must be 1 or more", file=sys.stderr)
            return 2
        return serve(config, args.workers)
    # Admin commands print what they did; the server's log lines (a store
    # connected, a query failed) would only repeat it on stderr.
    logging.getLogger().addHandler(logging.NullHandler())
    return admin.run(args, config)


def serve(config: Config, workers: int | None = None) -> int:
    """Run the gateway with *workers* processes (default: listen.workers)."""
    count = resolve_workers(config, workers)
    if count > 1:
        # Must be set before prometheus_client is first imported: every
        # worker then writes its values where any worker's /metrics sums them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
            prefix="gateway-metrics-"
        )
    # Imported only now, after the metrics directory is known.
    from gateway.auth.signing import KeyRing
    from gateway.logs import configure_logging
    from gateway.server import serve as run

    configure_logging(config.log.level, config.log.format)
    try:
        keys = KeyRing.load(config.jwt)
    except ConfigError as exc:
        print(f"gateway: config: {exc}", file=sys.stderr)
        return 2
    return run(config, keys, count)


def resolve_workers(config: Config, requested: int | None) -> int:
    """How many worker processes: the flag, else listen.workers (0: one per
    core); always one with the embedded store, which cannot be shared."""
    count = requested if requested is not None else config.listen.workers
    if count <= 0:
        count = os.cpu_count() or 1
    if config.store.url.startswith("memory:"):
        return 1
    return count


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
    serve_cmd = commands.add_parser(
        "serve", help="run the gateway", parents=[config_option]
    )
    serve_cmd.add_argument(
        "--workers",
        metavar="N",
        type=int,
        help="processes sharing the port (default: listen.workers, 0 = cores)",
    )
    admin.add_commands(commands, config_option)
    return parser


if __name__ == "__main__":
    sys.exit(main())
