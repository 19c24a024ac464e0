"""What a username and a password may be, and how names are compared.

Names are compared in Unicode NFKC and case-folded, so ``Joe``, ``joe`` and a
full-width ``ｊｏｅ`` are one account; the name is kept as entered for display.
"""

from __future__ import annotations

import unicodedata

from gateway.config import AccountsConfig
from gateway.errors import BadRequest


def username_key(username: str) -> str:
    return unicodedata.normalize("NFKC", username).casefold()


def check_username(username: str, accounts: AccountsConfig) -> str:
    """Return the comparison key of an acceptable name or raise BadRequest."""
    key = username_key(username)
    if not accounts.username_min <= len(key) <= accounts.username_max:
        raise BadRequest(
            f"username must be {accounts.username_min} to "
            f"{accounts.username_max} characters"
        )
    allowed = accounts.username_punctuation
    for char in key:
        if not (char in allowed or _is_letter_or_digit(char)):
            listed = " ".join(allowed)
            raise BadRequest(f"username may contain letters, digits and {listed} only")
    return key


def check_password(password: str, accounts: AccountsConfig) -> None:
    length = len(unicodedata.normalize("NFC", password))
    if not accounts.password_min <= length <= accounts.password_max:
        raise BadRequest(
            f"password must be {accounts.password_min} to "
            f"{accounts.password_max} characters"
        )


def _is_letter_or_digit(char: str) -> bool:
    return unicodedata.category(char)[0] in {"L", "N"}
