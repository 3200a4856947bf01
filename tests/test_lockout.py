"""Login lockout: every rule with an injected clock, on memory, SQLite and a real Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sitewarden.guards.lockout import (
    ACCOUNT_PREFIX,
    ADDRESS_PREFIX,
    FINGERPRINTS_KEPT,
    Lockout,
    LockoutStatus,
    LockRecord,
    address_bucket,
    normalise_login,
)
from sitewarden.keyring import KeyManager
from sitewarden.policy import load_policy
from sitewarden.store import Store, open_store
from tests.conftest import store_url_for

START = 1_000_000.0
A = "192.0.2.10"
B = "198.51.100.20"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(store: Store, clock: Clock | None = None, **settings: Any) -> Lockout:
    return Lockout(load_policy(**settings), store, KeyManager.open(store), clock=clock or Clock())


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "sitewarden.events"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="sitewarden.events")
    yield caplog


def address_failures(store: Store, address: str) -> int:
    """The failures stored for *address* (0 if none)."""
    raw = store.get(ADDRESS_PREFIX + address)
    return 0 if raw is None else len(json.loads(raw)["failures"])


def fail(lockout: Lockout, n: int, login: str = "alice", address: str | None = A) -> list[Any]:
    """*n* failures with distinct passwords; return the statuses."""
    return [lockout.failure(login, address, f"wrong-{login}-{i}") for i in range(n)]


# -- counting per account ------------------------------------------------------------


def test_locks_at_exactly_the_threshold(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    statuses = fail(lockout, 4)
    assert [s.failures for s in statuses] == [1, 2, 3, 4]
    assert [s.attempts_left for s in statuses] == [4, 3, 2, 1]
    assert not any(s.locked for s in statuses)
    assert all(s.scope is None and s.retry_after == 0 for s in statuses)
    fifth = lockout.failure("alice", A, "wrong-5")
    assert fifth == LockoutStatus(True, 5, 300, 0, "account")
    # The account is locked for everyone, whatever their address.
    assert lockout.status("alice", B) == LockoutStatus(True, 5, 300, 0, "account")
    assert lockout.status("alice", None).locked
    assert not lockout.status("bob", A).locked


def test_retry_after_counts_down_rounded_up_and_lock_ends(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    fail(lockout, 5)
    clock.advance(0.4)
    assert lockout.status("alice", A).retry_after == 300  # 299.6 s rounds up
    clock.advance(298.6)
    assert lockout.status("alice", A).retry_after == 1
    clock.advance(1)
    after = lockout.status("alice", A)
    # The lock's end also ends its failures: a fresh set of attempts.
    assert after == LockoutStatus(False, 0, 0, 5, None)
    assert lockout.failure("alice", A, "again").failures == 1


def test_window_is_sliding(store: Store, clock: Clock) -> None:
    lockout = make(store, clock, lockout_window=100)
    lockout.failure("alice", None, "p1")
    clock.advance(60)
    lockout.failure("alice", None, "p2")
    lockout.failure("alice", None, "p3")
    clock.advance(40)  # the first failure is now exactly one window old: gone
    assert lockout.status("alice", None).failures == 2
    lockout.failure("alice", None, "p4")
    lockout.failure("alice", None, "p5")
    assert not lockout.status("alice", None).locked  # 4 within the last 100 s
    clock.advance(60)  # p2, p3 leave the window
    assert lockout.status("alice", None).failures == 2


def test_escalating_lock_durations_are_capped(store: Store, clock: Clock) -> None:
    lockout = make(
        store, clock, lockout_threshold=2, lockout_duration=100, lockout_max_duration=350
    )
    seen = []
    for _ in range(5):
        status = fail(lockout, 2, address=None)[-1]
        assert status.locked
        seen.append(status.retry_after)
        clock.advance(status.retry_after)
    assert seen == [100, 200, 350, 350, 350]
    assert lockout.locked() == []


def test_escalation_starts_over_after_max_duration_in_peace(store: Store, clock: Clock) -> None:
    lockout = make(
        store, clock, lockout_threshold=2, lockout_duration=100, lockout_max_duration=1000
    )
    assert fail(lockout, 2, address=None)[-1].retry_after == 100
    clock.advance(100 + 999)  # still within max_duration of the lock's end
    assert fail(lockout, 2, address=None)[-1].retry_after == 200
    clock.advance(200 + 1000)
    assert fail(lockout, 2, address=None)[-1].retry_after == 100


def test_attempts_during_a_lock_are_not_counted_and_do_not_extend(
    store: Store, clock: Clock
) -> None:
    lockout = make(store, clock)
    fail(lockout, 5)
    clock.advance(100)
    during = fail(lockout, 10, login="alice", address=B)
    assert all(s == LockoutStatus(True, 5, 200, 0, "account") for s in during)
    # Not counted against the other address either: the view refused them unchecked.
    assert address_failures(store, B) == 0
    clock.advance(200)
    assert lockout.status("alice", A) == LockoutStatus(False, 0, 0, 5, None)


def test_extend_on_attempt_restarts_the_lock(store: Store, clock: Clock) -> None:
    lockout = make(store, clock, lockout_extend_on_attempt=True)
    fail(lockout, 5)
    clock.advance(250)
    assert lockout.status("alice", A).retry_after == 50
    assert lockout.failure("alice", A, "more").retry_after == 300
    clock.advance(299)
    assert lockout.status("alice", A).locked
    clock.advance(1)
    assert not lockout.status("alice", A).locked


# -- repeated passwords --------------------------------------------------------------


def test_a_repeated_wrong_password_is_counted_once(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    for _ in range(10):
        status = lockout.failure("alice", A, "Summer2024")
    assert status.failures == 1 and not status.locked
    assert lockout.failure("alice", A, "Summer2025").failures == 2
    assert lockout.failure("ALICE ", A, "Summer2024").failures == 2  # same login, normalised
    # The fingerprint covers the login: the same password on another account counts.
    assert lockout.failure("bob", A, "Summer2024").failures == 1
    # Without a password there is nothing to compare: each failure counts.
    assert lockout.failure("carol", A).failures == 1
    assert lockout.failure("carol", A).failures == 2
    # Past the window the fingerprint is gone with its failure: the repeat counts again.
    clock.advance(900)
    assert lockout.failure("alice", A, "Summer2024").failures == 1


def test_repeats_do_not_count_against_the_address_either(store: Store, clock: Clock) -> None:
    lockout = make(store, clock, lockout_address_threshold=3)
    for _ in range(10):
        lockout.failure("alice", A, "same")
    assert lockout.status("bob", A).attempts_left == 2


def test_fingerprints_are_keyed_and_never_the_password(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    password = "correct horse battery"
    lockout.failure("Alice", A, password)
    raw = b"".join(store.get(k) or b"" for k in store.keys("lockout:"))
    assert password.encode() not in raw
    for plain in (password, "alice" + password, "alice\0" + password):
        for algorithm in ("sha256", "md5", "sha1"):
            assert hashlib.new(algorithm, plain.encode()).hexdigest()[:32].encode() not in raw
    (key,) = store.keys(ACCOUNT_PREFIX)
    stored = json.loads(store.get(key) or b"")["prints"][0][1]
    secret = lockout.keys.secret("system")
    message = b"sitewarden lockout fingerprint v1\0" + (5).to_bytes(4, "big") + b"alice"
    message += password.encode()
    assert hmac.compare_digest(stored, hmac.digest(secret, message, "sha256")[:16].hex())


def test_a_repeat_is_recognised_after_the_system_ring_rotates(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    lockout.failure("alice", A, "pw")
    lockout.keys.rotate("system")
    assert lockout.failure("alice", A, "pw").failures == 1
    assert lockout.failure("alice", A, "pw2").failures == 2


def test_fingerprints_are_bounded(store: Store, clock: Clock) -> None:
    lockout = make(store, clock, lockout_threshold=100, lockout_address_threshold=100)
    for i in range(FINGERPRINTS_KEPT + 1):
        lockout.failure("alice", A, f"pw{i}")
    (key,) = store.keys(ACCOUNT_PREFIX)
    assert len(json.loads(store.get(key) or b"")["prints"]) == FINGERPRINTS_KEPT
    assert lockout.failure("alice", A, f"pw{FINGERPRINTS_KEPT}").failures == 21  # kept: repeat
    assert lockout.failure("alice", A, "pw0").failures == 22  # forgotten: counted (fail safe)


# -- success -------------------------------------------------------------------------


def test_success_clears_the_account_but_not_the_address(store: Store, clock: Clock) -> None:
    lockout = make(store, clock, lockout_address_threshold=6)
    fail(lockout, 4)
    lockout.success("alice", A)
    assert lockout.status("alice", B) == LockoutStatus(False, 0, 0, 5, None)
    assert address_failures(store, A) == 4  # the address still remembers them
    assert lockout.status("bob", A).attempts_left == 2


def test_signing_in_to_its_own_account_does_not_reset_an_attackers_count(
    store: Store, clock: Clock
) -> None:
    """Attack: guess, then log in to one's own account to wipe the address count."""
    lockout = make(store, clock)
    statuses = []
    for i in range(20):
        statuses.append(lockout.failure(f"victim{i}", A, "123456"))
        lockout.success("attacker", A)
    assert [s.locked for s in statuses] == [False] * 19 + [True]
    assert lockout.status("victim99", A).scope == "address"


