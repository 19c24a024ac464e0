"""What operators see: health, readiness, metrics and the request log."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.client import PASSWORD, bearer, login, logout, new_session, refresh
from tests.conftest import GatewayFactory
from tests.servers import HOST, free_port, redis_server


async def scrape(http: aiohttp.ClientSession, admin: str) -> dict[str, float]:
    """Every sample of /metrics as 'name{label="v",...}' -> value."""
    async with http.get(f"{admin}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


async def test_health_and_readiness_follow_the_store(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """/healthz says alive; /readyz is 503 naming the store while it is down."""
    store = redis_server().start()
    gateway = start_gateway(f"redis://{HOST}:{store.port}/0", store_timeout="0.5")
    async with http.get(f"{gateway.admin_url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{gateway.admin_url}/readyz") as response:
        assert (response.status, await response.json()) == (200, {"status": "ready"})

    store.stop()
    async with http.get(f"{gateway.admin_url}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["failing"] == ["store"]
    async with http.get(f"{gateway.admin_url}/healthz") as response:
        assert response.status == 200
    store.start()
    # Ready again once the store answers and the revocation feed is back
    # (it retries with a backoff of up to 5 s).
    for _ in range(100):
        async with http.get(f"{gateway.admin_url}/readyz") as response:
            if response.status == 200:
                break
        await asyncio.sleep(0.1)
    assert response.status == 200
    store.stop()


async def test_admin_paths_do_not_exist_on_the_public_port(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """/metrics on the client-facing port is just another proxied path."""
    gateway = start_gateway()
    async with http.get(f"{gateway.url}/metrics") as response:
        assert response.status == 401


async def test_metrics_follow_a_scripted_flow(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Counters for logins, refreshes, sessions, requests and upstream errors
    move by exactly what the flow did."""
    gateway = start_gateway()
    pair = await new_session(http, gateway.url, "counted")
    async with await login(http, gateway.url, "counted", "wrong password") as r:
        assert r.status == 401
    async with await refresh(http, gateway.url, pair["refresh_token"]) as r:
        renewed = await r.json()
    async with await refresh(http, gateway.url, pair["refresh_token"]) as r:
        assert r.status == 401
    async with http.get(
        f"{gateway.url}/resource", headers=bearer(renewed["access_token"])
    ) as r:
        assert r.status == 200
    async with await logout(http, gateway.url, renewed["refresh_token"]) as r:
        assert r.status == 204

    samples = await scrape(http, gateway.admin_url)
    assert samples['gateway_logins_total{outcome="success"}'] == 1
    assert samples['gateway_logins_total{outcome="rejected"}'] == 1
    assert samples['gateway_refreshes_total{outcome="rotated"}'] == 1
    assert samples['gateway_refreshes_total{outcome="superseded"}'] == 1
    assert samples["gateway_sessions_created_total{}"] == 1
    assert samples['gateway_sessions_ended_total{reason="logout"}'] == 1
    assert samples['gateway_requests_total{route="proxy",status="200"}'] == 1
    assert samples['gateway_requests_total{route="/user/login",status="401"}'] == 1
    assert samples['gateway_request_duration_seconds_count{route="/user/login"}'] == 2
    # Two logins, and one more read as the successful login re-checks the
    # account once its session exists.
    assert (
        samples['gateway_database_duration_seconds_count{operation="find_by_name"}']
        == 3
    )
    assert samples["gateway_password_hash_jobs{}"] == 0
    assert samples["gateway_revoked_sessions{}"] == 1


async def test_upstream_and_store_failures_are_counted(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """An unreachable upstream and a failing store each move their counter."""
    store = redis_server().start()
    gateway = start_gateway(
        f"redis://{HOST}:{store.port}/0",
        f"http://{HOST}:{free_port()}",
        store_timeout="0.5",
    )
    pair = await new_session(http, gateway.url, "unlucky")
    async with http.get(
        f"{gateway.url}/x", headers=bearer(pair["access_token"])
    ) as response:
        assert response.status == 502
    store.stop()
    async with await login(http, gateway.url, "unlucky") as response:
        assert response.status == 503

    samples = await scrape(http, gateway.admin_url)
    assert samples['gateway_upstream_errors_total{kind="unreachable"}'] == 1
    assert samples['gateway_store_errors_total{operation="throttle"}'] >= 1
    assert samples['gateway_store_duration_seconds_count{operation="create"}'] == 1


async def test_one_structured_line_per_request_and_no_secrets(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Each request is one JSON access line with its id, and no password or
    token ever appears in the log."""
    gateway = start_gateway(log_level="info")
    pair = await new_session(http, gateway.url, "logged")
    async with http.get(
        f"{gateway.url}/resource?token=secret-in-query",
        headers=bearer(pair["access_token"]) | {"X-Request-Id": "trace-42"},
    ) as response:
        assert response.status == 200

    access: list[dict[str, object]] = []
    for _ in range(50):  # the line is written just after the answer is sent
        lines = [json.loads(line) for line in gateway.output().splitlines() if line]
        access = [line for line in lines if line["logger"] == "gateway.access"]
        if len(access) == 3:
            break
        await asyncio.sleep(0.02)
    assert [line["path"] for line in access] == [
        "/user/register",
        "/user/login",
        "/resource",
    ]
    last = access[-1]
    assert last["request_id"] == "trace-42"
    assert last["status"] == 200
    assert last["method"] == "GET"
    assert last["user_id"]
    assert isinstance(last["duration_ms"], float)
    output = gateway.output()
    for secret in (
        PASSWORD,
        pair["access_token"],
        pair["refresh_token"],
        "secret-in-query",
    ):
        assert secret not in output
