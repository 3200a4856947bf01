"""State stores chosen by URL: ``memory://``, ``sqlite:///path/state.db``, ``redis://host:port/0``.

:func:`open_store` is the one entry point. SQLite URLs follow SQLAlchemy's convention:
three slashes then a relative path (``sqlite:///.sitewarden/state.db``), four slashes for
an absolute one (``sqlite:////var/lib/site/state.db``). Redis URLs are redis-py's
(``redis://``, ``rediss://``, ``unix://``), plus an optional ``?prefix=`` for the key
namespace (default ``sitewarden:``).
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit

from sitewarden.errors import ConfigError
from sitewarden.store.base import Store, Throttle, Updater

__all__ = [
    "DEFAULT_STORE_URL",
    "Store",
    "Throttle",
    "Updater",
    "default_store_url",
    "open_store",
    "redact_url",
]

#: Where state lives when nothing else is said: an SQLite file beside the working directory.
DEFAULT_STORE_URL = "sqlite:///.sitewarden/state.db"


def default_store_url() -> str:
    """Return ``$SITEWARDEN_STORE`` if set, else :data:`DEFAULT_STORE_URL`."""
    return os.environ.get("SITEWARDEN_STORE") or DEFAULT_STORE_URL


def redact_url(url: str) -> str:
    """Return *url* with any password replaced by ``***``, safe for logs and messages.

    Both places a password can hide are covered: ``scheme://user:PASSWORD@host`` and a
    ``?password=`` query parameter (redis-py's form for ``unix://`` sockets). The rest of
    the URL is kept as written (``urlunsplit`` would turn ``unix:///x`` into ``unix:/x``).
    """
    try:
        parts = urlsplit(url)
        password = parts.password
        _ = parts.port  # raises ValueError for a malformed port
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unparsable URL>"
    if password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        url = url.replace(f"//{parts.netloc}", f"//{user}:***@{hostport}", 1)
    if any(name.lower() == "password" for name, _ in query):
        hidden = [(n, "***" if n.lower() == "password" else v) for n, v in query]
        rest, hash_mark, fragment = url.partition("#")
        url = rest.partition("?")[0] + "?" + urlencode(hidden, safe="*:/") + hash_mark + fragment
    return url


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open the store named by *url* (default: :func:`default_store_url`).

    With ``create=False`` an SQLite file that does not exist yet is an error instead of
    being created (for commands that only inspect).

    Raises :class:`~sitewarden.errors.ConfigError` for a URL sitewarden does not
    understand, and :class:`~sitewarden.errors.StoreError` subclasses when the store
    exists but cannot be opened or read.
    """
    if url is None:
        url = default_store_url()
    if not isinstance(url, str) or not url:
        raise ConfigError("store: expected a URL such as 'sqlite:///.sitewarden/state.db'")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "memory":
        from sitewarden.store.memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        from sitewarden.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path_from_url(url), create=create)
    if scheme in ("redis", "rediss", "unix"):
        from sitewarden.store.redis import RedisStore

        return RedisStore.from_url(url)
    raise ConfigError(
        f"store: unknown store URL {redact_url(url)!r}; use memory://, "
        "sqlite:///relative/path.db, sqlite:////absolute/path.db or redis://host:port/0"
    )


def sqlite_path_from_url(url: str) -> str:
    """Return the file path of an ``sqlite:///…`` URL (SQLAlchemy's slash convention)."""
    prefix = "sqlite:///"
    if not url.lower().startswith(prefix) or len(url) == len(prefix):
        raise ConfigError(
            f"store: {url!r} is not an SQLite URL; write sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    path = url[len(prefix) :]
    if "?" in path or "#" in path:
        raise ConfigError(f"store: SQLite URL {url!r} takes no query or fragment")
    return path
