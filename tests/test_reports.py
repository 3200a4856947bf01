"""The CSP report receiver: both formats, limits, refusals, hostile bodies."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden.errors import StoreUnavailableError
from sitewarden.policy import Policy, load_policy
from sitewarden.reports import (
    FIELDS,
    MAX_REPORTS_PER_REQUEST,
    REPORT_PREFIX,
    REPORT_TTL,
    ReportReceiver,
    list_reports,
)
from sitewarden.store import Store, open_store
from sitewarden.web.request import RequestView

LEGACY = "application/csp-report"
REPORTING = "application/reports+json"
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"

LEGACY_BODY = {
    "csp-report": {
        "document-uri": "https://example.org/page",
        "referrer": "https://example.org/",
        "violated-directive": "script-src-elem",
        "effective-directive": "script-src-elem",
        "original-policy": "default-src 'self'; report-uri /.sitewarden/csp-report",
        "disposition": "enforce",
        "blocked-uri": "https://evil.example/x.js",
        "line-number": 12,
        "column-number": 4,
        "source-file": "https://example.org/app.js",
        "status-code": 200,
        "script-sample": "",
    }
}

REPORTING_BODY = [
    {
        "type": "csp-violation",
        "age": 10,
        "url": "https://example.org/other",
        "user_agent": "Chrome/140",
        "body": {
            "documentURL": "https://example.org/other",
            "referrer": "",
            "blockedURL": "inline",
            "effectiveDirective": "style-src-attr",
            "originalPolicy": "style-src 'self'",
            "sourceFile": "https://example.org/other",
            "sample": "color: red",
            "disposition": "report",
            "statusCode": 200,
            "lineNumber": 3,
            "columnNumber": 9,
        },
    },
    {"type": "deprecation", "url": "https://example.org/", "body": {"id": "x"}},
]


@pytest.fixture
def store() -> Store:
    return open_store("memory://")


@pytest.fixture
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def receiver(policy: Policy, store: Store) -> ReportReceiver:
    return ReportReceiver(policy, store)


def view(ctype: str | None = LEGACY, method: str = "POST", ua: str = UA) -> RequestView:
    headers = {"user-agent": ua}
    if ctype is not None:
        headers["content-type"] = ctype
    return RequestView(method, "https", "example.org", "/.sitewarden/csp-report", headers=headers)


def post(receiver: ReportReceiver, body: object, ctype: str = LEGACY, client: str = "192.0.2.1"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return receiver.handle(view(ctype), raw, client)


def test_legacy_report_is_stored_and_listed(receiver: ReportReceiver, store: Store) -> None:
    before = time.time()
    reply = post(receiver, LEGACY_BODY, "application/csp-report; charset=utf-8")
    assert reply.status == 204 and reply.body == b""
    [report] = list_reports(store)
    assert set(report) == set(FIELDS)
    assert report["format"] == "csp-report"
    assert report["document_uri"] == "https://example.org/page"
    assert report["violated_directive"] == report["effective_directive"] == "script-src-elem"
    assert report["blocked_uri"] == "https://evil.example/x.js"
    assert report["source_file"] == "https://example.org/app.js"
    assert (report["line"], report["column"], report["status_code"]) == (12, 4, 200)
    assert report["disposition"] == "enforce"
    assert report["user_agent"] == UA
    assert report["client"] == "192.0.2.1"
    assert before <= report["received"] <= time.time()


def test_reporting_api_report_is_stored_and_listed(receiver: ReportReceiver, store: Store) -> None:
    assert post(receiver, REPORTING_BODY, REPORTING).status == 204
    [report] = list_reports(store)  # the deprecation report is ignored
    assert report["format"] == "reports+json"
    assert report["document_uri"] == "https://example.org/other"
    assert report["effective_directive"] == report["violated_directive"] == "style-src-attr"
    assert report["blocked_uri"] == "inline"
    assert report["sample"] == "color: red"
    assert report["disposition"] == "report"
    assert (report["line"], report["column"]) == (3, 9)
    assert report["user_agent"] == "Chrome/140"  # the report's own, over the header


def test_csp2_violated_directive_only(receiver: ReportReceiver, store: Store) -> None:
    body = {
        "csp-report": {"document-uri": "https://e.org/", "violated-directive": "img-src 'self'"}
    }
    assert post(receiver, body).status == 204
    [report] = list_reports(store)
    assert report["violated_directive"] == "img-src 'self'"
    assert report["effective_directive"] == "img-src"
    assert report["line"] is None and report["blocked_uri"] == ""


def test_reports_are_listed_newest_first_with_limit(receiver: ReportReceiver, store: Store) -> None:
    for i in range(5):
        body = {"csp-report": {"document-uri": f"https://e.org/{i}"}}
        assert post(receiver, body).status == 204
        time.sleep(0.002)
    listed = [r["document_uri"] for r in list_reports(store)]
    assert listed == [f"https://e.org/{i}" for i in reversed(range(5))]
    assert [r["document_uri"] for r in list_reports(store, limit=2)] == listed[:2]
    assert list_reports(store, limit=0) == []
    keys = store.keys(REPORT_PREFIX)
    assert all(re.fullmatch(r"csp-report:\d{13}:[0-9a-f]{12}", k) for k in keys)


def test_reports_expire_after_30_days(policy: Policy) -> None:
    calls: list[tuple[str, float | None]] = []

    class Recording(type(open_store("memory://"))):  # type: ignore[misc]
        def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
            calls.append((key, ttl))
            super().set(key, value, ttl)

    receiver = ReportReceiver(policy, Recording())
    assert post(receiver, LEGACY_BODY).status == 204
    assert calls and calls[0][1] == REPORT_TTL == 30 * 86400


def test_fields_are_capped_and_cleaned(receiver: ReportReceiver, store: Store) -> None:
    body = {
        "csp-report": {
            "document-uri": "https://e.org/" + "a" * 10_000,
            "blocked-uri": "https://x/\x1b[31mred\x1b[0m\u202eevil\ud800",
            "line-number": "12",
            "column-number": True,
            "status-code": 10**12,
            "violated-directive": {"nested": 1},
        }
    }
    assert post(receiver, body).status == 204
    [report] = list_reports(store)
    assert len(report["document_uri"]) == 2048
    assert report["blocked_uri"] == "https://x/[31mred[0mevil"
    assert report["line"] is None and report["column"] is None and report["status_code"] is None
    assert report["violated_directive"] == ""


def test_batch_is_capped(receiver: ReportReceiver, store: Store) -> None:
    item = REPORTING_BODY[0]
    assert post(receiver, [item] * (MAX_REPORTS_PER_REQUEST + 10), REPORTING).status == 204
    assert len(list_reports(store, limit=1000)) == MAX_REPORTS_PER_REQUEST


# -- refusals ----------------------------------------------------------------------------


def test_too_large_is_413(receiver: ReportReceiver, policy: Policy, store: Store) -> None:
    body = b"{" + b" " * policy.csp_report_max_bytes + b"}"
    assert post(receiver, body).status == 413
    exact = json.dumps({"csp-report": {"document-uri": "x"}}).encode()
    exact = exact[:-1] + b" " * (policy.csp_report_max_bytes - len(exact)) + b"}"
    assert len(exact) == policy.csp_report_max_bytes
    assert post(receiver, exact).status == 204


def test_rate_limit_is_429_with_retry_after(store: Store) -> None:
    receiver = ReportReceiver(load_policy(csp_report_rate=3), store)
    assert [post(receiver, LEGACY_BODY).status for _ in range(3)] == [204] * 3
    reply = post(receiver, LEGACY_BODY)
    assert reply.status == 429
    assert int(dict(reply.headers)["retry-after"]) > 0
    assert post(receiver, LEGACY_BODY, client="192.0.2.2").status == 204  # per address
    assert len(list_reports(store)) == 4


def test_site_wide_cap(store: Store) -> None:
    receiver = ReportReceiver(load_policy(), store, max_per_minute=2)
    statuses = [post(receiver, LEGACY_BODY, client=f"192.0.2.{i}").status for i in range(4)]
    assert statuses[:2] == [204, 204]
    assert 429 in statuses[2:]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS", "HEAD"])
def test_other_methods_are_405(receiver: ReportReceiver, method: str) -> None:
    reply = receiver.handle(
        RequestView(method, "https", "e.org", "/r", headers={"content-type": LEGACY}), b"", None
    )
    assert reply.status == 405
    assert dict(reply.headers)["allow"] == "POST"


@pytest.mark.parametrize(
    "ctype",
    [None, "", "application/json", "text/plain", "application/csp-reportx", "multipart/form-data"],
)
def test_other_types_are_415(receiver: ReportReceiver, ctype: str | None) -> None:
    reply = receiver.handle(view(ctype), json.dumps(LEGACY_BODY).encode(), "192.0.2.1")
    assert reply.status == 415


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        (LEGACY, b""),
        (LEGACY, b"not json"),
        (LEGACY, b"\xff\xfe{}"),
        (LEGACY, b"[" * 5000 + b"]" * 5000),
        (LEGACY, b"1" * 5000),
        (LEGACY, b'{"csp-report": 1}'),
        (LEGACY, b"[]"),
        (LEGACY, b'"csp-report"'),
        (REPORTING, b'{"type": "csp-violation"}'),
        (REPORTING, b"null"),
    ],
)
def test_junk_is_400(receiver: ReportReceiver, store: Store, ctype: str, body: bytes) -> None:
    reply = receiver.handle(view(ctype), body, "192.0.2.1")
    assert reply.status == 400
    assert list_reports(store) == []


def test_store_failure_is_503(policy: Policy) -> None:
    class Down(type(open_store("memory://"))):  # type: ignore[misc]
        def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
            raise StoreUnavailableError("down")

    reply = ReportReceiver(policy, Down()).handle(view(), json.dumps(LEGACY_BODY).encode(), None)
    assert reply.status == 503


def test_unknown_client_shares_one_bucket(store: Store) -> None:
    receiver = ReportReceiver(load_policy(csp_report_rate=1), store)
    raw = json.dumps(LEGACY_BODY).encode()
    assert receiver.handle(view(), raw, None).status == 204
    assert receiver.handle(view(), raw, None).status == 429
    [report] = list_reports(store)
    assert report["client"] is None


# -- hostile bodies ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=400)
    | json_values.map(lambda v: json.dumps(v).encode())
    | json_values.map(lambda v: json.dumps({"csp-report": v}).encode())
    | json_values.map(lambda v: json.dumps([{"type": "csp-violation", "body": v}]).encode()),
    ctype=st.sampled_from([LEGACY, REPORTING, "text/plain"]),
    method=st.sampled_from(["POST", "GET"]),
)
def test_arbitrary_bodies_never_raise(body: bytes, ctype: str, method: str) -> None:
    store = open_store("memory://")
    receiver = ReportReceiver(load_policy(csp_report_rate=10**6), store)
    request = RequestView(method, "https", "e.org", "/r", headers={"content-type": ctype})
    # the inner method, so that the catch-all in handle() is not what keeps it quiet
    reply = receiver._handle(request, body, "192.0.2.1")
    assert reply.status in (204, 400, 405, 413, 415)
    for report in list_reports(store, limit=100):
        assert set(report) == set(FIELDS)
        json.dumps(report).encode()  # storable and printable


def test_reports_of_the_same_millisecond_list_newest_first(
    receiver: ReportReceiver, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrival order is kept even when the clock does not move between reports."""
    monkeypatch.setattr(time, "time", lambda: 1_795_305_600.0)
    for n in range(12):
        body = {"csp-report": {"document-uri": f"https://example.org/{n}"}}
        assert post(receiver, body, client=f"192.0.2.{n}").status == 204
    uris = [r["document_uri"] for r in list_reports(store, limit=12)]
    assert uris == [f"https://example.org/{n}" for n in reversed(range(12))]


