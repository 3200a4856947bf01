"""Security events: emit and its sinks, the store recorder, Prometheus metrics, Fail2Ban."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sitewarden import events
from sitewarden.errors import ConfigError, StoreUnavailableError
from sitewarden.events import KNOWN_EVENTS, REDACTED, add_sink, emit, remove_sink
from sitewarden.events_store import (
    EVENT_PREFIX,
    MAX_NAMES,
    MAX_TEXT,
    SEQUENCE_KEY,
    EventRecorder,
    recent,
)
from sitewarden.metrics import MAX_EVENT_NAMES, Metrics
from sitewarden.store import Store, open_store
from sitewarden.store.log import RecordLog
from sitewarden.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_leftover_sinks() -> Iterator[None]:
    """Every test starts and ends with no sink registered (sinks are process-wide)."""
    before = events.sinks()
    for sink in before:
        remove_sink(sink)
    yield
    for sink in events.sinks():
        remove_sink(sink)
    for sink in before:
        add_sink(sink)


def logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == events.LOGGER_NAME]


class Collect:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[Mapping[str, Any], int]] = []

    def __call__(self, record: Mapping[str, Any], level: int) -> None:
        self.got.append((record, level))


# -- emit and sinks ----------------------------------------------------------------------


def test_logger_line_is_json_with_fixed_field_order(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=events.LOGGER_NAME)
    before = time.time()
    emit("login.failure", logging.WARNING, client="192.0.2.7", login="alice", user=None)
    [record] = [r for r in caplog.records if r.name == events.LOGGER_NAME]
    assert record.levelno == logging.WARNING
    doc = json.loads(record.getMessage())
    assert list(doc) == ["event", "time", "client", "login"]  # None fields are left out
    assert doc["event"] == "login.failure" and doc["login"] == "alice"
    assert before - 0.01 <= doc["time"] <= time.time() + 0.01


def test_sinks_get_every_field_and_the_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=events.LOGGER_NAME)
    first, second = Collect(), Collect()
    add_sink(first)
    add_sink(second)
    fields = {"client": "192.0.2.7", "host": "example.org", "method": "POST", "path": "/login"}
    emit("csrf.refused", logging.WARNING, reason="bad token", **fields)
    [(record, level)] = first.got
    assert level == logging.WARNING
    assert dict(record) == logged(caplog)[0]  # the same record the log line shows
    assert {**fields, "reason": "bad token"}.items() <= dict(record).items()
    assert second.got[0][0] == record
    with pytest.raises(TypeError):  # read-only: one sink cannot change what the next sees
        record["client"] = "10.0.0.1"  # type: ignore[index]


def test_sinks_get_events_below_the_loggers_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger=events.LOGGER_NAME)
    sink = Collect()
    add_sink(sink)
    emit("login.success", logging.INFO, user="alice")
    assert logged(caplog) == []
    assert [(r["event"], lv) for r, lv in sink.got] == [("login.success", logging.INFO)]


def test_nothing_listening_returns_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    events.logger.setLevel(logging.CRITICAL)
    try:

        def boom() -> float:
            raise AssertionError("emit built a record although nothing listens")

        monkeypatch.setattr(events.time, "time", boom)
        emit("csrf.refused", logging.WARNING, path="/x")  # must not touch the clock
    finally:
        events.logger.setLevel(logging.NOTSET)


def test_add_sink_twice_and_remove() -> None:
    sink = Collect()
    add_sink(sink)
    add_sink(sink)
    assert events.sinks() == (sink,)
    emit("host.refused", logging.WARNING)
    remove_sink(sink)
    remove_sink(sink)  # not an error
    emit("host.refused", logging.WARNING)
    assert len(sink.got) == 1


def test_failing_sink_never_breaks_emit_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    calls = 0

    def broken(record: Mapping[str, Any], level: int) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("sink bug")

    after = Collect()
    add_sink(broken)
    add_sink(after)
    for _ in range(3):
        emit("ban.added", logging.WARNING, client="192.0.2.9")  # no exception
    assert calls == 3 and len(after.got) == 3  # the sinks after it still get every event
    errors = [r for r in caplog.records if r.name == "sitewarden" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "sink" in errors[0].getMessage()
    assert len(logged(caplog)) == 3  # the logger, first, got them all


def test_emit_from_a_sink_does_not_recurse(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=events.LOGGER_NAME)
    seen: list[str] = []

    def chatty(record: Mapping[str, Any], level: int) -> None:
        seen.append(record["event"])
        emit("inner.event", logging.WARNING)

    add_sink(chatty)
    emit("outer.event", logging.WARNING)
    assert seen == ["outer.event"]  # the nested event went to the log only
    assert [d["event"] for d in logged(caplog)] == ["outer.event", "inner.event"]


@pytest.mark.parametrize(
    "name",
    [
        "password", "new_password", "newPassword", "PASSWORD", "passwd", "secret",
        "client_secret", "token", "csrf_token", "csrftoken", "code", "totp_code",
        "recovery_code", "otp", "cookie", "session_cookie", "api_key", "apiKey",
        "authorization", "credentials", "session-id", "pin",
    ],
)  # fmt: skip
def test_secret_fields_are_redacted_everywhere(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=events.LOGGER_NAME)
    sink = Collect()
    add_sink(sink)
    secret = "hunter2-S3cr3t-123456"
    emit("login.failure", logging.WARNING, login="alice", **{name: secret})
    [line] = [r.getMessage() for r in caplog.records if r.name == events.LOGGER_NAME]
    assert secret not in line
    assert json.loads(line)[name] == REDACTED
    assert sink.got[0][0][name] == REDACTED
    assert sink.got[0][0]["login"] == "alice"


@pytest.mark.parametrize(
    "name",
    [
        "client", "login", "user", "path", "reason", "key", "limit", "status", "until",
        "failures", "counted", "scope", "lock_level", "duration", "address", "left", "level",
        "encoding", "opcode", "pinned", "keyring",
    ],
)  # fmt: skip
def test_ordinary_fields_are_kept(name: str) -> None:
    assert not events.is_secret_field(name)


def test_log_line_cannot_be_forged_or_hide_text(caplog: pytest.LogCaptureFixture) -> None:
    """Attacker text: newlines, C1/ANSI escapes, bidi overrides, a lone surrogate."""
    caplog.set_level(logging.INFO, logger=events.LOGGER_NAME)
    path = '/a\n{"event": "login.success"}\r\x1b[2J\x9b31m\u202egnp.exe\u2028\ud800'
    emit("csrf.refused", logging.WARNING, path=path, login="zoë")
    [line] = [r.getMessage() for r in caplog.records if r.name == events.LOGGER_NAME]
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u202e\ud800]", line)
    line.encode("utf-8")  # a handler writing UTF-8 does not fail
    doc = json.loads(line)
    assert doc["path"] == path  # escaped, not lost
    assert "zoë" in line  # ordinary non-ASCII stays readable


def test_fields_cannot_replace_the_name_or_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=events.LOGGER_NAME)
    sink = Collect()
    add_sink(sink)
    # `level` is a field here (a ban level), not a second value for emit's own level
    emit("ban.added", logging.WARNING, client="192.0.2.1", level=3, event="login.success", time=0)
    [doc] = logged(caplog)
    assert doc["event"] == "ban.added" and doc["time"] > 1e9
    assert (doc["level"], doc["event_"], doc["time_"]) == (3, "login.success", 0)
    assert next(r for r in caplog.records if r.name == events.LOGGER_NAME).levelno == 30
    assert dict(sink.got[0][0]) == doc


def test_unserialisable_field_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=events.LOGGER_NAME)
    loop: list[Any] = []
    loop.append(loop)
    emit("host.refused", logging.WARNING, detail=loop, when=object())
    [doc] = logged(caplog)
    assert doc["event"] == "host.refused"


# -- the record log (shared with the CSP reports) ------------------------------------------


def test_record_log_rejects_bad_settings() -> None:
    store = open_store("memory://")
    with pytest.raises(ConfigError):
        RecordLog(store, "x:", sequence_key="x:seq", ttl=None)
    with pytest.raises(ConfigError):
        RecordLog(store, "x:", sequence_key="x-seq", ttl=None, keep=0)
    with pytest.raises(ConfigError):
        RecordLog(store, "", sequence_key="x-seq", ttl=None)


# -- the recorder ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(name: str, n: int = 0, when: float = 1_795_305_600.0, **fields: Any) -> dict[str, Any]:
    return {"event": name, "time": when, "client": f"192.0.2.{n % 250}", "n": n, **fields}


def second_handle(store: Store, store_url: str) -> Store:
    """Another worker's connection to the same store."""
    return store if store_url == "memory://" else open_store(store_url)


