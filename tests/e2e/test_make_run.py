"""`make run` serves the README's walk-through, exactly as it is written."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.servers import HOST, free_port, wait_for_port

ROOT = Path(__file__).parent.parent.parent
BLOCK = re.compile(
    r"<!-- walkthrough:start -->\n```bash\n(.*?)```\n<!-- walkthrough:end -->", re.S
)


def walkthrough_script() -> str:
    match = BLOCK.search((ROOT / "README.md").read_text())
    assert match, "README.md lost its walk-through block"
    return match.group(1)


def curl_shim(directory: Path, status_log: Path) -> None:
    """A `curl` that behaves as usual and also records each HTTP status."""
    real = shutil.which("curl")
    if real is None:
        pytest.skip("curl is not installed")
    shim = directory / "curl"
    shim.write_text(
        "#!/usr/bin/env bash\n"
        'body=$(mktemp); code=$("' + real + '" -o "$body" -w "%{http_code}" "$@")\n'
        'cat "$body"; rm -f "$body"; echo "$code" >> "' + str(status_log) + '"\n'
    )
    shim.chmod(0o755)


def run_walkthrough(tmp_path: Path, store_url: str | None) -> list[str]:
    port, upstream_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {
        "GATEWAY_LISTEN_HOST": HOST,
        "GATEWAY_LISTEN_PORT": str(port),
        "GATEWAY_DATABASE_PATH": str(tmp_path / "users.db"),
        "GATEWAY_ACCOUNTS_BCRYPT_COST": "4",
        "UPSTREAM_PORT": str(upstream_port),
        "GATEWAY_ADMIN_PORT": str(free_port()),
        "DEV_SECRET_FILE": str(tmp_path / "secret"),
    }
    if store_url is not None:
        env["GATEWAY_STORE_URL"] = store_url
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, process, log)
        wait_for_port(upstream_port, process, log)
        status_log = tmp_path / "statuses"
        curl_shim(tmp_path, status_log)
        script = walkthrough_script().replace(
            "http://localhost:8080", f"http://{HOST}:{port}"
        )
        shell_env = env | {"PATH": f"{tmp_path}:{env['PATH']}"}
        subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=shell_env,
            check=True,
            timeout=60,
            capture_output=True,
        )
        assert "generated a JWT secret" in log.read_text()
        return status_log.read_text().split()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_walkthrough_on_the_embedded_store(tmp_path: Path) -> None:
    """With no store configured: 201, 200, 200, 200, 204."""
    assert run_walkthrough(tmp_path, None) == ["201", "200", "200", "200", "204"]


def test_walkthrough_on_redis(tmp_path: Path, redis_url: str) -> None:
    """With GATEWAY_STORE_URL naming a redis-server: the same five answers."""
    assert run_walkthrough(tmp_path, redis_url) == ["201", "200", "200", "200", "204"]
