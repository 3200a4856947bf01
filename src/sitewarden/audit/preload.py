"""Chromium's HSTS preload list, as the HTTP Observatory consults it.

The Observatory downloads Chromium's ``transport_security_state_static.json`` when it is
installed, keeps the ``force-https`` entries, and counts a host as preloaded when it is on
the list itself, or when a parent domain is on it with ``include_subdomains``
(``hsts-preloaded`` +5, ``redirection-all-redirects-preloaded``). sitewarden does the same
with the first list it finds:

1. a file given with ``--hsts-preload FILE`` (Chromium's JSON, comments allowed, or the
   Observatory's ``conf/hsts-preload.json``);
2. the list ``sitewarden scan --update-hsts-preload`` downloaded to the user's cache
   (:func:`cache_path`);
3. the snapshot bundled with the ``hstspreload`` package (dated by its version).

A damaged file is an error (:class:`PreloadError`), never an empty list: an empty list
would quietly grade a preloaded site 5 points lower than the Observatory does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CHROMIUM_URL",
    "HstsPreload",
    "PreloadError",
    "cache_path",
    "covers",
    "default_preload",
    "download_preload",
    "load_preload",
    "parse_preload",
]

#: Where the Observatory's install step fetches the list (Chromium's source, GitHub mirror).
CHROMIUM_URL = (
    "https://raw.githubusercontent.com/chromium/chromium/main/"
    "net/http/transport_security_state_static.json"
)
#: Format marker of the cache file written by :func:`download_preload`.
_CACHE_FORMAT = "sitewarden-hsts-preload/1"
_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)


class PreloadError(Exception):
    """A preload list could not be read (the message says which file and why)."""


def covers(entries: Mapping[str, bool], hostname: str) -> bool:
    """Return whether *hostname* is listed, or under a parent with ``include_subdomains``.

    The Observatory's rule; *entries* maps each ``force-https`` host to that flag.
    """
    host = hostname.lower().rstrip(".")
    if host in entries:
        return True
    labels = host.split(".")
    # A parent counts only with include_subdomains (foo.example.org under example.org).
    return any(entries.get(".".join(labels[i:])) for i in range(1, len(labels)))


class HstsPreload:
    """A preload list: ``preload(hostname)`` is True when the host is preloaded.

    The Observatory's rule; *entries* maps each ``force-https`` host to that flag.
    *lookup* replaces it with a function (the bundled snapshot's). *source* says where the
    list came from, for the reader of a report.
    """

    def __init__(
        self,
        entries: Mapping[str, bool] | None = None,
        *,
        lookup: Callable[[str], bool] | None = None,
        source: str = "given entries",
    ) -> None:
        self.entries: dict[str, bool] = dict(entries or {})
        self._lookup = lookup
        self.source = source

    def __call__(self, hostname: str) -> bool:
        """Return whether *hostname* (lower-case, IDNA-encoded) is preloaded."""
        host = hostname.lower().rstrip(".")
        if self._lookup is not None:
            try:
                return self._lookup(host)
            except (UnicodeError, ValueError):  # a name the list cannot hold
                return False
        return covers(self.entries, host)

    def __repr__(self) -> str:
        return f"HstsPreload(source={self.source!r})"


def parse_preload(text: str, source: str) -> HstsPreload:
    """Parse Chromium's JSON, the Observatory's map, or a cache file; raise PreloadError."""
    try:
        data = json.loads(_COMMENT.sub("", text))
    except ValueError as exc:
        raise PreloadError(f"{source}: not JSON ({exc})") from None
    entries: dict[str, bool] = {}
    if isinstance(data, dict) and data.get("format") == _CACHE_FORMAT:
        raw = data.get("entries")
        if not isinstance(raw, dict) or not all(isinstance(v, bool) for v in raw.values()):
            raise PreloadError(f"{source}: damaged cache file")
        fetched = data.get("fetched", "?")
        return HstsPreload(raw, source=f"{source} (fetched {fetched})")
    if isinstance(data, dict) and isinstance(data.get("entries"), list):
        # Chromium's transport_security_state_static.json.
        for entry in data["entries"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise PreloadError(f"{source}: an entry without a name")
            if entry.get("mode") == "force-https":
                entries[entry["name"].strip().lower()] = bool(entry.get("include_subdomains"))
    elif isinstance(data, dict):
        # The Observatory's conf/hsts-preload.json: {host: {includeSubDomains, mode, …}}.
        for name, entry in data.items():
            if not isinstance(entry, dict):
                raise PreloadError(f"{source}: the entry for {name!r} is not an object")
            if entry.get("mode") == "force-https":
                entries[name.strip().lower()] = bool(entry.get("includeSubDomains"))
    else:
        raise PreloadError(f"{source}: neither Chromium's preload JSON nor the Observatory's")
    return HstsPreload(entries, source=f"{source} ({len(entries)} hosts)")


def load_preload(path: str | os.PathLike[str]) -> HstsPreload:
    """Read a preload list file (see :func:`parse_preload`); raise PreloadError."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PreloadError(f"cannot read the HSTS preload list {path}: {exc}") from None
    return parse_preload(text, str(path))


def cache_path() -> Path:
    """Where :func:`download_preload` keeps the list (``$XDG_CACHE_HOME/sitewarden``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sitewarden" / "hsts-preload.json"


def _bundled() -> HstsPreload | None:
    try:
        import hstspreload
    except ImportError:
        return None
    version = getattr(hstspreload, "__version__", "?")
    in_list = hstspreload.in_hsts_preload

    def lookup(host: str) -> bool:
        # The package reads its data with importlib.resources.open_binary, which Python
        # 3.11/3.12 flag as deprecated on every read; the warning is the package's, not
        # the user's business.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return bool(in_list(host))

    return HstsPreload(lookup=lookup, source=f"snapshot bundled with hstspreload {version}")


def default_preload() -> HstsPreload:
    """Return the downloaded list when there is one, else the bundled snapshot (or none)."""
    cached = cache_path()
    if cached.exists():
        return load_preload(cached)
    return _bundled() or HstsPreload(source="none (no list installed)")


def download_preload(
    url: str = CHROMIUM_URL,
    destination: Path | None = None,
    *,
    timeout: float = 60.0,
    fetch: Callable[[str, float], bytes] | None = None,
) -> HstsPreload:
    """Download Chromium's list from *url*, check it, and store it atomically.

    The file is replaced only after the new list parsed, so a failed or truncated download
    leaves the previous list in place. Raises :class:`PreloadError`.
    """
    destination = destination or cache_path()
    try:
        raw = (fetch or _http_get)(url, timeout)
    except Exception as exc:  # any transport failure is reported, not raised raw
        raise PreloadError(f"cannot download {url}: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PreloadError(f"{url}: not UTF-8 text") from None
    parsed = parse_preload(text, url)
    if not parsed.entries:
        raise PreloadError(f"{url}: no force-https entries; the previous list is kept")
    fetched = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    document: dict[str, Any] = {
        "format": _CACHE_FORMAT,
        "url": url,
        "fetched": fetched,
        "entries": parsed.entries,
    }
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hsts-preload.", dir=destination.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, destination)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return HstsPreload(parsed.entries, source=f"{destination} (fetched {fetched})")


def _http_get(url: str, timeout: float) -> bytes:
    import httpx

    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        reply = client.get(url)
        reply.raise_for_status()
        return reply.content