def test_recorder_keeps_the_newest_across_two_workers(store: Store, store_url: str) -> None:
    other = second_handle(store, store_url)
    keep = 20
    workers = [
        EventRecorder(store, keep=keep, burst=1000, clock=Clock()),
        EventRecorder(other, keep=keep, burst=1000, clock=Clock()),
    ]
    total = 55
    for n in range(total):  # the same millisecond: the shared sequence keeps the order
        workers[n % 2](event("login.failure", n), logging.WARNING)
    newest = recent(store, limit=keep)
    assert [r["n"] for r in newest] == list(range(total - 1, total - 1 - keep, -1))
    assert [r["n"] for r in recent(other, limit=3)] == [54, 53, 52]  # both see one log
    sweep = workers[0]._log.sweep_every  # type: ignore[union-attr]
    assert keep <= len(store.keys(EVENT_PREFIX)) <= keep + sweep - 1  # the rest are gone
    assert store.keys(SEQUENCE_KEY) == [SEQUENCE_KEY]  # never listed as an event
    assert newest[0]["severity"] == "warning"
    if other is not store:
        other.close()


def test_recorder_through_emit(store: Store) -> None:
    recorder = EventRecorder(store, clock=Clock())
    add_sink(recorder)
    emit("ban.added", logging.WARNING, client="192.0.2.9", reason="5 breaches", until=123)
    emit("login.success", logging.INFO, user="alice")
    emit("debug.noise", logging.DEBUG)  # below the recorder's level
    got = recent(store)
    assert [r["event"] for r in got] == ["login.success", "ban.added"]
    assert got[1]["client"] == "192.0.2.9" and got[1]["until"] == 123
    assert got[0]["severity"] == "info"


