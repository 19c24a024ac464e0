"""The admin command line: users, their sessions, and a check of the config.

Each command opens the same user database and session store as the server,
does one thing, and prints a table for people or JSON for scripts.  Parsing
of the ``gateway`` command itself and its logging stay in cli.py.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

from gateway.app import session_policy
from gateway.auth.access import revocation_deadline
from gateway.auth.passwords import PasswordHasher
from gateway.auth.policy import check_password, check_username, username_key
from gateway.auth.session_routes import describe_session, iso_time
from gateway.auth.signing import KeyRing
from gateway.config import Config, ConfigError
from gateway.errors import BadRequest
from gateway.sessions import SessionStore, StoreUnavailable, open_store, redact_url
from gateway.users import (
    DatabaseUnavailable,
    User,
    UserDatabase,
    UsernameTaken,
    UserSummary,
    open_user_database,
)

# Quoted: argparse's class takes no subscript at run time, only in typeshed.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, "Report"]]

MEMORY_STORE_NOTE = (
    "memory:// sessions live inside the serving gateway; "
    "none can be seen or ended from here"
)


class ConfigRejected(Exception):
    """The configuration cannot be used (exit 2, like serve)."""


class AdminError(Exception):
    """A refusal, printed as one line on stderr with exit status 1."""


@dataclass(frozen=True)
class Report:
    """What a command found or did: *data* for --json, *text* for people."""

    data: object
    text: str
    # Printed on stderr after a success, never before an error line.
    notes: tuple[str, ...] = ()


def add_commands(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """Add ``users``, ``sessions`` and ``check-config`` to the ``gateway``
    command; *common* holds the options every command takes (--config)."""
    output = argparse.ArgumentParser(add_help=False, parents=[common])
    output.add_argument(
        "--json", action="store_true", help="print JSON instead of a table"
    )

    users = commands.add_parser("users", help="list, add and manage users")
    user_actions = users.add_subparsers(dest="action", required=True)
    _command(user_actions, "list", list_users, "every user, oldest first", output)
    for name, run, summary in (
        ("create", create_user, "add a user; password from stdin or a prompt"),
        ("delete", delete_user, "remove a user and end all their sessions"),
        ("disable", disable_user, "refuse a user's logins; end all their sessions"),
        ("enable", enable_user, "let a disabled user log in again"),
    ):
        _command(user_actions, name, run, summary, output).add_argument(
            "username", metavar="USERNAME"
        )

    sessions = commands.add_parser("sessions", help="see and end a user's sessions")
    session_actions = sessions.add_subparsers(dest="action", required=True)
    listing = _command(
        session_actions, "list", list_sessions, "a user's live sessions", output
    )
    listing.add_argument("username", metavar="USERNAME")
    revoke = _command(
        session_actions, "revoke", revoke_sessions, "end one or all sessions", output
    )
    revoke.add_argument("username", metavar="USERNAME")
    revoke.add_argument(
        "session_id", metavar="SESSION_ID", nargs="?", help="default: every session"
    )

    _command(
        commands,
        "check-config",
        check_config,
        "validate the config as serve does",
        output,
    )


def run(args: argparse.Namespace, config: Config) -> int:
    """Run the command *args* names and print its report; the exit status."""
    command: Command = args.run
    try:
        report = asyncio.run(command(config, args))
    except ConfigRejected as exc:
        print(f"gateway: config: {exc}", file=sys.stderr)
        return 2
    except AdminError as exc:
        return _refuse(str(exc))
    except StoreUnavailable:
        return _refuse(
            f"cannot reach the session store at {redact_url(config.store.url)}"
        )
    except DatabaseUnavailable as exc:
        return _refuse(f"user database: {exc}")
    for note in report.notes:
        print(f"gateway: note: {note}", file=sys.stderr)
    print(json.dumps(report.data, indent=2) if args.json else report.text)
    return 0


async def list_users(config: Config, args: argparse.Namespace) -> Report:
    async with _user_database(config) as users:
        found = await users.list_users()
    rows = [
        [user.username, user.id, iso_time(user.created_at), _yes_no(user.disabled)]
        for user in found
    ]
    headings = ["USERNAME", "ID", "CREATED", "DISABLED"]
    return Report(
        [_describe_user(user) for user in found],
        _columns([headings, *rows]) if rows else "no users",
    )


async def create_user(config: Config, args: argparse.Namespace) -> Report:
    with _policy_refusal():
        key = check_username(args.username, config.accounts)
    async with _user_database(config) as users:
        # Say so before asking for a password that would be thrown away.
        if await users.find_by_name(key) is not None:
            raise _name_taken(args.username)
        password = _read_password()
        with _policy_refusal():
            check_password(password, config.accounts)

        hashed = await _hash(password, config)
        try:
            user = await users.create_user(args.username, key, hashed)
        except UsernameTaken:
            raise _name_taken(args.username) from None
    return Report(
        {"id": user.id, "username": user.username},
        f"created user {user.username} ({user.id})",
    )


async def delete_user(config: Config, args: argparse.Namespace) -> Report:
    # The store is opened first, so a store that is down leaves the user as is.
    async with _session_store(config) as store, _user_database(config) as users:
        user = await _find_user(users, args.username)
        if not await users.delete_user(user.id):
            raise _no_user(args.username)
        # Ended after the deletion, so that a login from now on finds no user.
        ended = await _end_all_sessions(config, store, user)
    return Report(
        _describe_change(user, ended, deleted=True),
        f"deleted user {user.username}; {_ended(ended)}",
        _store_notes(store),
    )


async def disable_user(config: Config, args: argparse.Namespace) -> Report:
    async with _session_store(config) as store, _user_database(config) as users:
        user = await _find_user(users, args.username)
        if not await users.set_disabled(user.id, True):
            raise _no_user(args.username)
        ended = await _end_all_sessions(config, store, user)
    return Report(
        _describe_change(user, ended, disabled=True),
        f"disabled user {user.username}; {_ended(ended)}",
        _store_notes(store),
    )


async def enable_user(config: Config, args: argparse.Namespace) -> Report:
    async with _user_database(config) as users:
        user = await _find_user(users, args.username)
        if not await users.set_disabled(user.id, False):
            raise _no_user(args.username)
    return Report(
        {"id": user.id, "username": user.username, "disabled": False},
        f"enabled user {user.username}",
    )


async def list_sessions(config: Config, args: argparse.Namespace) -> Report:
    async with _session_store(config) as store, _user_database(config) as users:
        user = await _find_user(users, args.username)
        sessions = await store.list_sessions(user.id)
    rows = [
        [
            info.session_id,
            iso_time(info.created_at_ms / 1000),
            iso_time(info.last_used_at_ms / 1000),
            _span(info.expires_in),
            info.ip,
            info.user_agent,
        ]
        for info in sessions
    ]
    headings = ["ID", "CREATED", "LAST USED", "EXPIRES IN", "IP", "USER AGENT"]
    return Report(
        [describe_session(info) for info in sessions],
        _columns([headings, *rows]) if rows else f"{user.username} has no sessions",
        _store_notes(store),
    )


async def revoke_sessions(config: Config, args: argparse.Namespace) -> Report:
    async with _session_store(config) as store, _user_database(config) as users:
        user = await _find_user(users, args.username)
        if args.session_id is None:
            ended = await store.revoke_all(user.id)
        elif await store.revoke(user.id, args.session_id):
            ended = [args.session_id]
        else:
            raise AdminError(f"{user.username} has no session {args.session_id}")
        await _announce_ended(config, store, ended)
    return Report(
        _describe_change(user, ended),
        f"{_ended(ended)} for user {user.username}",
        _store_notes(store),
    )


async def check_config(config: Config, args: argparse.Namespace) -> Report:
    """Loading the config already validated it; the signing keys are loaded
    too, as serve does, and then it is summarized.

    The JWT secret is never shown: this output ends up in terminals and logs.
    """
    try:
        KeyRing.load(config.jwt)
    except ConfigError as exc:
        raise ConfigRejected(str(exc)) from None
    prefixes = [route.prefix for route in config.routes]
    summary: dict[str, str | int] = {
        "listen": f"{config.listen.host}:{config.listen.port}",
        "upstream": redact_url(config.upstream.url),
        "routes": ", ".join(prefixes) or "none",
        "store": redact_url(config.store.url),
        "database": config.database.location,
        "access_ttl": config.jwt.access_ttl,
    }
    rows = [[key, str(value)] for key, value in summary.items()]
    return Report(
        {"ok": True} | summary | {"routes": prefixes},
        "config OK\n" + _columns(rows),
    )


def _command(
    group: Subcommands,
    name: str,
    run: Command,
    summary: str,
    output: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=summary, parents=[output])
    parser.set_defaults(run=run)
    return parser


@asynccontextmanager
async def _user_database(config: Config) -> AsyncIterator[UserDatabase]:
    users = await open_user_database(config.database)
    try:
        yield users
    finally:
        await users.close()


@asynccontextmanager
async def _session_store(config: Config) -> AsyncIterator[SessionStore]:
    policy = session_policy(config.sessions)
    store = await open_store(config.store.url, config.store.timeout, policy)
    try:
        yield store
    finally:
        await store.close()


async def _find_user(users: UserDatabase, username: str) -> User:
    user = await users.find_by_name(username_key(username))
    if user is None:
        raise _no_user(username)
    return user


async def _end_all_sessions(
    config: Config, store: SessionStore, user: User
) -> list[str]:
    ended = await store.revoke_all(user.id)
    await _announce_ended(config, store, ended)
    return ended


async def _announce_ended(
    config: Config, store: SessionStore, session_ids: Sequence[str]
) -> None:
    """Make every gateway refuse these sessions' access tokens, which would
    otherwise work until they expire."""
    until = revocation_deadline(config.jwt)
    await store.publish_revocations(session_ids, until)


async def _hash(password: str, config: Config) -> str:
    hasher = PasswordHasher(config.accounts.bcrypt_cost, workers=1)
    try:
        return await hasher.hash(password)
    finally:
        hasher.close()


def _read_password() -> str:
    """Prompted for twice on a terminal; otherwise all of stdin."""
    if not sys.stdin.isatty():
        # Without the line end that echo or a here-string adds.
        return sys.stdin.read().removesuffix("\n")
    try:
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Password again: ")
    except (EOFError, KeyboardInterrupt):
        raise AdminError("no password given") from None
    if password != again:
        raise AdminError("the passwords do not match")
    return password


@contextmanager
def _policy_refusal() -> Iterator[None]:
    """The registration policy refuses with a 400; here it is one line."""
    try:
        yield
    except BadRequest as exc:
        raise AdminError(str(exc)) from None


def _store_notes(store: SessionStore) -> tuple[str, ...]:
    # An empty listing or "0 sessions ended" would otherwise mislead.
    return (MEMORY_STORE_NOTE,) if store.kind == "memory" else ()


def _refuse(message: str) -> int:
    print(f"gateway: {message}", file=sys.stderr)
    return 1


def _no_user(username: str) -> AdminError:
    return AdminError(f"no user named {username}")


def _name_taken(username: str) -> AdminError:
    return AdminError(f"a user named {username} already exists")


def _describe_user(user: UserSummary) -> dict[str, object]:
    return {
        "id": user.id,
        "username": user.username,
        "created_at": iso_time(user.created_at),
        "disabled": user.disabled,
    }


def _describe_change(
    user: User, ended: Sequence[str], **change: bool
) -> dict[str, object]:
    return {
        "id": user.id,
        "username": user.username,
        **change,
        "ended_sessions": list(ended),
    }


def _columns(lines: Sequence[Sequence[str]]) -> str:
    """Each column as wide as its widest cell, two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in lines
    )


def _ended(session_ids: Sequence[str]) -> str:
    count = len(session_ids)
    return f"{count} session{'' if count == 1 else 's'} ended"


def _span(seconds: int) -> str:
    """A time left as people read it: the two largest units."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, rest = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {rest}s"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"
