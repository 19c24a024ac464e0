"""Server URLs made fit for logs and error lines: no password in them.

The session store and the user database both take URLs that may carry a
password; whatever prints one of them goes through :func:`redact_url` first.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that drivers read a password from (libpq and asyncpg
# accept ?password=, redis-py too).
SECRET_PARAMETERS = frozenset({"password"})


def redact_url(url: str) -> str:
    """*url* with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        # Unparsable (a bad IPv6 literal, say): nothing in it can be trusted
        # to be free of a password.
        return MASK
    secret_query = any(name in SECRET_PARAMETERS for name, _ in parse_qsl(parts.query))
    if password is None and not secret_query:
        # Unchanged: taking it apart and back together can alter it.
        return url
    if password is not None:
        parts = parts._replace(netloc=_masked_netloc(parts.netloc))
    if secret_query:
        parts = parts._replace(query=_masked_query(parts.query))
    return urlunsplit(parts)


def _masked_netloc(netloc: str) -> str:
    # Split by hand rather than rebuild from hostname and port, so that an
    # IPv6 literal keeps its brackets.
    credentials, _, host = netloc.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{user}:{MASK}@{host}"


def _masked_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [(k, MASK if k in SECRET_PARAMETERS else v) for k, v in pairs]
    return urlencode(masked, safe="*")