def test_recorder_filters(store: Store) -> None:
    recorder = EventRecorder(store, burst=1000, clock=Clock())
    names = ["login.failure", "login.success", "ban.added", "csrf.refused"]
    for n, name in enumerate(names):
        recorder(event(name, n, when=1_795_305_600.0 + n * 100), logging.WARNING)
    assert [r["event"] for r in recent(store, prefix="login.")] == [
        "login.success",
        "login.failure",
    ]
    assert [r["event"] for r in recent(store, since=1_795_305_600.0 + 150)] == [
        "csrf.refused",
        "ban.added",
    ]
    assert [r["event"] for r in recent(store, limit=1, prefix="ban")] == ["ban.added"]
    assert recent(store, limit=0) == []


def test_recorder_caps_text_and_fields(store: Store) -> None:
    recorder = EventRecorder(store, clock=Clock())
    many = {f"f{i}": i for i in range(100)}
    recorder(event("csrf.refused", path="/" + "a" * 100_000, **many), logging.WARNING)
    [got] = recent(store)
    assert len(got["path"]) == MAX_TEXT
    assert len(got) <= 41  # 40 fields and the severity
    raw = store.get(store.keys(EVENT_PREFIX)[0])
    assert raw is not None and len(raw) < 4 * MAX_TEXT


def test_keep_zero_records_nothing(store: Store) -> None:
    recorder = EventRecorder(store, keep=0)
    recorder(event("ban.added"), logging.WARNING)
    assert store.keys("event") == []


def test_bad_recorder_settings() -> None:
    store = open_store("memory://")
    for kwargs in (
        {"keep": -1},
        {"keep": True},
        {"keep": 1.5},
        {"ttl": 0},
        {"ttl": "7d"},
        {"rate": 0},
        {"rate": float("nan")},
        {"burst": 0},
        {"burst": 0.5},
        {"retry_after": None},
    ):
        with pytest.raises(ConfigError):
            EventRecorder(store, **kwargs)  # type: ignore[arg-type]


