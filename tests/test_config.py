"""Configuration loading: file, environment overrides and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from tests.servers import TEST_SECRET

SECRET = {"GATEWAY_JWT_SECRET": TEST_SECRET}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_shipped_config_loads_with_a_secret_from_the_environment() -> None:
    """The repository's config.yaml is valid once a secret is supplied."""
    config = load_config(Path(__file__).parent.parent / "config.yaml", SECRET)
    assert config.listen.port == 8080
    assert config.upstream.timeout == 30
    assert config.store.url == "redis://localhost:6380/0"
    assert config.jwt.access_ttl == 900
    assert config.sessions.absolute_ttl == 2592000


def test_environment_overrides_file_values(tmp_path: Path) -> None:
    """GATEWAY_<SECTION>_<KEY> wins over the file and is typed like the key."""
    path = write(tmp_path, "listen: {port: 1234}\nupstream: {timeout: 5}\n")
    env = SECRET | {
        "GATEWAY_LISTEN_PORT": "4321",
        "GATEWAY_UPSTREAM_TIMEOUT": "2.5",
        "GATEWAY_JWT_ACCESS_TTL": "60",
        "GATEWAY_STORE_URL": "memory://",
        "GATEWAY_CONFIG": "ignored.yaml",
    }
    config = load_config(path, env)
    assert config.listen.port == 4321
    assert config.upstream.timeout == 2.5
    assert config.jwt.access_ttl == 60
    assert config.store.url == "memory://"


@pytest.mark.parametrize(
    ("text", "env", "names"),
    [
        ("", {}, "jwt.secret"),
        ("", {"GATEWAY_JWT_SECRET": "short"}, "jwt.secret"),
        ("listen: {port: eighty}\n", SECRET, "listen.port"),
        ("listen: {port: true}\n", SECRET, "listen.port"),
        ("listen: {prot: 80}\n", SECRET, "listen.prot"),
        ("lisen: {port: 80}\n", SECRET, "lisen"),
        ("", SECRET | {"GATEWAY_LISTEN_PORT": "x"}, "listen.port"),
        ("", SECRET | {"GATEWAY_LISTEN_PROT": "80"}, "listen.prot"),
        ("", SECRET | {"GATEWAY_NOPE_KEY": "1"}, "GATEWAY_NOPE_KEY"),
        ("upstream: {url: ftp://x}\n", SECRET, "upstream.url"),
        ("store: {url: 'mongodb://x'}\n", SECRET, "store.url"),
        ("sessions: {idle_ttl: 0}\n", SECRET, "sessions.idle_ttl"),
        ("accounts: {bcrypt_cost: 3}\n", SECRET, "accounts.bcrypt_cost"),
        ("log: {level: loud}\n", SECRET, "log.level"),
        ("listen: [1, 2]\n", SECRET, "listen"),
        ("", SECRET | {"GATEWAY_STORE_URL": "redis://127.0.0.1:abc/0"}, "store.url"),
        ("", SECRET | {"GATEWAY_STORE_URL": "redis://127.0.0.1:99999"}, "store.url"),
        ("", SECRET | {"GATEWAY_STORE_URL": "redis://h:6379/db"}, "store.url"),
        ("", SECRET | {"GATEWAY_STORE_URL": "redis+cluster://a:1,b"}, "store.url"),
        ("", SECRET | {"GATEWAY_STORE_URL": "redis+sentinel://a:1"}, "store.url"),
        ("", SECRET | {"GATEWAY_STORE_URL": "redis+sentinel://a:1/s/x"}, "store.url"),
        ("", SECRET | {"GATEWAY_UPSTREAM_URL": "http://h:abc"}, "upstream.url"),
        ("", SECRET | {"GATEWAY_UPSTREAM_TIMEOUT": "nan"}, "upstream.timeout"),
        ("", SECRET | {"GATEWAY_UPSTREAM_TIMEOUT": "inf"}, "upstream.timeout"),
        ("routes: [{prefix: /user/x}]\n", SECRET, "routes[0].prefix"),
        ("routes: [{prefix: /a, upstream: 'ftp://x'}]\n", SECRET, "routes[0]"),
        ("routes: [{public: true}]\n", SECRET, "routes[0].prefix"),
        ("routes: {prefix: /a}\n", SECRET, "routes"),
        ("routes: [{prefix: /a, assertion: true}]\n", SECRET, "routes[0].assertion"),
        ("upstream: {assertion: true}\n", SECRET, "upstream.assertion"),
    ],
)
def test_bad_settings_name_the_key(
    tmp_path: Path, text: str, env: dict[str, str], names: str
) -> None:
    """Every refusal is one line that names the key at fault."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env)
    message = str(caught.value)
    assert names in message
    assert "\n" not in message


def test_unreadable_and_invalid_files_are_reported(tmp_path: Path) -> None:
    """A missing file or broken YAML is a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", SECRET)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "listen: {port: [\n"), SECRET)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://gw:hunter2@db/users", "database.url: scheme must be sqlite:///"),
        ("sqlite://users.db", "database.url: a SQLite file is written sqlite:///PATH"),
        ("sqlite:///", "database.url: a SQLite file is written sqlite:///PATH"),
        ("./users.db", "database.url: scheme must be"),
        ("postgresql://gw:hunter2@db:5x/users", "database.url: the port must be"),
    ],
)
def test_bad_database_url_names_the_key_not_the_password(
    url: str, message: str
) -> None:
    """A database.url that names no backend is one line, without the URL."""
    with pytest.raises(ConfigError) as caught:
        load_config(None, SECRET | {"GATEWAY_DATABASE_URL": url})
    assert str(caught.value).startswith(message)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "postgres", "sqlite_path", "location"),
    [
        ("", False, "/srv/users.db", "/srv/users.db"),
        ("sqlite:///data/users.db", False, "data/users.db", "data/users.db"),
        ("sqlite:////var/lib/gw/users.db", False, "/var/lib/gw/users.db", None),
        (
            "postgresql://gw:hunter2@db:5432/users",
            True,
            "/srv/users.db",
            "postgresql://gw:***@db:5432/users",
        ),
        ("postgres://db/users", True, "/srv/users.db", "postgres://db/users"),
    ],
)
def test_database_url_chooses_the_backend(
    url: str, postgres: bool, sqlite_path: str, location: str | None
) -> None:
    """An empty url keeps database.path (and GATEWAY_DATABASE_PATH); sqlite:///
    names a file, relative after three slashes and absolute after four;
    postgresql:// and postgres:// name a server, shown without its password."""
    env = SECRET | {"GATEWAY_DATABASE_PATH": "/srv/users.db"}
    database = load_config(None, env | {"GATEWAY_DATABASE_URL": url}).database
    assert database.is_postgres is postgres
    assert database.sqlite_path == sqlite_path
    assert database.location == (location or sqlite_path)


def test_database_pool_size_is_a_positive_integer() -> None:
    """database.pool_size defaults to 10 and is checked like any other key."""
    assert load_config(None, SECRET).database.pool_size == 10
    env = SECRET | {"GATEWAY_DATABASE_POOL_SIZE": "3"}
    assert load_config(None, env).database.pool_size == 3
    for size in ("0", "many"):
        with pytest.raises(ConfigError, match=r"^database\.pool_size: "):
            load_config(None, SECRET | {"GATEWAY_DATABASE_POOL_SIZE": size})
