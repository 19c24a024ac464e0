"""A store reached over TLS (rediss://) as an ACL user named in the URL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.client import login, new_session
from tests.conftest import GatewayFactory
from tests.servers import HOST, ServerProcess, free_port


def make_certificates(directory: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1, by openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")

    def run(*args: str) -> None:
        subprocess.run(
            ["openssl", *args], cwd=directory, check=True, capture_output=True
        )

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=gateway-test-ca",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        f"/CN={HOST}",
    )
    (directory / "san.ext").write_text(f"subjectAltName=IP:{HOST}\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        "server.crt",
        "-extfile",
        "san.ext",
    )


async def test_sessions_over_tls_with_an_acl_user(
    start_gateway: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """rediss:// with user and password in the URL and the CA in the query:
    the walk-through's login and refresh work, and the password is masked."""
    make_certificates(tmp_path)
    port = free_port()
    binary = shutil.which("redis-server")
    assert binary is not None
    server = ServerProcess(
        "redis-tls",
        [
            binary,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            HOST,
            "--tls-cert-file",
            str(tmp_path / "server.crt"),
            "--tls-key-file",
            str(tmp_path / "server.key"),
            "--tls-ca-cert-file",
            str(tmp_path / "ca.crt"),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--user",
            "default",
            "off",
            "--user",
            "gateway",
            "on",
            ">s3cret-pw",
            "~*",
            "&*",
            "+@all",
        ],
        port,
    ).start()
    try:
        url = (
            f"rediss://gateway:s3cret-pw@{HOST}:{port}/0"
            f"?ssl_ca_certs={tmp_path / 'ca.crt'}"
        )
        gateway = start_gateway(url)
        await new_session(http, gateway.url, "encrypted")
        async with await login(http, gateway.url, "encrypted") as response:
            assert response.status == 200
        assert "s3cret-pw" not in gateway.output()
    finally:
        server.stop()
