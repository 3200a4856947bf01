"""The CSP violation report receiver (sans-I/O): check, rate-limit, normalise, store.

Browsers send Content-Security-Policy violation reports in two formats:

``application/csp-report`` (``report-uri``, CSP Level 2)
    one object ``{"csp-report": {"document-uri": …, "violated-directive": …, …}}``.
``application/reports+json`` (``report-to``, the Reporting API)
    a list of reports ``[{"type": "csp-violation", "url": …, "user_agent": …,
    "body": {"documentURL": …, "effectiveDirective": …, …}}, …]``; reports of other types
    (deprecation, intervention, …) are ignored.

Both are normalised to one flat record (see :data:`FIELDS`) and stored as JSON under
``csp-report:<unix-ms, 13 digits>:<sequence, 12 digits>`` for :data:`REPORT_TTL` (30 days), so
``store.keys("csp-report:")`` lists them oldest first. Every text field is length-capped and
stripped of control characters (the records are shown in terminals).

Answers: ``204`` stored; ``405`` not POST; ``415`` another content type; ``413`` a body over
``policy.csp_report_max_bytes``; ``429`` (with ``Retry-After``) over
``policy.csp_report_rate`` requests per client address per minute, or over the site-wide
``max_per_minute``; ``400`` malformed JSON or shape; ``503`` the store is unavailable. The
receiver never raises for any request.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from sitewarden import events
from sitewarden.errors import StoreError
from sitewarden.policy import Policy
from sitewarden.store.base import Store
from sitewarden.store.log import RecordLog, read_records
from sitewarden.web.request import Reply, RequestView

__all__ = ["FIELDS", "REPORT_PREFIX", "REPORT_TTL", "ReportReceiver", "list_reports"]

#: Store key prefix of stored reports.
REPORT_PREFIX = "csp-report:"
#: Store-wide counter numbering the reports (outside REPORT_PREFIX, so never listed).
SEQUENCE_KEY = "csp-report-seq"
#: Store key prefix of the per-client rate counters (deliberately not under REPORT_PREFIX).
RATE_PREFIX = "csp-rate:"
#: Store key prefix of the site-wide per-minute counters.
SITE_RATE_PREFIX = "csp-rate-site:"
#: How long a stored report is kept: 30 days.
REPORT_TTL = 30 * 86400.0
#: Reports stored from one request at most (the Reporting API batches them).
MAX_REPORTS_PER_REQUEST = 20

#: The fields of a stored report.
FIELDS = (
    "received",  # Unix time (float) the report arrived
    "client",  # the sender's address as the engine resolved it, or None
    "format",  # "csp-report" or "reports+json"
    "document_uri",
    "referrer",
    "violated_directive",
    "effective_directive",
    "blocked_uri",
    "source_file",
    "line",  # int or None
    "column",  # int or None
    "disposition",  # "enforce" or "report"
    "status_code",  # int or None
    "sample",
    "original_policy",
    "user_agent",
)

#: Longest kept value per text field (characters).
_CAPS = {
    "document_uri": 2048,
    "referrer": 2048,
    "violated_directive": 256,
    "effective_directive": 128,
    "blocked_uri": 2048,
    "source_file": 2048,
    "disposition": 16,
    "sample": 256,
    "original_policy": 4096,
    "user_agent": 512,
}

#: Legacy (CSP2) key → field.
_LEGACY = {
    "document-uri": "document_uri",
    "referrer": "referrer",
    "violated-directive": "violated_directive",
    "effective-directive": "effective_directive",
    "blocked-uri": "blocked_uri",
    "source-file": "source_file",
    "line-number": "line",
    "column-number": "column",
    "disposition": "disposition",
    "status-code": "status_code",
    "script-sample": "sample",
    "original-policy": "original_policy",
}

#: Reporting API body key → field.
_REPORTING = {
    "documentURL": "document_uri",
    "referrer": "referrer",
    "effectiveDirective": "effective_directive",
    "blockedURL": "blocked_uri",
    "sourceFile": "source_file",
    "lineNumber": "line",
    "columnNumber": "column",
    "disposition": "disposition",
    "statusCode": "status_code",
    "sample": "sample",
    "originalPolicy": "original_policy",
}

_INT_FIELDS = frozenset({"line", "column", "status_code"})
#: Removed from stored text: C0/C1 controls (terminal escapes), lone surrogates (not
#: encodable) and bidirectional overrides (text that displays differently than it reads).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_log = logging.getLogger("sitewarden.reports")
_TEXT = ("content-type", "text/plain; charset=utf-8")


def _reply(status: int, message: str, *extra: tuple[str, str]) -> Reply:
    return Reply(status, [_TEXT, ("cache-control", "no-store"), *extra], message.encode())


def _text(value: object, cap: int) -> str:
    """Return *value* as capped, control-free text ("" for anything but a string)."""
    if not isinstance(value, str):
        return ""
    return _CONTROL.sub("", value[: cap * 2])[:cap]


def _number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        return None
    return value


def _normalise(raw: dict[str, Any], names: dict[str, str], record: dict[str, Any]) -> None:
    """Fill *record*'s report fields from *raw* (keys per *names*), capped and typed."""
    for key, name in names.items():
        value = raw.get(key)
        if name in _INT_FIELDS:
            record[name] = _number(value)
        else:
            record[name] = _text(value, _CAPS[name])
    if not record["violated_directive"]:
        record["violated_directive"] = record["effective_directive"]
    if not record["effective_directive"]:
        # CSP2 browsers sent only "violated-directive": "script-src 'self'"
        record["effective_directive"] = record["violated_directive"].split(" ", 1)[0][:128]


