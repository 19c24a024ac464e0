"""The gateway command: one-line refusals at start, clean exit on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests import servers


def run_gateway(
    env_overrides: dict[str, str], tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = servers.gateway_env(
        port=servers.free_port(),
        store_url="memory://",
        upstream_url="http://127.0.0.1:9",
        database_path=tmp_path / "users.db",
        extra=env_overrides,
    )
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )


def test_missing_secret_stops_with_one_line(tmp_path: Path) -> None:
    """No JWT secret: exit 2 and a single stderr line naming jwt.secret."""
    result = run_gateway({"GATEWAY_JWT_SECRET": ""}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "jwt.secret" in result.stderr


def test_bad_config_file_names_the_key(tmp_path: Path) -> None:
    """An unknown key in the file given by --config stops the process."""
    config = tmp_path / "config.yaml"
    config.write_text("listen: {port: 8080, colour: blue}\n")
    result = run_gateway({}, tmp_path, "--config", str(config))
    assert result.returncode == 2
    assert "listen.colour" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_store_stops_with_one_line(tmp_path: Path) -> None:
    """A store that does not answer at start: non-zero exit, one clear line."""
    dead = f"redis://:hunter2@127.0.0.1:{servers.free_port()}/0"
    result = run_gateway(
        {"GATEWAY_STORE_URL": dead, "GATEWAY_STORE_TIMEOUT": "1"}, tmp_path
    )
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("gateway: cannot reach the session store")
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_database_path_stops_with_one_line(tmp_path: Path) -> None:
    """A database path inside a file cannot be created: exit 1, one line."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_gateway({"GATEWAY_DATABASE_PATH": str(blocker / "users.db")}, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("gateway: user database")


async def test_console_script_serves_and_exits_zero_on_sigterm(
    tmp_path: Path,
) -> None:
    """`gateway serve` starts, answers, and exits 0 on SIGTERM."""
    binary = shutil.which("gateway", path=os.path.dirname(sys.executable))
    assert binary is not None, "pip install -e . provides the gateway script"
    port = servers.free_port()
    env = servers.gateway_env(
        port=port,
        store_url="memory://",
        upstream_url="http://127.0.0.1:9",
        database_path=tmp_path / "users.db",
    )
    process = servers.ServerProcess("gateway", [binary, "serve"], port, env=env)
    process.start()
    jwks = f"http://{servers.HOST}:{port}/.well-known/jwks.json"
    async with aiohttp.ClientSession() as http, http.get(jwks) as response:
        assert response.status == 200
        assert await response.json() == {"keys": []}
    assert process.stop(signal.SIGTERM) == 0


def test_unusable_signing_keys_stop_with_one_line(tmp_path: Path) -> None:
    """EdDSA without a key, or with an RSA key, is refused at start."""
    missing = run_gateway({"GATEWAY_JWT_ALGORITHM": "EdDSA"}, tmp_path)
    assert missing.returncode == 2
    assert "jwt.private_key_file" in missing.stderr

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa.pem"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    mismatched = run_gateway(
        {"GATEWAY_JWT_ALGORITHM": "EdDSA", "GATEWAY_JWT_PRIVATE_KEY_FILE": str(path)},
        tmp_path,
    )
    assert mismatched.returncode == 2
    assert mismatched.stderr.strip().endswith("EdDSA needs an Ed25519 key")
    assert "Traceback" not in mismatched.stderr