class CountingStore(MemoryStore):
    """A memory store that counts writes and can be switched off."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.writes = 0
        self.attempts = 0

    def _check(self) -> None:
        self.attempts += 1
        if self.down:
            raise StoreUnavailableError("store: connection refused")

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        self._check()
        return super().incr(key, amount, ttl)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._check()
        self.writes += 1
        super().set(key, value, ttl)


def test_a_flood_is_budgeted_and_summarised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=events.LOGGER_NAME)
    store = CountingStore()
    clock = Clock()
    recorder = EventRecorder(store, rate=2.0, burst=5, clock=clock)
    add_sink(recorder)
    for n in range(500):  # an attack: 500 refusals within one instant
        emit("csrf.refused", logging.WARNING, client=f"198.51.100.{n % 200}", path="/x")
    emit("ratelimit.refused", logging.WARNING, client="198.51.100.1")
    assert store.writes == 5  # the burst, not 501 writes
    assert recorder.pending_drops == 496
    assert len(logged(caplog)) == 501  # the log still has every one
    clock.now += 0.5  # one token back
    emit("ban.added", logging.WARNING, client="198.51.100.1")
    got = recent(store, limit=10)
    assert [r["event"] for r in got[:2]] == ["ban.added", "events.dropped"]
    summary = got[1]
    assert summary["count"] == summary["over_budget"] == 496
    assert summary["store_unavailable"] == 0
    assert summary["events"] == {"csrf.refused": 495, "ratelimit.refused": 1}
    assert summary["severity"] == "warning" and "496" in summary["reason"]
    assert recorder.pending_drops == 0
    emit("csrf.refused", logging.WARNING)  # over budget again: no second summary yet
    assert [r["event"] for r in recent(store)].count("events.dropped") == 1


def test_budget_refills_at_the_rate() -> None:
    store = CountingStore()
    clock = Clock()
    recorder = EventRecorder(store, rate=20.0, burst=100, clock=clock)
    for _second in range(10):
        for n in range(200):
            recorder(event("csrf.refused", n), logging.WARNING)
        clock.now += 1.0
    # 100 at once, then 20 a second (plus one summary write per second)
    assert store.writes == 100 + 9 * (20 + 1)


def test_budget_holds_across_threads() -> None:
    store = CountingStore()
    recorder = EventRecorder(store, rate=1.0, burst=50, clock=Clock())
    add_sink(recorder)

    def flood() -> None:
        for n in range(200):
            emit("csrf.refused", logging.WARNING, client=f"198.51.100.{n}")

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.writes == 50  # never more than the burst, however many threads
    assert recorder.pending_drops == 8 * 200 - 50  # and no event went uncounted


def test_summary_names_are_bounded() -> None:
    store = CountingStore()
    recorder = EventRecorder(store, burst=1, clock=Clock())
    for n in range(500):
        recorder(event(f"made.up{n}"), logging.WARNING)
    assert recorder.flush()
    summary = recent(store)[0]
    assert summary["count"] == 499 and len(summary["events"]) <= MAX_NAMES
    assert sum(summary["events"].values()) == 499


def test_flush_writes_the_pending_summary() -> None:
    store = CountingStore()
    recorder = EventRecorder(store, burst=1, clock=Clock())
    recorder(event("csrf.refused"), logging.WARNING)
    recorder(event("csrf.refused"), logging.WARNING)
    assert recorder.flush() is True
    assert recent(store)[0]["event"] == "events.dropped"
    assert recorder.flush() is False  # nothing pending


def test_store_down_never_raises_and_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = CountingStore()
    clock = Clock()
    recorder = EventRecorder(store, retry_after=5.0, clock=clock)
    add_sink(recorder)
    store.down = True
    for _ in range(10):
        emit("login.failure", logging.WARNING, client="192.0.2.7")  # no exception
    assert len(logged(caplog)) == 10  # every event still reached the logger
    assert store.attempts == 1  # then the dead store was left alone
    errors = [r for r in caplog.records if r.name == "sitewarden" and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "not being recorded" in errors[0].getMessage()
    clock.now += 6
    emit("login.failure", logging.WARNING, client="192.0.2.7")  # retried, still down
    assert store.attempts == 2
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    store.down = False
    clock.now += 6
    emit("login.success", logging.INFO, user="alice")
    got = recent(store)
    assert [r["event"] for r in got] == ["login.success", "events.dropped"]
    assert got[1]["store_unavailable"] == 11 and got[1]["events"] == {"login.failure": 11}
    assert any("again" in r.getMessage() for r in caplog.records if r.name == "sitewarden")


@pytest.mark.redis
def test_real_redis_down_never_raises(redis_server: Any, redis_url: str) -> None:
    store = open_store(redis_url)
    recorder = EventRecorder(store, clock=Clock())
    add_sink(recorder)
    emit("ban.added", logging.WARNING, client="192.0.2.1")
    assert [r["client"] for r in recent(store)] == ["192.0.2.1"]
    redis_server.stop()
    try:
        emit("ban.added", logging.WARNING, client="192.0.2.2")  # no exception
        assert recorder.pending_drops == 1
    finally:
        redis_server.start()
        store.close()


# -- metrics ---------------------------------------------------------------------------


def test_metrics_count_events_and_expose_them() -> None:
    metrics = Metrics()
    add_sink(metrics)
    for _ in range(3):
        emit("login.failure", logging.WARNING, client="192.0.2.7")
    emit("login.success", logging.INFO, user="alice")
    emit("custom.event", logging.DEBUG)  # every level is counted
    assert metrics.count("login.failure") == 3
    assert metrics.count("custom.event") == 1
    body, content_type = metrics.exposition()
    text = body.decode()
    assert content_type.startswith("text/plain; version=")
    assert "# TYPE sitewarden_events_total counter" in text
    assert 'sitewarden_events_total{event="login.failure"} 3.0' in text
    assert 'sitewarden_events_total{event="login.success"} 1.0' in text
    assert 'sitewarden_events_total{event="ban.added"} 0.0' in text  # known: zero from start


def test_two_metrics_are_independent() -> None:
    first, second = Metrics(), Metrics()  # two Wardens in one process: no collision
    first({"event": "ban.added"}, logging.WARNING)
    first({"event": "ban.added"}, logging.WARNING)
    second({"event": "ban.added"}, logging.WARNING)
    assert (first.count("ban.added"), second.count("ban.added")) == (2.0, 1.0)
    assert first.registry is not second.registry
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("sitewarden_events_total", {"event": "ban.added"}) is None


def test_metrics_label_values_are_bounded() -> None:
    metrics = Metrics(events=())
    for n in range(MAX_EVENT_NAMES + 50):
        metrics({"event": f"made.up{n}"}, logging.WARNING)
    metrics({"event": None}, logging.WARNING)
    text = metrics.exposition()[0].decode()
    assert text.count("sitewarden_events_total{") == MAX_EVENT_NAMES + 1  # + "other"
    assert metrics.count("other") == 51  # 50 over the cap and the nameless one


def test_metrics_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    with pytest.raises(ConfigError, match=r"pip install 'sitewarden\[metrics\]'"):
        Metrics()


# -- Fail2Ban --------------------------------------------------------------------------

# Fail2Ban's own expansion of its address tags (fail2ban/server/failregex.py, R_HOST), and
# of the "{^LN-BEG}EPOCH" date pattern it cuts from the line before matching.
F2B_IP4 = r"(?:\d{1,3}\.){3}\d{1,3}"
F2B_IP6 = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)"
F2B_TAGS = {
    "<SUBNET>": rf"\[?(?:(?:::f{{4,6}}:)?(?P<ip4>{F2B_IP4})|(?P<ip6>{F2B_IP6}))"
    r"(?:/(?P<cidr>\d+))?\]?",
    "<ADDR>": rf"\[?(?:(?:::f{{4,6}}:)?(?P<ip4>{F2B_IP4})|(?P<ip6>{F2B_IP6}))\]?",
}
F2B_EPOCH = re.compile(r"^\d{10,11}\b(?:\.\d{3,6})?")


def documented(setting: str) -> str:
    """The value of *setting* in the Fail2Ban filter shown in docs/events.md."""
    text = (ROOT / "docs" / "events.md").read_text()
    match = re.search(rf"^{setting} = (.+)$", text, re.MULTILINE)
    assert match, f"docs/events.md has no '{setting} = …' line"
    return match.group(1).strip()


def fail2ban(line: str) -> str | None:
    """Return the address Fail2Ban would ban for *line*, or None (as Fail2Ban matches)."""
    assert documented("datepattern") == "{^LN-BEG}EPOCH"
    date = F2B_EPOCH.search(line)
    assert date, "no date for Fail2Ban in the line"
    rest = line[: date.start()] + line[date.end() :]  # Fail2Ban cuts the date out
    failregex = documented("failregex")
    for tag, expansion in F2B_TAGS.items():
        failregex = failregex.replace(tag, expansion)
    match = re.compile(failregex).search(rest)
    if match is None:
        return None
    address = match.group("ip4") or match.group("ip6")
    cidr = match.groupdict().get("cidr")
    return f"{address}/{cidr}" if cidr else address


@pytest.fixture
def log_file() -> Iterator[io.StringIO]:
    """The events logger written as documented: '%(created).3f %(message)s'."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(documented("format")))
    events.logger.addHandler(handler)
    events.logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        events.logger.removeHandler(handler)
        events.logger.setLevel(logging.NOTSET)


