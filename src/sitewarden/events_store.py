"""Recent security events kept in the store, for ``sitewarden events`` and admin pages.

:class:`EventRecorder` is an :mod:`~sitewarden.events` sink. It keeps the newest *keep*
events of every worker and machine sharing the store, as JSON under
``event:<Unix ms>:<sequence>`` (see :mod:`sitewarden.store.log`), each for *ttl* seconds.

An attack is a flood of refusals; the recorder must not turn it into a flood of store
writes. Each process has a budget (a token bucket: *rate* events per second, bursts of
*burst*). Events over budget are counted, not written, and one ``events.dropped`` record
with the counts is written when the budget allows again. The log (the
``sitewarden.events`` logger) still gets every event: the store is a convenience for
humans, the log is the record.

A store that fails does not break the request: the event is dropped (counted in the next
``events.dropped`` record), the failure is logged once per outage on the ``sitewarden``
logger, and the store is left alone for *retry_after* seconds so that every request does
not wait for a dead server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sitewarden.errors import ConfigError, StoreError
from sitewarden.store.base import Store
from sitewarden.store.log import RecordLog, read_records

__all__ = ["EVENT_PREFIX", "EVENT_TTL", "SEQUENCE_KEY", "EventRecorder", "recent"]

#: Store key prefix of recorded events.
EVENT_PREFIX = "event:"
#: Store-wide counter numbering the events (outside EVENT_PREFIX, so never listed).
SEQUENCE_KEY = "event-seq"
#: How long a recorded event is kept at most: 7 days.
EVENT_TTL = 7 * 86400.0
#: Longest kept text per field (characters); a flood of 100 kB paths stays small.
MAX_TEXT = 1024
#: Most fields kept per event, and most distinct names counted in one summary.
MAX_FIELDS = 40
MAX_NAMES = 64
DROPPED = "events.dropped"

_log = logging.getLogger("sitewarden")


def _storable(value: object) -> object:
    """Return *value* as a bounded JSON value (text capped, unknown types as text)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, Mapping):
        return {str(k)[:MAX_TEXT]: _storable(v) for k, v in list(value.items())[:MAX_NAMES]}
    if isinstance(value, list | tuple | set | frozenset):
        return [_storable(v) for v in list(value)[:MAX_NAMES]]
    return str(value)[:MAX_TEXT]


