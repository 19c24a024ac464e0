"""The user database."""

from gateway.users.db import (
    DatabaseUnavailable,
    User,
    UserDatabase,
    UsernameTaken,
    uuid7,
)

__all__ = ["DatabaseUnavailable", "User", "UserDatabase", "UsernameTaken", "uuid7"]
