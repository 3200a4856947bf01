"""A bounded, store-wide log of JSON records (CSP reports, security events).

Every record is compact JSON under ``<prefix><Unix ms, 13 digits>:<sequence, 12 digits>``.
The sequence is one counter per log, shared by every process and machine on the store, so
records written in the same millisecond (or by processes whose clocks differ slightly) still
sort in arrival order, and two writers never pick the same key. ``store.keys(prefix)`` lists
the records oldest first.

A log with *keep* holds the newest *keep* records: every ``sweep_every``-th append (counted
on the shared sequence, so one writer does it for all) deletes the oldest beyond *keep*.
Between sweeps the store holds at most ``keep + sweep_every - 1`` records; readers that
must never show more ask for ``limit=keep``. Listing is a scan of the store's keys, so it is
done once per sweep, never once per append.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from sitewarden.errors import ConfigError
from sitewarden.store.base import Store

__all__ = ["RecordLog", "key_millis", "read_records"]

#: Longest gap between sweeps (appends); smaller logs sweep every tenth of *keep*.
MAX_SWEEP_EVERY = 100


class RecordLog:
    """Append JSON records to *store* under *prefix*, numbered by *sequence_key*.

    *ttl* is each record's lifetime in seconds (``None``: until deleted); *keep* bounds the
    number of records kept (``None``: no bound, the TTL alone cleans up).
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        *,
        sequence_key: str,
        ttl: float | None,
        keep: int | None = None,
    ) -> None:
        """Describe the log; nothing is written until :meth:`append`."""
        if not prefix:
            raise ConfigError("record log: the key prefix must not be empty")
        if sequence_key.startswith(prefix):
            # the counter would be listed (and swept) as if it were a record
            raise ConfigError(f"record log: {sequence_key!r} must not start with {prefix!r}")
        if keep is not None and keep < 1:
            raise ConfigError(f"record log: keep must be at least 1, got {keep}")
        self.store = store
        self.prefix = prefix
        self.sequence_key = sequence_key
        self.ttl = ttl
        self.keep = keep
        self.sweep_every = 0 if keep is None else max(1, min(MAX_SWEEP_EVERY, keep // 10))

    def append(self, record: Mapping[str, Any], now: float) -> str:
        """Store *record* (JSON-serialisable; other values become strings) as of *now*.

        Returns the key. Raises :class:`~sitewarden.errors.StoreError` if the store fails;
        a record whose number was drawn but that could not be written leaves a gap, nothing
        else.
        """
        seq = self.store.incr(self.sequence_key)
        key = f"{self.prefix}{max(0, int(now * 1000)):013d}:{seq:012d}"
        value = json.dumps(record, separators=(",", ":"), default=str).encode()
        self.store.set(key, value, ttl=self.ttl)
        if self.sweep_every and seq % self.sweep_every == 0:
            self.trim()
        return key

    def trim(self) -> int:
        """Delete the oldest records beyond *keep*; return how many were deleted."""
        if self.keep is None:
            return 0
        keys = self.store.keys(self.prefix)
        excess = keys[: max(0, len(keys) - self.keep)]
        for key in excess:
            self.store.delete(key)
        return len(excess)

    def recent(
        self,
        limit: int,
        *,
        since: float | None = None,
        accept: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Return up to *limit* records, newest first (see :func:`read_records`)."""
        return read_records(self.store, self.prefix, limit, since=since, accept=accept)


def key_millis(key: str, prefix: str) -> int | None:
    """Return the Unix milliseconds in a record *key* under *prefix*, or ``None``."""
    stamp = key[len(prefix) : len(prefix) + 13]
    return int(stamp) if len(stamp) == 13 and stamp.isdigit() and stamp.isascii() else None


def read_records(
    store: Store,
    prefix: str,
    limit: int,
    *,
    since: float | None = None,
    accept: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Return up to *limit* records stored under *prefix*, newest first.

    *since* (Unix seconds) skips records written earlier, judged by the time in the key so
    that old records are never fetched; *accept* filters the decoded records. Records that
    expired meanwhile, or that are not JSON objects, are skipped.
    """
    if limit <= 0:
        return []
    keys = store.keys(prefix)
    if since is not None:
        floor = math.floor(since * 1000)  # the key holds the floor of the ms too
        keys = [k for k in keys if (ms := key_millis(k, prefix)) is not None and ms >= floor]
    found: list[dict[str, Any]] = []
    for key in reversed(keys):
        raw = store.get(key)
        if raw is None:
            continue  # expired (or swept) since it was listed
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and (accept is None or accept(record)):
            found.append(record)
            if len(found) >= limit:
                break
    return found