class ReportReceiver:
    """Receive CSP violation reports for one site (see the module docstring).

    *max_per_minute* caps the reports accepted site-wide per minute (``None``: no cap), so
    many addresses together cannot fill the store.
    """

    def __init__(self, policy: Policy, store: Store, *, max_per_minute: int | None = 1000) -> None:
        """Use *policy*'s ``csp_report_*`` limits and keep reports in *store*."""
        self.policy = policy
        self.store = store
        self.max_bytes = policy.csp_report_max_bytes
        self.rate = policy.csp_report_rate
        self.max_per_minute = max_per_minute
        # A store-wide sequence number after the time: reports of the same millisecond
        # (or from processes with slightly different clocks) still list in arrival order.
        self._records = RecordLog(store, REPORT_PREFIX, sequence_key=SEQUENCE_KEY, ttl=REPORT_TTL)

    def handle(self, view: RequestView, body: bytes, client: str | None) -> Reply:
        """Answer one request to the report endpoint; never raises."""
        try:
            return self._handle(view, body, client)
        except StoreError:
            return _reply(503, "report store unavailable\n", ("retry-after", "60"))
        except Exception:  # a bug here must not become an error page: log it, refuse
            _log.exception("CSP report receiver failed on a request from %r", client)
            return _reply(400, "malformed report\n")

    def _handle(self, view: RequestView, body: bytes, client: str | None) -> Reply:
        if view.method != "POST":
            return _reply(405, "method not allowed\n", ("allow", "POST"))
        media = view.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in ("application/csp-report", "application/reports+json"):
            return _reply(415, "expected application/csp-report or application/reports+json\n")
        if not isinstance(body, bytes | bytearray) or len(body) > self.max_bytes:
            return _reply(413, "report too large\n")
        who = (client or "-")[:64]
        if self.store.incr(RATE_PREFIX + who, ttl=60) > self.rate:
            return _reply(429, "too many reports\n", ("retry-after", "60"))
        if self.max_per_minute is not None:
            minute = int(time.time() // 60)
            if self.store.incr(f"{SITE_RATE_PREFIX}{minute}", ttl=120) > self.max_per_minute:
                return _reply(429, "too many reports\n", ("retry-after", "60"))
        try:
            doc = json.loads(bytes(body))
        except (ValueError, RecursionError):  # JSON, UTF-8 and huge-integer errors
            return _reply(400, "malformed JSON\n")
        agent = view.header("user-agent") or ""
        now = time.time()
        if media == "application/csp-report":
            inner = doc.get("csp-report") if isinstance(doc, dict) else None
            if not isinstance(inner, dict):
                return _reply(400, 'expected {"csp-report": {...}}\n')
            records = [self._record(inner, _LEGACY, "csp-report", agent, now, client)]
        else:
            if not isinstance(doc, list):
                return _reply(400, "expected a JSON list of reports\n")
            records = []
            for item in doc:
                if not isinstance(item, dict) or item.get("type") != "csp-violation":
                    continue
                inner = item.get("body")
                if not isinstance(inner, dict):
                    continue
                ua = item.get("user_agent")
                ua = ua if isinstance(ua, str) else agent
                record = self._record(inner, _REPORTING, "reports+json", ua, now, client)
                if not record["document_uri"]:
                    record["document_uri"] = _text(item.get("url"), _CAPS["document_uri"])
                records.append(record)
                if len(records) >= MAX_REPORTS_PER_REQUEST:
                    break
        for record in records:
            self._records.append(record, now)
            events.emit(
                "csp.report",
                logging.INFO,
                client=client,
                document_uri=record["document_uri"],
                directive=record["effective_directive"] or record["violated_directive"],
                blocked_uri=record["blocked_uri"],
                disposition=record["disposition"],
            )
        return Reply(204, [("cache-control", "no-store")])

    @staticmethod
    def _record(
        raw: dict[str, Any],
        names: dict[str, str],
        fmt: str,
        agent: str,
        now: float,
        client: str | None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "received": now,
            "client": None if client is None else _text(client, 64),
            "format": fmt,
        }
        for name in FIELDS[3:]:
            record[name] = None if name in _INT_FIELDS else ""
        _normalise(raw, names, record)
        record["user_agent"] = _text(agent, _CAPS["user_agent"])
        return record


def list_reports(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Return up to *limit* stored reports, newest first (records as stored)."""
    return read_records(store, REPORT_PREFIX, limit)
