"""The user database."""

from gateway.users.db import (
    DatabaseUnavailable,
    User,
    UserDatabase,
    UsernameTaken,
    UserSummary,
    uuid7,
)

__all__ = [
    "DatabaseUnavailable",
    "User",
    "UserDatabase",
    "UserSummary",
    "UsernameTaken",
    "uuid7",
]