def test_success_during_a_lock_changes_nothing(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    fail(lockout, 5)
    lockout.success("alice", A)
    assert lockout.status("alice", A) == LockoutStatus(True, 5, 300, 0, "account")


def test_success_keeps_the_escalation(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    fail(lockout, 5)
    clock.advance(300)
    lockout.success("alice", A)
    assert fail(lockout, 5, address=B)[-1].retry_after == 600


# -- logins --------------------------------------------------------------------------


def test_normalise_login() -> None:
    assert normalise_login("  Admin ") == "admin"
    assert normalise_login("ＡＤＭＩＮ") == "admin"  # full-width forms  # noqa: RUF001
    assert normalise_login("ad\u200bmin\u202e") == "admin"  # zero-width and bidi: removed
    assert normalise_login("STRASSE") == normalise_login("straße")  # full case folding
    assert normalise_login("\u00a0bob\u3000") == "bob"  # NBSP and ideographic space
    assert normalise_login("ｶ") == "カ"  # half-width katakana
    with pytest.raises(TypeError):
        normalise_login(b"admin")  # type: ignore[arg-type]


def test_case_variants_of_a_login_share_one_count(store: Store, clock: Clock) -> None:
    """Attack: five spellings of one login, hoping each gets its own five attempts."""
    lockout = make(store, clock)
    variants = ["Admin", "admin ", "ADMIN", "ＡＤＭＩＮ", "ad\u200bmin"]  # noqa: RUF001
    statuses = [lockout.failure(v, f"203.0.113.{i}", f"pw{i}") for i, v in enumerate(variants)]
    assert [s.failures for s in statuses] == [1, 2, 3, 4, 5]
    assert statuses[-1].locked
    assert lockout.status("aDmIn", B).locked
    assert [r.name for r in lockout.locked()] == ["admin"]


def test_a_custom_normaliser_for_case_sensitive_logins(store: Store, clock: Clock) -> None:
    lockout = Lockout(
        load_policy(), store, KeyManager.open(store), clock=clock, normalise=str.strip
    )
    fail(lockout, 5, login="Alice", address=None)
    assert lockout.status("Alice", None).locked
    assert not lockout.status("alice", None).locked


def test_long_and_odd_logins_get_short_keys(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    odd = "x" * 10_000 + "\ud800*?[]\n\x1b[31m"
    fail(lockout, 5, login=odd, address=None)
    assert lockout.status(odd, None).locked
    (key,) = store.keys(ACCOUNT_PREFIX)
    assert len(key) == len(ACCOUNT_PREFIX) + 32
    (record,) = lockout.locked()
    assert len(record.name) <= 256 and "\ud800" not in record.name


def test_answers_do_not_depend_on_whether_the_login_exists(
    tmp_path: Path, captured: pytest.LogCaptureFixture
) -> None:
    """No enumeration: a login view using the documented pattern, for a real user and a
    made-up one, gives identical answers and writes records of identical shape."""
    users = {"alice": "s3cret-horse"}

    def run(login: str) -> tuple[list[LockoutStatus], list[dict[str, Any]], list[int]]:
        store = open_store(f"sqlite:///{tmp_path}/{login}.db")
        clock = Clock()
        lockout = make(store, clock)
        captured.clear()
        answers = []
        for i in range(8):
            status = lockout.status(login, A)
            if not status.locked:
                stored = users.get(login)
                password = f"guess{i % 3}"
                if stored is not None and password == stored:  # never true here
                    lockout.success(login, A)
                else:
                    status = lockout.failure(login, A, password)
            answers.append(status)
            clock.advance(7)
        answers.append(lockout.status(login, B))
        seen = [
            {k: v for k, v in e.items() if k not in ("time", "login")} for e in events(captured)
        ]
        sizes = [len(store.get(k) or b"") - len(login) for k in store.keys("lockout:")]
        store.close()
        return answers, seen, sizes

    known, unknown = run("alice"), run("zelda")
    assert known == unknown
    # The repeats of guess0..2 were counted once each.
    assert known[0][-1] == LockoutStatus(False, 3, 0, 2, None)


# -- counting per address ------------------------------------------------------------


def test_one_address_guessing_many_accounts_gets_locked(store: Store, clock: Clock) -> None:
    """Attack: password spraying — one common password against many accounts."""
    lockout = make(store, clock)
    statuses = [lockout.failure(f"user{i}", A, "Password1!") for i in range(20)]
    assert [s.locked for s in statuses] == [False] * 19 + [True]
    assert statuses[-1] == LockoutStatus(True, 20, 300, 0, "address")
    assert lockout.status("user99", A).scope == "address"  # every login, from there
    assert not lockout.status("user99", B).locked  # other clients are not affected
    # Attempts from the locked address are not counted against the accounts they name.
    lockout.failure("user0", A, "other")
    assert lockout.status("user0", B).failures == 1
    clock.advance(300)
    assert not lockout.status("user99", A).locked


def test_distributed_guessing_still_locks_the_account(store: Store, clock: Clock) -> None:
    """Attack: a botnet, one guess per address, against one account."""
    lockout = make(store, clock)
    statuses = [lockout.failure("ceo", f"203.0.113.{i}", f"guess{i}") for i in range(5)]
    assert [s.locked for s in statuses] == [False] * 4 + [True]
    assert lockout.status("ceo", "203.0.113.200").locked
    assert lockout.status("ceo", "2001:db8:1::1").locked


def test_ipv6_is_counted_per_64(store: Store, clock: Clock) -> None:
    """Attack: a new IPv6 address per guess from one /64."""
    lockout = make(store, clock, lockout_address_threshold=3)
    for i in range(3):
        lockout.failure(f"user{i}", f"2001:db8:0:1::{i + 1:x}", "pw")
    assert lockout.status("x", "2001:db8:0:1:ffff::1").scope == "address"
    assert not lockout.status("x", "2001:db8:0:2::1").locked
    assert [r.name for r in lockout.locked()] == ["2001:db8:0:1::/64"]
    assert address_bucket("2001:db8:0:1:ffff::1") == "2001:db8:0:1::/64"
    assert address_bucket("2001:db8:0:1:ffff::1", 48) == "2001:db8::/48"
    assert address_bucket("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_bucket("[2001:db8::1]:443") == "2001:db8::/64"
    assert address_bucket("192.0.2.1:8080") == "192.0.2.1"
    assert address_bucket("unknown") is None and address_bucket(None) is None


def test_allow_listed_addresses_are_not_locked_but_accounts_are(store: Store, clock: Clock) -> None:
    lockout = make(store, clock, lockout_allow_networks=["10.0.0.0/8", "2001:db8:5::/48"])
    for i in range(30):
        assert not lockout.failure(f"user{i}", "10.1.2.3", "pw").locked
        assert not lockout.failure(f"other{i}", "2001:db8:5::9", "pw").locked
    assert store.keys(ADDRESS_PREFIX) == []
    assert fail(lockout, 5, login="alice", address="10.1.2.3")[-1].scope == "account"


def test_unknown_or_unparsable_addresses_count_the_account_only(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    for address in (None, "unknown", "", "_hidden", "999.1.1.1"):
        lockout.failure("alice", address, f"pw-{address}")
    assert lockout.status("alice", None).locked
    assert store.keys(ADDRESS_PREFIX) == []
    with pytest.raises(TypeError):
        lockout.failure("alice", 42, "pw")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        lockout.failure(None, A, "pw")  # type: ignore[arg-type]


# -- administration ------------------------------------------------------------------


def test_unlock(store: Store, clock: Clock, captured: pytest.LogCaptureFixture) -> None:
    lockout = make(store, clock)
    fail(lockout, 5)
    assert lockout.unlock("ALICE") is True
    assert lockout.status("alice", A) == LockoutStatus(False, 0, 0, 5, None)
    assert lockout.unlock("alice") is False
    # The escalation is forgotten too: the next lock is a first one.
    assert fail(lockout, 5, address=B)[-1].retry_after == 300
    (unlocked,) = [e for e in events(captured) if e["event"] == "lockout.unlocked"]
    del unlocked["time"]
    assert unlocked == {
        "event": "lockout.unlocked",
        "scope": "account",
        "reason": "admin",
        "login": "alice",
    }


def test_unlock_address(store: Store, clock: Clock) -> None:
    lockout = make(store, clock, lockout_address_threshold=2)
    fail(lockout, 2, address=A)
    fail(lockout, 2, login="bob", address="2001:db8::7")
    assert lockout.unlock_address(A) is True
    assert not lockout.status("x", A).locked
    assert lockout.unlock_address("2001:db8::/64") is True  # as `lockout list` shows it
    assert lockout.unlock_address("2001:db8::9") is False
    fail(lockout, 2, login="carol", address="2001:db8::7")
    assert lockout.unlock_address("2001:db8::1234") is True  # any address of the /64
    with pytest.raises(ValueError, match="not an IP address"):
        lockout.unlock_address("nonsense")


def test_locked_lists_active_locks(store: Store, clock: Clock) -> None:
    lockout = make(store, clock, lockout_address_threshold=7)
    fail(lockout, 5, login="Zed")
    fail(lockout, 2, login="amy")
    fail(lockout, 4, login="bob", address=B)
    assert lockout.locked() == [
        LockRecord("account", "zed", 5, START + 300, 1),
        LockRecord("address", A, 7, START + 300, 1),
    ]
    assert lockout.locked(now=START + 300) == []
    record = lockout.locked()[0]
    assert record.retry_after(START + 100.5) == 200
    assert record.retry_after(START + 1000) == 0


# -- damaged records -----------------------------------------------------------------


BAD_RECORDS = [
    b"not json",
    b"\xff\xfe",
    b"[]",
    b'{"v": 2}',
    b'{"v":1,"name":"alice","failures":"x","prints":[],"until":0,"level":0}',
    b'{"v":1,"name":"alice","failures":[NaN],"prints":[],"until":0,"level":0}',
    b'{"v":1,"name":"alice","failures":[],"prints":[],"until":-5,"level":1}',
    b'{"v":1,"name":"alice","failures":[],"prints":[["x","y"]],"until":0,"level":0}',
    b'{"v":1,"name":"alice","failures":[],"prints":[],"until":0,"level":true}',
    b'{"v":1,"name":"alice","failures":[],"prints":[],"until":0,"level":3}',
]


@pytest.mark.parametrize("raw", BAD_RECORDS)
def test_a_damaged_account_record_fails_closed(
    raw: bytes, captured: pytest.LogCaptureFixture
) -> None:
    store = open_store("memory://")
    clock = Clock()
    lockout = make(store, clock)
    lockout.failure("alice", None, "pw")
    (key,) = store.keys(ACCOUNT_PREFIX)
    store.set(key, raw)
    assert lockout.status("alice", A) == LockoutStatus(True, 0, 300, 0, "account")
    malformed = [e for e in events(captured) if e["event"] == "lockout.malformed"]
    assert len(malformed) == 1 and malformed[0]["key"] == key
    # Repaired once: the lock runs from when it was found, attempts do not count.
    clock.advance(100)
    assert lockout.failure("alice", A, "pw2").retry_after == 200
    assert len([e for e in events(captured) if e["event"] == "lockout.malformed"]) == 1
    clock.advance(200)
    assert lockout.status("alice", A) == LockoutStatus(False, 0, 0, 5, None)


def test_damaged_records_on_every_backend(store: Store, clock: Clock) -> None:
    lockout = make(store, clock)
    lockout.failure("alice", A, "pw")
    (key,) = store.keys(ACCOUNT_PREFIX)
    store.set(key, b"{garbage")
    store.set(ADDRESS_PREFIX + B, b'{"v":1}')
    # failure() on a damaged record: a lock, the attempt not counted, no crash.
    assert lockout.failure("alice", A, "pw2") == LockoutStatus(True, 0, 300, 0, "account")
    assert lockout.failure("bob", B, "pw") == LockoutStatus(True, 0, 300, 0, "address")
    assert {(r.scope, r.name) for r in lockout.locked()} == {("account", "alice"), ("address", B)}
    # A damaged record found by the admin listing is repaired (locked) and listed too.
    store.set(ADDRESS_PREFIX + "203.0.113.9", b"\x00")
    assert ("address", "203.0.113.9") in {(r.scope, r.name) for r in lockout.locked()}
    # Unlocking a damaged record says it was locked (it is treated as one).
    store.set(ADDRESS_PREFIX + "203.0.113.8", b"\x00")
    assert lockout.unlock_address("203.0.113.8") is True


def test_records_from_a_clock_far_ahead_do_not_crash(store: Store, clock: Clock) -> None:
    """Another machine's clock ran days ahead: its failures want a longer life than any
    ttl this one computes; the update settles on the longest ttl instead of looping."""
    lockout = make(store, clock)
    lockout.failure("alice", None, "pw")
    (key,) = store.keys(ACCOUNT_PREFIX)
    far = START + 30 * 86_400
    record = {"v": 1, "name": "alice", "failures": [far, far], "prints": [], "until": 0,
              "level": 0}  # fmt: skip
    store.set(key, json.dumps(record).encode())
    assert lockout.failure("alice", None, "pw2").failures == 3
    assert lockout.status("alice", None).failures == 3


# -- events --------------------------------------------------------------------------


def test_events_carry_what_operators_need_and_never_the_password(
    store: Store, clock: Clock, captured: pytest.LogCaptureFixture
) -> None:
    lockout = make(store, clock)
    secret_guess = "hunter2-very-private"
    for i in range(6):
        lockout.failure("Alice", "::ffff:192.0.2.10", f"{secret_guess}{i}")
    lockout.success("bob", B)
    found = events(captured)
    failures = [e for e in found if e["event"] == "login.failure"]
    assert [(e["login"], e["client"], e["failures"], e["counted"]) for e in failures] == [
        ("alice", A, n, True) for n in range(1, 6)
    ] + [("alice", A, 5, False)]
    assert failures[-1]["reason"] == "account locked"
    (locked,) = [e for e in found if e["event"] == "lockout.locked"]
    assert locked["login"] == "alice" and locked["client"] == A and locked["scope"] == "account"
    assert locked["until"] == START + 300 and locked["lock_level"] == 1
    (success,) = [e for e in found if e["event"] == "login.success"]
    assert success["login"] == "bob" and success["client"] == B
    text = "\n".join(r.getMessage() for r in captured.records)
    assert secret_guess not in text and "prints" not in text


def test_address_lock_event(store: Store, clock: Clock, captured: pytest.LogCaptureFixture) -> None:
    lockout = make(store, clock, lockout_address_threshold=2)
    lockout.failure("a", A, "x")
    lockout.failure("b", A, "y")
    (locked,) = [e for e in events(captured) if e["event"] == "lockout.locked"]
    assert locked["scope"] == "address" and locked["address"] == A and "login" not in locked


# -- store expiry --------------------------------------------------------------------


def test_records_clean_themselves_up(store: Store) -> None:
    """Store expiry (real time): a plain failure lives one window, a lock lives longer."""
    lockout = Lockout(
        load_policy(
            lockout_window=1, lockout_threshold=2, lockout_duration=3, lockout_max_duration=3
        ),
        store,
        KeyManager.open(store),
    )
    lockout.failure("once", None, "pw")
    fail(lockout, 2, login="locked", address=None)
    fail(lockout, 1, login="cleared", address=None)
    lockout.success("cleared", None)  # nothing left to remember: deleted at once
    assert len(store.keys(ACCOUNT_PREFIX)) == 2
    time.sleep(1.3)
    (left,) = store.keys(ACCOUNT_PREFIX)
    assert lockout.status("locked", None).locked
    assert left == lockout._account("locked")[1]


# -- concurrency ---------------------------------------------------------------------


def _hammer(lockout: Lockout, logins: list[str], threads: int, per_thread: int) -> list[Any]:
    results: list[Any] = []
    guard = threading.Lock()
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        barrier.wait()
        mine = [
            lockout.failure(logins[(n * per_thread + i) % len(logins)], A, f"pw-{n}-{i}")
            for i in range(per_thread)
        ]
        with guard:
            results.extend(mine)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert len(results) == threads * per_thread
    return results


def test_threads_failing_at_once_count_exactly(store: Store) -> None:
    lockout = make(store, lockout_threshold=5)
    results = _hammer(lockout, ["alice"], threads=8, per_thread=5)
    # Exactly threshold - 1 calls saw the account unlocked; the threshold-th locked it.
    assert sum(not s.locked for s in results) == 4
    assert lockout.status("alice", B) == LockoutStatus(True, 5, 300, 0, "account")
    # Only the 5 counted failures reached the address; the 35 refused ones did not.
    assert address_failures(store, A) == 5


def test_threads_failing_from_one_address_lock_it_exactly(store: Store) -> None:
    lockout = make(store, lockout_address_threshold=20)
    logins = [f"user{i}" for i in range(40)]
    results = _hammer(lockout, logins, threads=8, per_thread=5)
    assert sum(not s.locked for s in results) == 19
    assert lockout.status("anyone", A) == LockoutStatus(True, 20, 300, 0, "address")


def _fixed_clock() -> float:
    return START


def _fail_in_process(url: str, n: int, start: Any, out: multiprocessing.Queue[list[bool]]) -> None:
    store = open_store(url)
    lockout = Lockout(
        load_policy(lockout_threshold=10), store, KeyManager(store), clock=_fixed_clock
    )
    start.wait(30)  # all four start failing together
    out.put([lockout.failure("alice", A, f"pw-{os.getpid()}-{i}").locked for i in range(n)])
    store.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_processes_failing_at_once_count_exactly(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Four processes (spawned) fail on one account at once: no count lost, lock at 10."""
    url = store_url_for(kind, request, tmp_path)
    KeyManager.open(url).close()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    out: multiprocessing.Queue[list[bool]] = ctx.Queue()
    procs = [ctx.Process(target=_fail_in_process, args=(url, 6, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    locked = [flag for _ in procs for flag in out.get(timeout=60)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(locked) == 24
    assert locked.count(False) == 9  # threshold - 1 calls before the lock, exactly
    store = open_store(url)
    lockout = Lockout(
        load_policy(lockout_threshold=10), store, KeyManager(store), clock=_fixed_clock
    )
    assert lockout.status("alice", A) == LockoutStatus(True, 10, 300, 0, "account")
    assert address_failures(store, A) == 10  # the refused 14 did not reach the address
    store.close()


def test_a_right_guess_inside_a_parallel_burst_is_refused_once_the_burst_locks() -> None:
    """Requests that all passed status() before the lock: the right one must not pass."""
    from sitewarden.keyring import KeyManager
    from sitewarden.policy import load_policy
    from sitewarden.store import open_store

    store = open_store("memory://")
    lockout = Lockout(load_policy(lockout_threshold=5), store, KeyManager.open(store))
    burst = [f"198.51.100.{i}" for i in range(50)]
    assert not any(lockout.status("victim", ip).locked for ip in burst)  # all let through
    for i, ip in enumerate(burst[:-1]):
        lockout.failure("victim", ip, f"guess-{i}")
    verdict = lockout.success("victim", burst[-1])  # the 50th guess was right
    assert verdict.locked and verdict.retry_after > 0
    assert lockout.status("victim", burst[-1]).locked  # and the lock was not lifted
    # Without a burst, a right password passes and clears the failures.
    lockout.unlock("victim")
    lockout.failure("victim", burst[0], "typo")
    assert not lockout.success("victim", burst[0]).locked
    assert lockout.status("victim", burst[0]).failures == 0


def test_a_record_with_a_non_hex_fingerprint_fails_closed_without_a_crash() -> None:
    """compare_digest refuses non-ASCII text: such a record must be 'damaged', not a 500."""
    import json

    from sitewarden.guards.lockout import ACCOUNT_PREFIX
    from sitewarden.keyring import KeyManager
    from sitewarden.policy import load_policy
    from sitewarden.store import open_store

    store = open_store("memory://")
    lockout = Lockout(load_policy(), store, KeyManager.open(store))
    lockout.failure("bob", "10.1.1.1", "first")
    keys = store.keys(ACCOUNT_PREFIX)
    assert len(keys) == 1
    record = json.loads(store.get(keys[0]) or b"{}")
    record["prints"] = [[record["prints"][0][0], "é" * 32]]
    store.set(keys[0], json.dumps(record).encode())
    status = lockout.failure("bob", "10.1.1.1", "second")  # no TypeError
    assert status.locked
