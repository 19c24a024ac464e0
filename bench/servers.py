"""The servers of a run: nginx (origin and proxy), HAProxy, redis-server and
gateway processes, each on a free loopback port.

Configuration files are rendered from ``bench/conf`` into the run's scratch
directory; the gateway is configured the way an operator would, through
``GATEWAY_*`` variables, and started as ``python -m gateway serve``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import procs

CONF_DIR = Path(__file__).parent / "conf"
_FIELD = re.compile(r"{{(\w+)}}")


@dataclass(frozen=True)
class Scratch:
    """Where one run keeps its configs, logs and databases."""

    root: Path

    def path(self, name: str) -> Path:
        return self.root / name


def render(template: str, target: Path, values: Mapping[str, object]) -> Path:
    """Fill the ``{{name}}`` fields of a template from bench/conf."""
    text = (CONF_DIR / template).read_text()

    def field(match: re.Match[str]) -> str:
        return str(values[match[1]])

    target.write_text(_FIELD.sub(field, text))
    return target


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError(f"{name} is not installed (make bench installs it)")
    return found


def version(command: list[str], pattern: str) -> str:
    """A tool's version, as its own --version style output says it."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = re.search(pattern, done.stdout + done.stderr)
    return found[1] if found else "unknown"


def nginx_origin(scratch: Scratch) -> procs.Child:
    port = procs.free_port()
    conf = render(
        "nginx-upstream.conf",
        scratch.path("nginx-upstream.conf"),
        {"dir": scratch.root, "host": procs.HOST, "port": port},
    )
    return procs.start(
        "nginx-origin",
        [binary("nginx"), "-p", str(scratch.root), "-c", str(conf)],
        scratch.path("nginx-upstream.out"),
        port=port,
    )


def nginx_proxy(scratch: Scratch, upstream_port: int) -> procs.Child:
    port = procs.free_port()
    values = {
        "dir": scratch.root,
        "host": procs.HOST,
        "port": port,
        "upstream_port": upstream_port,
    }
    conf = render("nginx-proxy.conf", scratch.path("nginx-proxy.conf"), values)
    return procs.start(
        "nginx-proxy",
        [binary("nginx"), "-p", str(scratch.root), "-c", str(conf)],
        scratch.path("nginx-proxy.out"),
        port=port,
    )


def haproxy(scratch: Scratch, upstream_port: int, secret: str) -> procs.Child:
    port = procs.free_port()
    values = {
        "host": procs.HOST,
        "port": port,
        "upstream_port": upstream_port,
        "secret": secret,
    }
    conf = render("haproxy.cfg", scratch.path("haproxy.cfg"), values)
    command = [binary("haproxy"), "-f", str(conf)]
    check = subprocess.run(
        [*command, "-c"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise RuntimeError(f"haproxy refused its config:\n{check.stdout}")
    # -db: stay in the foreground, so the process we watch is the one working.
    return procs.start(
        "haproxy", [*command, "-db"], scratch.path("haproxy.log"), port=port
    )


def redis(scratch: Scratch) -> procs.Child:
    port = procs.free_port()
    command = [
        binary("redis-server"),
        "--port",
        str(port),
        "--bind",
        procs.HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(scratch.root),
    ]
    return procs.start("redis", command, scratch.path("redis.log"), port=port)


def gateway(
    scratch: Scratch,
    name: str,
    settings: Mapping[str, str],
) -> procs.Child:
    """A gateway process configured by GATEWAY_* variables only.

    It runs in the scratch directory, so the repository's config.yaml (whose
    store is a Dragonfly on :6380) is not picked up by accident.
    """
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_LISTEN_HOST": procs.HOST,
            "GATEWAY_LISTEN_PORT": str(port),
            "GATEWAY_ADMIN_PORT": str(procs.free_port()),
            "GATEWAY_DATABASE_PATH": str(scratch.path(f"{name}-users.db")),
            "GATEWAY_LOG_LEVEL": "info",
        }
    )
    env.update(settings)
    return procs.start(
        name,
        [sys.executable, "-m", "gateway", "serve"],
        scratch.path(f"{name}.log"),
        port=port,
        env=env,
        cwd=scratch.root,
    )