def test_each_stored_report_is_a_security_event() -> None:
    """CSP reports reach the event sinks (and so `sitewarden events` and metrics)."""
    from sitewarden import events
    from sitewarden.policy import load_policy
    from sitewarden.reports import ReportReceiver
    from sitewarden.store import open_store
    from sitewarden.web.request import RequestView

    seen: list[dict[str, object]] = []

    def sink(record: object, level: int) -> None:
        seen.append(dict(record))  # type: ignore[call-overload]

    events.add_sink(sink)
    try:
        receiver = ReportReceiver(load_policy(), open_store("memory://"))
        body = json.dumps(
            {
                "csp-report": {
                    "document-uri": "https://example.org/page",
                    "violated-directive": "script-src-elem",
                    "blocked-uri": "https://evil.example/x.js",
                }
            }
        ).encode()
        view = RequestView(
            method="POST",
            scheme="https",
            host="example.org",
            path="/.sitewarden/csp-report",
            headers={"content-type": "application/csp-report"},
            client="192.0.2.8",
        )
        assert receiver.handle(view, body, "192.0.2.8").status == 204
    finally:
        events.remove_sink(sink)
    reports = [e for e in seen if e["event"] == "csp.report"]
    assert len(reports) == 1
    assert reports[0]["blocked_uri"] == "https://evil.example/x.js"
    assert reports[0]["client"] == "192.0.2.8"
