"""Schemathesis against a live gateway, driven by the /openapi.json it serves.

Each described operation gets requests over HTTP in four passes: its
examples, schemathesis's coverage cases (boundaries, missing fields, wrong
media types, other methods), then generated valid and invalid requests.
Each answer must be no 5xx, have a documented status, and match the
documented content type, headers and body schema; a request stripped of its
token must get 401.  Operations that need a token get a new user and login
for every case, so no case depends on what an earlier one did to its
session (logout, logout-all, password change).  Schemathesis leaves out
GET /openapi.json itself, since the schema was read from it; it is checked
in test_openapi.py.

Schemathesis's own pytest integration reads a pytest internal that pytest
9.2 removed (``Item._nodeid``), so the cases are run here with Hypothesis
and schemathesis's public strategy API instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, auths
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.client import PASSWORD
from tests.conftest import GatewayFactory

Case = schemathesis.Case[Any]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    # The same request without its token must be refused with the 401.
    ignored_auth,
    # Other methods on a described path: 405 with a matching Allow.
    unsupported_method,
    allow_header_conformance,
]
CASES = settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# The description's example id for DELETE /user/sessions/{session_id}; the
# auth hook swaps it for the case's own session, so the 204 path is reached.
EXAMPLE_SESSION_ID = "0123456789abcdef0123456789abcdef"
# The login example's user, registered before the run so that it gets 200.
EXAMPLE_USER = {"username": "joe", "password": PASSWORD}
_users = itertools.count()
BODY_LIMIT = 1024


class FreshSession:
    """A new user and login per case; the token its operation's security asks
    for (access or refresh) goes in Authorization."""

    def get(self, case: Case, ctx: schemathesis.AuthContext) -> dict[str, Any] | None:
        if _security_scheme(ctx.operation) is None:
            return None
        base = ctx.operation.schema.get_base_url().rstrip("/")
        user = {"username": f"fuzz{next(_users)}", "password": PASSWORD}
        _post(f"{base}/user/register", user)
        pair: dict[str, Any] = _post(f"{base}/user/login", user).json()
        return pair

    def set(
        self,
        case: Case,
        data: dict[str, Any],
        ctx: schemathesis.AuthContext,
    ) -> None:
        scheme = _security_scheme(ctx.operation)
        token = data["refresh_token" if scheme == "refreshToken" else "access_token"]
        case.headers["Authorization"] = f"Bearer {token}"
        if case.path_parameters.get("session_id") == EXAMPLE_SESSION_ID:
            # <user id>__<session id>.<secret>
            session_id = data["refresh_token"].split("__")[1].split(".")[0]
            case.path_parameters["session_id"] = session_id


@pytest.fixture(params=["memory", "redis"])
def description(
    request: pytest.FixtureRequest, start_gateway: GatewayFactory
) -> schemathesis.BaseSchema:
    """The description as served by a live gateway on one store backend."""
    store_url = "memory://"
    if request.param == "redis":
        store_url = str(request.getfixturevalue("redis_url"))
    # A body limit small enough for the coverage cases' longest password.
    # Every case logs in from one address: throttling (tested on its own in
    # test_throttling.py) would soon answer them all with 429.
    gateway = start_gateway(
        store_url, limits_json_body=str(BODY_LIMIT), throttle_enabled="false"
    )
    _post(f"{gateway.url}/user/register", EXAMPLE_USER)

    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    # No caching: every case logs in afresh.
    schema.auth(refresh_interval=None)(FreshSession)
    return schema


@pytest.mark.timeout(110)
def test_gateway_keeps_to_its_description(
    description: schemathesis.BaseSchema,
) -> None:
    """Every request to every operation gets an answer the description
    allows; all failures are listed, each with a curl line to replay it."""
    failures: list[str] = []
    for operation in _operations(description):
        failures += _cover(operation)
        for kind, strategy in _strategies(operation):
            failures += _fuzz(kind, strategy)
    assert not failures, "\n\n".join(failures)


def _operations(schema: schemathesis.BaseSchema) -> Iterator[Operation]:
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        yield result.ok()


def _cover(operation: Operation) -> list[str]:
    """Send each of schemathesis's coverage cases once, in a fixed order."""
    schema = operation.schema
    cases = schema.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=schema.config.generation_for(
            operation=operation, phase="coverage"
        ),
    )
    context = schemathesis.AuthContext(operation=operation, app=None)
    failures = []
    for case in cases:
        # Leaves the token out where the case is about a missing one.
        auths.set_on_case(case, context, None)
        try:
            _validate(case)
        except (AssertionError, BaseExceptionGroup) as exc:
            failures.append(_report("coverage", exc, case))
    return failures


def _fuzz(kind: str, strategy: st.SearchStrategy[Case]) -> list[str]:
    """Run generated cases of one kind; report the smallest failing one."""
    tried: list[Case] = []

    @CASES
    @given(case=strategy)
    def check(case: Case) -> None:
        tried.append(case)
        _validate(case)

    try:
        check()
    except (AssertionError, BaseExceptionGroup) as exc:
        # Hypothesis replays the smallest failing case last.
        return [_report(kind, exc, tried[-1])]
    return []


def _strategies(
    operation: Operation,
) -> Iterator[tuple[str, st.SearchStrategy[Case]]]:
    examples = operation.get_strategies_from_examples()
    if examples:
        yield "examples", st.one_of(examples)
    yield "positive", operation.as_strategy(GenerationMode.POSITIVE)
    # With no parameter and no body there is nothing to make invalid.
    if operation.body or any(True for _ in operation.iter_parameters()):
        yield "negative", operation.as_strategy(GenerationMode.NEGATIVE)


def _validate(case: Case) -> None:
    case.call_and_validate(checks=CHECKS)


def _report(kind: str, failure: AssertionError | BaseExceptionGroup, case: Case) -> str:
    """The failure, with a curl line to replay it unless it names one."""
    report = f"{case.operation.label} ({kind}): {failure}"
    return report if "curl " in report else f"{report}\n  {case.as_curl_command()}"


def _security_scheme(operation: Operation) -> str | None:
    requirements = operation.definition.raw.get("security", [])
    return next((name for req in requirements for name in req), None)


def _post(url: str, body: dict[str, str]) -> requests.Response:
    response = requests.post(url, json=body, timeout=5)
    response.raise_for_status()
    return response
