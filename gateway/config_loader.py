"""Reading the configuration: the YAML file, GATEWAY_* overrides, and the
checks that stop a bad value at start with one line naming its key.

The shape of the configuration (its sections, keys and defaults) lives in
:mod:`gateway.config`; this module only fills and checks it.
"""

from __future__ import annotations

import ipaddress
import math
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.config import (
    ENV_PREFIX,
    ENV_RESERVED,
    JWT_ALGORITHMS,
    MIN_HS256_SECRET_BYTES,
    POSTGRES_SCHEMES,
    SQLITE_PREFIX,
    STORE_SCHEMES,
    STRINGS,
    AccountsConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    JwtConfig,
    LogConfig,
    RouteConfig,
    StoreConfig,
    UpstreamConfig,
    url_scheme,
)


def load(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the file at *path* (if any), apply overrides and validate."""
    env = os.environ if environ is None else environ
    raw = _read_file(Path(path)) if path is not None else {}
    raw_routes = raw.pop("routes", None) or []
    sections = _sections_from_file(raw)
    _apply_environment(sections, env)
    built = {
        name: _build_section(name, section_type, sections.get(name, {}))
        for name, section_type in _section_types().items()
    }
    config = Config(**built, routes=_build_routes(raw_routes, built["upstream"]))
    _validate(config)
    return config


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def _sections_from_file(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    known = _section_types()
    sections: dict[str, dict[str, Any]] = {}
    for name, values in raw.items():
        if name not in known:
            raise ConfigError(f"{name}: unknown section")
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: must be a mapping of keys")
        keys = _key_types(known[name])
        for key in values:
            if key not in keys:
                raise ConfigError(f"{name}.{key}: unknown key")
        sections[name] = dict(values)
    return sections


def _apply_environment(
    sections: dict[str, dict[str, Any]], env: Mapping[str, str]
) -> None:
    known = _section_types()
    for var, text in env.items():
        if not var.startswith(ENV_PREFIX) or var in ENV_RESERVED:
            continue
        section, key = _split_env_name(var, known)
        key_type = _key_types(known[section])[key]
        value = _parse_env_value(f"{section}.{key}", var, text, key_type)
        sections.setdefault(section, {})[key] = value


def _split_env_name(var: str, known: dict[str, type[Any]]) -> tuple[str, str]:
    rest = var[len(ENV_PREFIX) :].lower()
    for section, section_type in known.items():
        if rest.startswith(section + "_"):
            key = rest[len(section) + 1 :]
            if key in _key_types(section_type):
                return section, key
            raise ConfigError(f"{section}.{key}: unknown key (from {var})")
    raise ConfigError(f"{var}: names no configuration section")


def _parse_env_value(name: str, var: str, text: str, key_type: Any) -> Any:
    if key_type is str:
        return text
    if key_type == STRINGS:
        return tuple(item.strip() for item in text.split(",") if item.strip())
    if key_type is bool:
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}: expected true or false in {var}")
    try:
        return key_type(text)
    except ValueError:
        raise ConfigError(
            f"{name}: expected {key_type.__name__} in {var}, got {text!r}"
        ) from None


def _build_section(name: str, section_type: type[Any], values: dict[str, Any]) -> Any:
    types = _key_types(section_type)
    checked = {
        key: _check_type(f"{name}.{key}", value, types[key])
        for key, value in values.items()
    }
    return section_type(**checked)


def _check_type(name: str, value: Any, key_type: Any) -> Any:
    value = _checked_type(name, value, key_type)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number")
    return value


def _checked_type(name: str, value: Any, key_type: Any) -> Any:
    if key_type == STRINGS:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{name}: must be a list of strings")
    # bool is a subclass of int: reject it where a number is expected.
    if key_type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, key_type) and not (
        key_type is not bool and isinstance(value, bool)
    ):
        return value
    expected = {str: "a string", int: "an integer", float: "a number"}
    wanted = expected.get(key_type, "true or false")
    raise ConfigError(f"{name}: must be {wanted}, got {type(value).__name__}")


def _build_routes(raw: Any, upstream: UpstreamConfig) -> tuple[RouteConfig, ...]:
    """Routes from the file; keys a route leaves out come from ``upstream``."""
    if not isinstance(raw, list):
        raise ConfigError("routes: must be a list of routes")
    types = _key_types(RouteConfig)
    routes = []
    for index, entry in enumerate(raw):
        name = f"routes[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{name}: must be a mapping")
        for key in entry:
            if key not in types:
                raise ConfigError(f"{name}.{key}: unknown key")
        if "prefix" not in entry:
            raise ConfigError(f"{name}.prefix: required")
        values = {
            "upstream": upstream.url,
            "timeout": upstream.timeout,
            "connect_timeout": upstream.connect_timeout,
            "max_body": upstream.max_body,
            "forward_authorization": upstream.forward_authorization,
            "assertion": upstream.assertion,
            "assertion_audience": "",
        } | entry
        checked = {
            key: _check_type(f"{name}.{key}", value, types[key])
            for key, value in values.items()
        }
        routes.append(RouteConfig(**checked))
    return tuple(routes)


def _validate_routes(routes: tuple[RouteConfig, ...]) -> None:
    seen = set()
    for index, route in enumerate(routes):
        name = f"routes[{index}]"
        if not route.prefix.startswith("/") or route.prefix.startswith("/user"):
            raise ConfigError(
                f"{name}.prefix: must start with / and not be under /user"
            )
        if route.prefix in seen:
            raise ConfigError(f"{name}.prefix: {route.prefix} appears twice")
        seen.add(route.prefix)
        _validate_url(f"{name}.upstream", route.upstream)
        _require_positive(f"{name}.timeout", route.timeout)
        _require_positive(f"{name}.connect_timeout", route.connect_timeout)
        if route.max_body < 0:
            raise ConfigError(f"{name}.max_body: must be 0 (no limit) or more")


def _validate_assertions(config: Config) -> None:
    wanted = [("upstream.assertion", config.upstream.assertion)] + [
        (f"routes[{i}].assertion", route.assertion)
        for i, route in enumerate(config.routes)
    ]
    for name, enabled in wanted:
        if enabled and config.jwt.algorithm == "HS256":
            raise ConfigError(
                f"{name}: needs jwt.algorithm EdDSA or RS256, so that upstreams "
                "verify with the public key instead of holding the secret"
            )


def _validate(config: Config) -> None:
    _require_port("listen.port", config.listen.port)
    for proxy in config.listen.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"listen.trusted_proxies: {proxy!r} is not an address or range"
            ) from None
    _require_port("admin.port", config.admin.port)
    _validate_upstream(config.upstream)
    _validate_routes(config.routes)
    _validate_assertions(config)
    _require_positive("listen.shutdown_grace", config.listen.shutdown_grace)
    if config.listen.workers < 0:
        raise ConfigError("listen.workers: must be 0 (one per core) or more")
    _validate_store(config.store)
    _validate_database(config.database)
    _validate_jwt(config.jwt)
    _require_positive("sessions.idle_ttl", config.sessions.idle_ttl)
    _require_positive("sessions.absolute_ttl", config.sessions.absolute_ttl)
    if config.sessions.reuse_grace < 0:
        raise ConfigError("sessions.reuse_grace: must be 0 or more")
    if config.sessions.max_per_user < 0:
        raise ConfigError("sessions.max_per_user: must be 0 (no cap) or more")
    _validate_accounts(config.accounts)
    _require_positive("limits.json_body", config.limits.json_body)
    for key in ("login_attempts", "login_refill", "address_attempts", "address_refill"):
        _require_positive(f"throttle.{key}", getattr(config.throttle, key))
    _validate_log(config.log)


def _validate_upstream(upstream: UpstreamConfig) -> None:
    _validate_url("upstream.url", upstream.url)
    _require_positive("upstream.timeout", upstream.timeout)
    _require_positive("upstream.connect_timeout", upstream.connect_timeout)
    if upstream.max_body < 0:
        raise ConfigError("upstream.max_body: must be 0 (no limit) or more")


def _validate_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{name}: must be an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name}: must not have a query or fragment")
    _require_valid_port(name, url)


def _require_valid_port(name: str, url: str) -> None:
    message = f"{name}: the port must be a number from 1 to 65535"
    try:
        port = urlsplit(url).port  # raises ValueError for a bad port
    except ValueError:
        raise ConfigError(message) from None
    if port == 0:
        raise ConfigError(message)


def _validate_store(store: StoreConfig) -> None:
    parts = urlsplit(store.url)
    if parts.scheme not in STORE_SCHEMES:
        allowed = ", ".join(f"{s}://" for s in sorted(STORE_SCHEMES))
        raise ConfigError(f"store.url: scheme must be one of {allowed}")
    if parts.scheme.endswith("+cluster"):
        _validate_cluster_nodes(store.url)
    elif parts.scheme.endswith("+sentinel"):
        _validate_cluster_nodes(store.url)
        service, _, database = (
            store.url.split("://", 1)[1].partition("/")[2].partition("/")
        )
        if not service:
            raise ConfigError("store.url: a sentinel URL ends in /<service name>")
        if database and not database.isdigit():
            raise ConfigError(
                "store.url: the database after the service must be a number"
            )
    elif parts.scheme in {"redis", "rediss"}:
        _require_valid_port("store.url", store.url)
        database = parts.path.lstrip("/")
        if database and not database.isdigit():
            raise ConfigError("store.url: the database after / must be a number")
    _require_positive("store.timeout", store.timeout)


def _validate_cluster_nodes(url: str) -> None:
    netloc = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    for entry in netloc.split(","):
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(
                "store.url: a cluster URL lists host:port,host:port,... "
                f"(got {entry.strip()!r})"
            )


def _validate_database(database: DatabaseConfig) -> None:
    _require_positive("database.busy_timeout", database.busy_timeout)
    _require_positive("database.pool_size", database.pool_size)
    # The messages never quote the URL: it may hold a password.
    scheme = url_scheme(database.url)
    if scheme in POSTGRES_SCHEMES:
        _require_valid_port("database.url", database.url)
    elif scheme == "sqlite":
        if not database.url.startswith(SQLITE_PREFIX) or not database.sqlite_path:
            raise ConfigError("database.url: a SQLite file is written sqlite:///PATH")
    elif database.url:
        raise ConfigError(
            "database.url: scheme must be sqlite:///, postgresql:// or postgres://"
        )
    elif not database.path:
        raise ConfigError("database.path: must not be empty")


def _validate_jwt(jwt: JwtConfig) -> None:
    if jwt.algorithm not in JWT_ALGORITHMS:
        raise ConfigError(f"jwt.algorithm: must be one of {', '.join(JWT_ALGORITHMS)}")
    if jwt.algorithm == "HS256":
        _validate_secret(jwt.secret)
    elif not (jwt.private_key or jwt.private_key_file):
        raise ConfigError(
            f"jwt.private_key_file: required for {jwt.algorithm} (or set "
            "GATEWAY_JWT_PRIVATE_KEY)"
        )
    elif jwt.secret:
        _validate_secret(jwt.secret)
    _require_positive("jwt.access_ttl", jwt.access_ttl)
    _require_positive("jwt.max_token_bytes", jwt.max_token_bytes)
    if jwt.leeway < 0:
        raise ConfigError("jwt.leeway: must be 0 or more")


def _validate_secret(secret: str) -> None:
    if not secret:
        raise ConfigError(
            "jwt.secret: required; set it in the file or in GATEWAY_JWT_SECRET"
        )
    if len(secret.encode("utf-8")) < MIN_HS256_SECRET_BYTES:
        raise ConfigError(
            f"jwt.secret: must be at least {MIN_HS256_SECRET_BYTES} bytes for HS256"
        )


def _validate_accounts(accounts: AccountsConfig) -> None:
    if any(
        ch.isspace() or not ch.isprintable() for ch in accounts.username_punctuation
    ):
        raise ConfigError(
            "accounts.username_punctuation: printable characters only, no spaces"
        )
    _require_positive("accounts.username_min", accounts.username_min)
    if accounts.username_max < accounts.username_min:
        raise ConfigError("accounts.username_max: must be at least username_min")
    _require_positive("accounts.password_min", accounts.password_min)
    if accounts.password_max < accounts.password_min:
        raise ConfigError("accounts.password_max: must be at least password_min")
    if not 4 <= accounts.bcrypt_cost <= 31:
        raise ConfigError("accounts.bcrypt_cost: must be between 4 and 31")
    if accounts.hash_workers < 0:
        raise ConfigError("accounts.hash_workers: must be 0 (automatic) or more")
    _require_positive("accounts.hash_queue", accounts.hash_queue)


def _validate_log(log: LogConfig) -> None:
    if log.level.lower() not in {"debug", "info", "warning", "error"}:
        raise ConfigError("log.level: must be debug, info, warning or error")
    if log.format not in {"json", "text"}:
        raise ConfigError("log.format: must be json or text")


def _require_port(name: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}: must be between 1 and 65535")


def _require_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name}: must be greater than 0")


def _section_types() -> dict[str, Any]:
    """The mapping sections; ``routes`` is a list and is read on its own."""
    hints = typing.get_type_hints(Config)
    return {name: hint for name, hint in hints.items() if name != "routes"}


def _key_types(section_type: Any) -> dict[str, Any]:
    return typing.get_type_hints(section_type)