class EventRecorder:
    """Keep the newest *keep* events in *store* for *ttl* seconds (a sink; see the module).

    *level*: events below it are not kept (default INFO: sign-ins too). *rate* and *burst*:
    this process's write budget. *retry_after*: seconds the store is left alone after a
    failure. *clock*: monotonic seconds, for the budget (injectable in tests). ``keep=0``
    keeps nothing (every call returns at once).
    """

    def __init__(
        self,
        store: Store,
        keep: int = 1000,
        ttl: float = EVENT_TTL,
        *,
        level: int = logging.INFO,
        rate: float = 20.0,
        burst: int = 100,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Validate the settings; nothing is written until an event arrives."""
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ConfigError(f"events: keep must be a whole number ≥ 0, got {keep!r}")
        for name, value in (("ttl", ttl), ("rate", rate), ("burst", burst)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"events: {name} must be a positive number, got {value!r}")
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | float):
            raise ConfigError(f"events: retry_after must be a number, got {retry_after!r}")
        if burst < 1:
            raise ConfigError(f"events: burst must be at least 1, got {burst!r}")
        self.store = store
        self.keep = keep
        self.level = level
        self.rate = float(rate)
        self.burst = float(burst)
        self.retry_after = retry_after
        self._clock = clock
        self._log = (
            RecordLog(store, EVENT_PREFIX, sequence_key=SEQUENCE_KEY, ttl=ttl, keep=keep)
            if keep
            else None
        )
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()
        self._down_until: float | None = None  # set while the store is left alone
        self._outage_reported = False
        self._over_budget = 0
        self._store_failed = 0
        self._dropped: dict[str, int] = {}

    # -- the sink --------------------------------------------------------------------

    def __call__(self, record: Mapping[str, Any], level: int) -> None:
        """Keep *record* if it is at or above :attr:`level` and within the budget."""
        if self._log is None or level < self.level:
            return
        name = str(record.get("event", "?"))
        with self._lock:
            now = self._clock()
            if self._down_until is not None and now < self._down_until:
                self._drop(name, budget=False)
                return
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1.0:
                self._drop(name, budget=True)
                return
            self._tokens -= 1.0
            when = record.get("time")
            summary = self._take_summary(when if isinstance(when, float | int) else None)
        if summary is not None and not self._write(self._log, summary, logging.WARNING):
            self._restore(summary)
            written = False  # the store just failed: do not wait for it a second time
        else:
            written = self._write(self._log, record, level)
        if not written:
            with self._lock:
                self._drop(name, budget=False)

    def flush(self) -> bool:
        """Write the pending ``events.dropped`` summary now, budget or not (at shutdown).

        Returns whether a summary was written.
        """
        with self._lock:
            summary = self._take_summary()
        if summary is None or self._log is None:
            return False
        if self._write(self._log, summary, logging.WARNING):
            return True
        self._restore(summary)
        return False

    @property
    def pending_drops(self) -> int:
        """How many events were dropped since the last summary was written."""
        with self._lock:
            return self._over_budget + self._store_failed

    # -- internals -------------------------------------------------------------------

    def _drop(self, name: str, *, budget: bool) -> None:
        """Count one event that was not written (lock held)."""
        if budget:
            self._over_budget += 1
        else:
            self._store_failed += 1
        if name not in self._dropped and len(self._dropped) >= MAX_NAMES - 1:
            name = "other"
        self._dropped[name] = self._dropped.get(name, 0) + 1

    def _take_summary(self, when: float | None = None) -> dict[str, Any] | None:
        """Return the summary of the drops so far and reset the counts (lock held).

        *when* is the time of the event that follows it, so that both share a millisecond
        and the sequence puts the summary first.
        """
        total = self._over_budget + self._store_failed
        if not total:
            return None
        summary = {
            "event": DROPPED,
            "time": round(time.time(), 3) if when is None else when,
            "reason": f"{total} events not recorded (over budget: {self._over_budget}, "
            f"store unavailable: {self._store_failed}); the events logger got them all",
            "count": total,
            "over_budget": self._over_budget,
            "store_unavailable": self._store_failed,
            "events": dict(sorted(self._dropped.items(), key=lambda kv: -kv[1])),
        }
        self._over_budget = self._store_failed = 0
        self._dropped = {}
        return summary

    def _restore(self, summary: Mapping[str, Any]) -> None:
        """Put the counts of a summary that could not be written back."""
        with self._lock:
            self._over_budget += int(summary["over_budget"])
            self._store_failed += int(summary["store_unavailable"])
            for name, count in summary["events"].items():
                self._dropped[name] = self._dropped.get(name, 0) + count

    def _write(self, log: RecordLog, record: Mapping[str, Any], level: int) -> bool:
        """Write one record; on a store failure note the outage and return False."""
        stored: dict[str, Any] = {}
        for key, value in list(record.items())[:MAX_FIELDS]:
            stored[str(key)] = _storable(value)
        stored["severity"] = logging.getLevelName(level).lower()  # "level" may be a field
        when = stored.get("time")
        now = float(when) if isinstance(when, int | float) and when > 0 else time.time()
        try:
            log.append(stored, now)
        except StoreError as exc:
            with self._lock:
                self._down_until = self._clock() + self.retry_after
                report = not self._outage_reported
                self._outage_reported = True
            if report:
                _log.error(
                    "security events are not being recorded in the store (%s); they are "
                    "still logged. Retrying every %g s.",
                    exc,
                    self.retry_after,
                )
            return False
        if self._outage_reported or self._down_until is not None:
            with self._lock:
                was_down, self._outage_reported = self._outage_reported, False
                self._down_until = None
            if was_down:
                _log.warning("security events are recorded in the store again")
        return True


def recent(
    store: Store,
    limit: int = 100,
    prefix: str | None = None,
    since: float | None = None,
) -> list[dict[str, Any]]:
    """Return up to *limit* recorded events, newest first.

    *prefix* keeps events whose name starts with it (``"login."``, ``"ban"``); *since*
    (Unix seconds) keeps events recorded at or after that time.
    """
    accept = None
    if prefix:

        def accept(record: dict[str, Any]) -> bool:
            name = record.get("event")
            return isinstance(name, str) and name.startswith(prefix)

    return read_records(store, EVENT_PREFIX, limit, since=since, accept=accept)
