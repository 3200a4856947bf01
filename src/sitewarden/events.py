r"""Security events: one record per decision, as JSON lines and to any number of sinks.

Every refusal sitewarden makes (and every decision taken in log-only mode), every sign-in,
lockout and ban is one event, so operators can alert on them and Fail2Ban-style tools can
act on the log. :func:`emit` builds the record once::

    {"event": "login.failure", "time": 1795305600.123, "client": "192.0.2.7", ...}

``event`` (the dotted name) comes first and ``time`` (Unix seconds) second, then the fields
the caller gave, in its order: ``client``, ``host``, ``method``, ``path``, ``user``,
``login``, ``reason`` and others where they apply; fields that are ``None`` are left out.

It goes first to the ``sitewarden.events`` logger (one JSON object per message, if that
logger is enabled for the level), then to every sink added with :func:`add_sink`, such as
:class:`~sitewarden.events_store.EventRecorder` (kept in the store for
``sitewarden events``) and :class:`~sitewarden.metrics.Metrics` (Prometheus counters).

**No secrets.** A field whose name says it holds a secret (see :data:`SECRET_WORDS`) is
replaced by ``"[redacted]"`` before anything sees it, so a careless caller cannot put a
password, one-time code, token or cookie into the log. **No log injection.** The JSON line
has no raw newline, C1 control, bidirectional override or lone surrogate: they are written
as ``\uXXXX`` escapes, so attacker-controlled text (paths, logins) cannot forge lines or
rewrite a terminal that shows the log.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

__all__ = [
    "KNOWN_EVENTS",
    "LOGGER_NAME",
    "REDACTED",
    "SECRET_INFIXES",
    "SECRET_WORDS",
    "Sink",
    "add_sink",
    "current_site",
    "emit",
    "is_secret_field",
    "logger",
    "remove_sink",
    "sinks",
]

#: The site (a :class:`~sitewarden.Warden`) handling the current request, set by the engine
#: at the start of each request: sinks that belong to one site skip other sites' events
#: (several sites in one process), and keep events raised outside any request.
current_site: ContextVar[object | None] = ContextVar("sitewarden_site", default=None)

#: The logger that receives the events (one JSON object per message).
LOGGER_NAME = "sitewarden.events"
logger = logging.getLogger(LOGGER_NAME)
_errors = logging.getLogger("sitewarden")

#: A sink: called as ``sink(record, level)`` with a read-only view of each record and the
#: event's logging level. It runs on the request path: it must be quick and thread-safe.
Sink = Callable[[Mapping[str, Any], int], None]

#: Every event name sitewarden emits (documented in ``docs/events.md``); metrics start
#: each at zero so that rates are defined before the first occurrence.
KNOWN_EVENTS = (
    "login.success",
    "login.failure",
    "lockout.locked",
    "lockout.unlocked",
    "lockout.malformed",
    "ban.added",
    "ban.removed",
    "ban.blocked",
    "ban.malformed",
    "ratelimit.refused",
    "totp.failure",
    "totp.replay",
    "totp.throttled",
    "totp.recovery_used",
    "password.breach_check_failed",
    "password.hash_invalid",
    "password.estimate_failed",
    "csrf.refused",
    "csrf.would_refuse",
    "host.refused",
    "manage.refused",
    "websocket.refused",
    "proxy.untrusted_forwarding",
    "store.unavailable",
    "session.keyring_damaged",
    "csp.report",
    "events.dropped",
)

#: A field is secret when a word of its name (split at ``_``, ``-``, ``.`` and case
#: changes) is one of these, or when its letters and digits contain one of
#: :data:`SECRET_INFIXES`.
SECRET_WORDS = frozenset(
    {
        "password", "passwd", "passphrase", "pwd", "secret", "token", "code", "otp",
        "totp", "pin", "cookie", "cookies", "authorization", "credential", "credentials",
        "apikey", "signature", "ticket", "tkt", "authenticator", "passcode", "otpcode",
        "pincode", "authcode",
    }
)  # fmt: skip
#: Substrings that mark a secret even inside a longer name ("newPassword", "csrftoken",
#: "api_key", "session-id").
SECRET_INFIXES = (
    "password", "passwd", "secret", "token", "cookie", "apikey", "privatekey", "sessionid"
)  # fmt: skip
#: The value that replaces a secret field.
REDACTED = "[redacted]"
#: Field names known to be safe: checked first so the common case costs one set lookup.
_SAFE_FIELDS = frozenset(
    {"client", "host", "method", "path", "user", "login", "reason", "until", "count"}
)
_RESERVED = frozenset({"event", "time"})
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")

#: Characters escaped in the JSON line although ``json.dumps(ensure_ascii=False)`` keeps
#: them: C1 controls (8-bit terminal escapes), line/paragraph separators, bidirectional
#: overrides and lone surrogates (a handler encoding to UTF-8 would fail on them).
_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

_sinks: tuple[Sink, ...] = ()
_sinks_lock = threading.Lock()
_failed: set[int] = set()  # ids of registered sinks whose failure was logged already
_dispatch = threading.local()  # set while sinks run: an emit from a sink is logged only


@functools.lru_cache(maxsize=512)
def is_secret_field(name: str) -> bool:
    """Return whether a field called *name* may hold a secret (its value is redacted).

    Deliberately broad: ``status_code`` is redacted too (``code`` is a one-time code more
    often than not), so events carry an HTTP status as ``status``.
    """
    squashed = _NOT_ALNUM.sub("", name).lower()
    if any(infix in squashed for infix in SECRET_INFIXES):
        return True
    return any(word.lower() in SECRET_WORDS for word in _WORDS.findall(name))


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _json_line(record: dict[str, Any]) -> str:
    try:
        line = json.dumps(record, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):  # a self-referencing field value
        line = json.dumps(
            {"event": record["event"], "time": record["time"], "error": "unserialisable fields"}
        )
    return _UNSAFE.sub(_escape, line) if _UNSAFE.search(line) else line


def emit(event: str, level: int = logging.WARNING, /, **fields: Any) -> None:
    """Record security event *event* with *fields* (see the module docstring).

    *event* and *level* are positional, so a field may be called ``level`` (a ban level)
    without a ``TypeError`` on the request path; fields called ``event`` or ``time`` are
    kept as ``event_`` and ``time_`` (they cannot replace the name or the timestamp).
    Returns at once when the logger is disabled for *level* and no sink is registered.
    Never raises because of a sink: a failing sink is logged once (``sitewarden`` logger,
    ERROR) and skipped.
    """
    sinks = _sinks
    to_log = logger.isEnabledFor(level)
    if not to_log and not sinks:
        return
    record: dict[str, Any] = {"event": event, "time": round(time.time(), 3)}
    for name, value in fields.items():
        if value is None:
            continue
        if name not in _SAFE_FIELDS:
            if is_secret_field(name):
                value = REDACTED  # a secret never reaches a log line, a store or a sink
            elif name in _RESERVED:
                name += "_"
        record[name] = value
    if to_log:
        logger.log(level, _json_line(record))
    if sinks and not getattr(_dispatch, "active", False):
        _dispatch.active = True
        try:
            view = MappingProxyType(record)  # one sink cannot change what the next sees
            for sink in sinks:
                try:
                    sink(view, level)
                except Exception:
                    _sink_failed(sink)
        finally:
            _dispatch.active = False


def _sink_failed(sink: Sink) -> None:
    key = id(sink)
    if key in _failed:
        return
    _failed.add(key)
    _errors.exception(
        "security event sink %r failed; its events are lost (logged once per sink)", sink
    )


def add_sink(sink: Sink) -> None:
    """Hand every future event to *sink* (after the logger); adding it twice does nothing."""
    global _sinks
    with _sinks_lock:
        if sink not in _sinks:
            _sinks = (*_sinks, sink)  # a new tuple: emit reads the old one without a lock


def remove_sink(sink: Sink) -> None:
    """Stop handing events to *sink* (nothing happens if it was not added)."""
    global _sinks
    with _sinks_lock:
        kept = tuple(s for s in _sinks if s != sink)
        removed = [s for s in _sinks if s == sink]
        _sinks = kept
        for s in removed:
            _failed.discard(id(s))


def sinks() -> tuple[Sink, ...]:
    """Return the registered sinks, in the order they receive events."""
    return _sinks
