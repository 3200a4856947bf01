"""Subresource Integrity: the ``integrity`` attribute of ``<script>`` and ``<link>`` tags.

An ``integrity="sha384-…"`` attribute makes the browser refuse a script or stylesheet whose
bytes are not the ones the page was written for — a compromised CDN or a tampered copy
cannot run. The value is ``<algorithm>-<base64 of the digest>`` (W3C SRI); browsers accept
``sha256``, ``sha384`` (the usual choice) and ``sha512``.

::

    integrity(b"alert('Hello, world.');")
    # 'sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO'
    sri_attributes("static/app.js")
    # 'integrity="sha384-…" crossorigin="anonymous"'

``crossorigin`` is needed for files from another origin (the browser checks integrity only
on CORS responses); ``anonymous`` sends no cookies.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import threading
from pathlib import Path

__all__ = ["ALGORITHMS", "integrity", "integrity_for_file", "sri_attributes"]

#: The digest algorithms browsers accept in an integrity value.
ALGORITHMS = ("sha256", "sha384", "sha512")
_CROSSORIGIN = ("anonymous", "use-credentials")

#: (path, algorithm) → (stat signature, integrity); bounded.
_CACHE: dict[tuple[str, str], tuple[tuple[int, int, int], str]] = {}
_CACHE_LIMIT = 4096
_lock = threading.Lock()


def _check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
    return algorithm


def _value(algorithm: str, digest: bytes) -> str:
    return f"{algorithm}-{base64.b64encode(digest).decode('ascii')}"


def integrity(data: bytes, algorithm: str = "sha384") -> str:
    """Return the integrity value of *data*: ``sha384-<base64>`` by default."""
    return _value(algorithm, hashlib.new(_check_algorithm(algorithm), data).digest())


def integrity_for_file(path: str | os.PathLike[str], algorithm: str = "sha384") -> str:
    """Return the integrity value of the file at *path* (read in chunks).

    Raises :class:`OSError` (``FileNotFoundError``, ``IsADirectoryError``, …) if it cannot
    be read.
    """
    _check_algorithm(algorithm)
    with Path(path).open("rb") as fh:
        digest = hashlib.file_digest(fh, algorithm).digest()
    return _value(algorithm, digest)


def sri_attributes(
    path: str | os.PathLike[str],
    *,
    crossorigin: str | None = "anonymous",
    algorithm: str = "sha384",
) -> str:
    """Return ``integrity="…" crossorigin="anonymous"`` for the file at *path*, for templates.

    The digest is cached by path and the file's modification time, size and inode, so a
    template pays one ``stat`` per call and re-hashes only a changed file. *crossorigin*
    ``None`` leaves that attribute out (same-origin files).
    """
    _check_algorithm(algorithm)
    if crossorigin is not None and crossorigin not in _CROSSORIGIN:
        raise ValueError(
            f"crossorigin must be anonymous, use-credentials or None, not {crossorigin!r}"
        )
    name = os.fspath(path)
    info = os.stat(name)
    signature = (info.st_mtime_ns, info.st_size, info.st_ino)
    key = (name, algorithm)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == signature:
        value = hit[1]
    else:
        value = integrity_for_file(name, algorithm)
        after = os.stat(name)
        if (after.st_mtime_ns, after.st_size, after.st_ino) == signature:  # not mid-write
            with _lock:
                if len(_CACHE) >= _CACHE_LIMIT:
                    _CACHE.clear()
                _CACHE[key] = (signature, value)
    attributes = f'integrity="{html.escape(value)}"'
    if crossorigin is not None:
        attributes += f' crossorigin="{crossorigin}"'
    return attributes