def test_fail2ban_filter_matches_the_emitted_lines(log_file: io.StringIO) -> None:
    emit("login.failure", logging.WARNING, client="203.0.113.5", login="root", path="/login")
    emit("ratelimit.refused", logging.WARNING, client="2001:db8::7", path="/api", reason="10/m")
    emit("ban.added", logging.WARNING, client="::ffff:198.51.100.9", reason="5 breaches")
    emit("login.success", logging.INFO, client="203.0.113.77", user="alice")
    emit("csrf.refused", logging.WARNING, client="203.0.113.78", path="/form")
    emit("ban.removed", logging.INFO, client="203.0.113.79")
    emit("ratelimit.refused", logging.WARNING, client="2001:db8:1:2::/64", path="/api")
    emit("ratelimit.refused", logging.WARNING, client="unknown", path="/api")
    emit("login.failure", logging.WARNING, login="bob", reason="no client address")
    found = [fail2ban(line) for line in log_file.getvalue().splitlines()]
    assert found == [
        "203.0.113.5",
        "2001:db8::7",
        "198.51.100.9",
        None,
        None,
        None,
        "2001:db8:1:2::/64",  # the rate limiter's IPv6 network: banned as a whole
        None,
        None,
    ]


def test_fail2ban_filter_cannot_be_pointed_at_another_address(log_file: io.StringIO) -> None:
    """An attacker puts a victim's address in the fields they control."""
    forged = '", "client": "192.0.2.250'
    emit(
        "login.failure",
        logging.WARNING,
        client="203.0.113.66",
        login=f'x"client": "192.0.2.250"{forged}',
        path='/"event": "ban.added", "client": "192.0.2.251"\n{"event": "ban.added"',
    )
    emit(  # the attacker's fields come before the real client
        "ratelimit.refused",
        logging.WARNING,
        login='", "client": "192.0.2.253", "x": "',
        path='/\\", "client": "192.0.2.254',
        client="203.0.113.68",
    )
    emit(
        "csrf.refused",
        logging.WARNING,
        client="203.0.113.67",
        path='/x", "event": "login.failure", "client": "192.0.2.252',
    )
    lines = log_file.getvalue().splitlines()
    assert len(lines) == 3  # no forged extra line
    assert [fail2ban(line) for line in lines] == ["203.0.113.66", "203.0.113.68", None]


# -- the docs list every event ---------------------------------------------------------


def test_every_emitted_event_is_known_and_documented() -> None:
    pattern = re.compile(r"""(?:_event|emit)\(\s*["']([a-z_]+\.[a-z_]+)["']""")
    emitted = {
        name
        for path in (ROOT / "src" / "sitewarden").rglob("*.py")
        for name in pattern.findall(path.read_text())
    }
    assert "csrf.refused" in emitted  # the scan works
    docs = (ROOT / "docs" / "events.md").read_text()
    assert not emitted - set(KNOWN_EVENTS), "add these to KNOWN_EVENTS and docs/events.md"
    missing = [name for name in KNOWN_EVENTS if f"`{name}`" not in docs]
    assert not missing, f"docs/events.md does not describe {missing}"
