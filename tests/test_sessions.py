"""Session cookies: lifetimes, refresh, revocation, rotation, hostile input, cookie flags."""

from __future__ import annotations

import base64
import hmac
import os
import time
from hashlib import sha256
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden import sessions as sessions_module
from sitewarden.keyring import KeyManager
from sitewarden.policy import Policy, load_policy
from sitewarden.sessions import MAX_COOKIE_VALUE, SessionManager, SessionState
from sitewarden.store import open_store
from sitewarden.tickets import create_ticket, decode_cookie, encode_cookie

T0 = 1_795_305_600  # a fixed "now" for deterministic lifetimes


@pytest.fixture
def keys() -> KeyManager:
    return KeyManager.open(open_store("memory://"))


@pytest.fixture
def policy() -> Policy:
    return load_policy("balanced")  # idle 1800, absolute 8 h, refresh after 450


@pytest.fixture
def sm(policy: Policy, keys: KeyManager) -> SessionManager:
    return SessionManager(policy, keys)


def user_rings(keys: KeyManager) -> list[str]:
    return [name for name in keys.names() if name.startswith("user:")]


# -- round trip ------------------------------------------------------------------------


def test_issue_then_verify(sm: SessionManager) -> None:
    value = sm.issue("alice", now=T0)
    assert sm.verify(value, now=T0 + 1) == "alice"
    state = sm.check(value, now=T0 + 1)
    assert state == SessionState("alice", T0, T0, False)
    assert "alice" in repr(state) and "Keyring" not in repr(state)


def test_ticket_format(sm: SessionManager) -> None:
    ticket = decode_cookie(sm.issue("alice", now=T0))
    assert ticket[32:40] == f"{T0:08x}".encode()
    assert ticket[40:] == b"alice!" + f"{T0:08x}".encode()  # user_data = login time, 8 hex digits


@pytest.mark.parametrize("userid", ["a!b", "ünïcode", "x@example.org", "with space", "%41"])
def test_any_userid_round_trips(sm: SessionManager, userid: str) -> None:
    assert sm.verify(sm.issue(userid, now=T0), now=T0) == userid


@pytest.mark.parametrize("userid", ["", "a\0b", "line\nbreak", "\x7f"])
def test_unusable_userids_are_refused_at_issue(sm: SessionManager, userid: str) -> None:
    with pytest.raises(ValueError, match="user id"):
        sm.issue(userid)


def test_repeat_check_returns_the_cached_state(sm: SessionManager) -> None:
    value = sm.issue("alice", now=T0)
    first = sm.check(value, now=T0 + 1)
    assert first is not None
    assert sm.check(value, now=T0 + 2) is first
    # the timeouts are still checked on every call
    assert sm.check(value, now=T0 + 1800) is None


def test_default_time_is_now(sm: SessionManager) -> None:
    value = sm.issue("alice")
    state = sm.check(value)
    assert state is not None and abs(state.issued - time.time()) < 5
    assert sm.verify(value) == "alice"


# -- hostile input ---------------------------------------------------------------------


def test_tampered_cookies_are_refused(sm: SessionManager) -> None:
    value = sm.issue("alice", now=T0)
    ticket = decode_cookie(value)
    mac, stamp, rest = ticket[:32], ticket[32:40], ticket[40:]
    sm.issue("bob", now=T0)  # bob has a ring: the MAC, not the lookup, must refuse
    forged = [
        mac + stamp + b"bob!" + rest.split(b"!")[1],  # another user
        mac + b"%08x" % (T0 + 3600) + rest,  # a later issue time
        mac + stamp + b"alice!" + b"%08x" % (T0 + 3600),  # a later login time
        bytes([mac[0] ^ 1]) + ticket[1:],  # a flipped MAC bit
        ticket + b"x",
        ticket[:-1],
    ]
    for bad in forged:
        assert sm.check(encode_cookie(bad), now=T0 + 1) is None
    for i in range(len(value)):
        for c in "A/+0z":
            mutated = value[:i] + c + value[i + 1 :]
            try:
                same = decode_cookie(mutated) == ticket
            except ValueError:
                same = False
            assert (sm.verify(mutated, now=T0 + 1) == "alice") is same


GARBAGE = [
    "",
    "A",
    "====",
    "%%%%",
    "\0",
    "é" * 20,
    "A" * (MAX_COOKIE_VALUE + 1),
    "A" * 10**6,
    base64.b64encode(b"x" * 40 + b"alice!0000000g").decode(),
    base64.b64encode(b"x" * 40 + b"alice!tok!00000000").decode(),
    base64.b64encode(b"x" * 40 + b"%ff!00000000").decode(),
    base64.b64encode(b"x" * 40 + b"a%00b!00000000").decode(),
    base64.b64encode(b"x" * 40 + b"!00000000").decode(),
]


@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_is_refused(sm: SessionManager, value: str) -> None:
    assert sm.check(value) is None
    assert sm.verify(value) is None


@pytest.mark.parametrize("value", [None, b"abc", 12, ["x"], object()])
def test_wrong_types_are_refused(sm: SessionManager, value: object) -> None:
    assert sm.check(value) is None  # type: ignore[arg-type]
    assert sm.verify(value) is None  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()))
def test_arbitrary_values_never_raise(value: str) -> None:
    keys = KeyManager.open(open_store("memory://"))
    sm = SessionManager(load_policy(), keys)
    assert sm.check(value) is None
    assert user_rings(keys) == []


def test_an_unknown_user_is_refused_without_creating_a_ring(
    sm: SessionManager, keys: KeyManager
) -> None:
    sm.issue("alice", now=T0)
    before = keys.names()
    # an attacker signs a ticket for an id of their choice with a key of their choice
    for userid in ("mallory", "admin", "x" * 500):
        ticket = create_ticket(
            os.urandom(64), userid, user_data=f"{T0:08x}", timestamp=T0, quote_userid=True
        )
        assert sm.check(encode_cookie(ticket), now=T0 + 1) is None
    assert keys.names() == before
    assert keys.find_user_ring("mallory") is None
    assert user_rings(keys) == ["user:alice"]


def test_a_ticket_signed_with_the_sessions_secret_alone_is_refused(
    sm: SessionManager, keys: KeyManager
) -> None:
    sm.issue("alice", now=T0)
    for secret in (keys.secret("sessions"), keys.user_ring("alice").current):
        ticket = create_ticket(
            secret, "alice", user_data=f"{T0:08x}", timestamp=T0, quote_userid=True
        )
        assert sm.check(encode_cookie(ticket), now=T0 + 1) is None
    combined = keys.secret("sessions") + keys.user_ring("alice").current
    ticket = create_ticket(
        combined, "alice", user_data=f"{T0:08x}", timestamp=T0, quote_userid=True
    )
    assert sm.verify(encode_cookie(ticket), now=T0 + 1) == "alice"  # the documented key


# -- lifetimes -------------------------------------------------------------------------


def test_idle_timeout(sm: SessionManager, policy: Policy) -> None:
    idle = policy.session_idle_timeout
    value = sm.issue("alice", now=T0)
    assert sm.verify(value, now=T0 + idle - 1) == "alice"
    assert sm.verify(value, now=T0 + idle) is None
    assert sm.verify(value, now=T0 + idle + 10_000) is None


def test_refresh_flag(sm: SessionManager, policy: Policy) -> None:
    value = sm.issue("alice", now=T0)
    before = sm.check(value, now=T0 + policy.refresh_after - 1)
    after = sm.check(value, now=T0 + policy.refresh_after)
    assert before is not None and not before.refresh
    assert after is not None and after.refresh


def test_refresh_keeps_an_active_user_signed_in_until_the_absolute_lifetime(
    sm: SessionManager, policy: Policy
) -> None:
    idle, absolute, step = (
        policy.session_idle_timeout,
        policy.session_absolute_timeout,
        policy.refresh_after,
    )
    value = sm.issue("alice", now=T0)
    now = T0
    renewals = 0
    while True:
        now += step
        state = sm.check(value, now=now)
        if state is None:
            break
        assert state.login_time == T0
        assert state.refresh
        value = sm.renew(state, now=now)
        renewals += 1
    # signed in well past the idle timeout, ended by the absolute lifetime
    assert renewals > idle // step
    assert T0 + absolute <= now < T0 + absolute + step
    # the last renewed cookie is not idle: only the absolute clock ends it
    assert sm.verify(value, now=T0 + absolute - 1) == "alice"
    assert sm.verify(value, now=T0 + absolute) is None


def test_renew_keeps_the_login_time(sm: SessionManager) -> None:
    value = sm.issue("alice", now=T0)
    state = sm.check(value, now=T0 + 1000)
    assert state is not None
    renewed = sm.renew(state, now=T0 + 1000)
    again = sm.check(renewed, now=T0 + 1001)
    assert again == SessionState("alice", T0 + 1000, T0, False)


def test_renew_of_a_hand_made_state(sm: SessionManager) -> None:
    sm.issue("alice", now=T0)
    value = sm.renew(SessionState("alice", T0, T0, True), now=T0 + 5)
    assert sm.check(value, now=T0 + 6) == SessionState("alice", T0 + 5, T0, False)


def test_a_login_time_after_the_issue_time_is_refused(sm: SessionManager, keys: KeyManager) -> None:
    sm.issue("alice", now=T0)
    combined = keys.secret("sessions") + keys.user_ring("alice").current
    ticket = create_ticket(
        combined, "alice", user_data=f"{T0 + 100:08x}", timestamp=T0, quote_userid=True
    )
    assert sm.check(encode_cookie(ticket), now=T0 + 1) is None


# -- revocation and rotation -----------------------------------------------------------


def test_logout_everywhere_ends_only_that_users_sessions(
    sm: SessionManager, keys: KeyManager
) -> None:
    phone = sm.issue("alice", now=T0)
    laptop = sm.issue("alice", now=T0 + 10)
    bob = sm.issue("bob", now=T0)
    assert sm.verify(phone, now=T0 + 20) == sm.verify(laptop, now=T0 + 20) == "alice"
    sm.logout_everywhere("alice")
    assert sm.verify(phone, now=T0 + 21) is None
    assert sm.verify(laptop, now=T0 + 21) is None
    assert sm.verify(bob, now=T0 + 21) == "bob"
    # a new login works at once
    assert sm.verify(sm.issue("alice", now=T0 + 30), now=T0 + 31) == "alice"


def test_logout_everywhere_of_a_user_without_ring(sm: SessionManager) -> None:
    sm.logout_everywhere("carol")  # harmless: creates and rotates the ring
    assert sm.verify(sm.issue("carol", now=T0), now=T0) == "carol"


def test_renewing_a_revoked_state_gives_a_dead_cookie(sm: SessionManager) -> None:
    state = sm.check(sm.issue("alice", now=T0), now=T0 + 500)
    assert state is not None
    sm.logout_everywhere("alice")
    assert sm.check(sm.renew(state, now=T0 + 500), now=T0 + 501) is None


def test_sessions_ring_rotation_retires_sessions_gradually(
    sm: SessionManager, keys: KeyManager
) -> None:
    value = sm.issue("alice", now=T0)
    for n in range(1, 5):
        keys.rotate("sessions")
        state = sm.check(value, now=T0 + 1)
        assert state is not None, f"killed after {n} rotations"
        assert state.refresh  # signed with an older secret: re-issue with the current one
    renewed = sm.renew(state, now=T0 + 1)
    keys.rotate("sessions")
    assert sm.check(value, now=T0 + 2) is None  # the 5th rotation retires it
    fresh = sm.check(renewed, now=T0 + 2)  # a refreshed session survives
    assert fresh is not None and fresh.refresh


def test_reset_of_the_sessions_ring_ends_every_session(
    sm: SessionManager, keys: KeyManager
) -> None:
    values = [sm.issue(u, now=T0) for u in ("alice", "bob")]
    keys.reset("sessions")
    assert [sm.check(v, now=T0 + 1) for v in values] == [None, None]


def test_many_users_evict_old_entries(sm: SessionManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_module, "_USERS_LIMIT", 3)
    values = {f"u{i}": sm.issue(f"u{i}", now=T0) for i in range(10)}
    for userid, value in values.items():
        assert sm.verify(value, now=T0 + 1) == userid
    assert len(sm._users) <= 3


def test_revocation_ttl_is_validated(policy: Policy, keys: KeyManager) -> None:
    for bad in (-1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="revocation_ttl"):
            SessionManager(policy, keys, revocation_ttl=bad)  # type: ignore[arg-type]


def test_the_sessions_ring_is_created_if_missing(policy: Policy) -> None:
    keys = KeyManager(open_store("memory://"))
    sm = SessionManager(policy, keys)
    assert "sessions" in keys.names()
    assert sm.verify(sm.issue("alice", now=T0), now=T0) == "alice"


# -- several processes -----------------------------------------------------------------


def two_processes(tmp_path: Path, policy: Policy, ttl: float) -> tuple[SessionManager, ...]:
    url = f"sqlite:///{tmp_path}/state.db"
    a = SessionManager(policy, KeyManager.open(url), revocation_ttl=ttl)
    b = SessionManager(policy, KeyManager.open(url), revocation_ttl=ttl)
    assert b.keys.cache_ttl == 5.0  # the key manager alone would take 5 s to notice
    return a, b


def test_logout_everywhere_in_another_process_is_seen_within_the_ttl(
    tmp_path: Path, policy: Policy
) -> None:
    a, b = two_processes(tmp_path, policy, ttl=0.3)
    now = int(time.time())
    value = a.issue("alice", now=now)
    other = a.issue("bob", now=now)
    assert b.verify(value, now=now) == "alice"
    a.logout_everywhere("alice")
    assert a.verify(value, now=now) is None  # at once in the process that did it
    deadline = time.monotonic() + 0.3 + 0.25
    while b.verify(value, now=now) is not None:
        assert time.monotonic() < deadline, "revocation not seen within revocation_ttl"
        time.sleep(0.02)
    assert b.verify(other, now=now) == "bob"
    # a new login in A is accepted by B
    fresh = a.issue("alice", now=now)
    assert b.verify(fresh, now=now) == "alice"


def test_ttl_zero_sees_revocation_at_once(tmp_path: Path, policy: Policy) -> None:
    a, b = two_processes(tmp_path, policy, ttl=0)
    value = a.issue("alice", now=T0)
    assert b.verify(value, now=T0) == "alice"
    a.logout_everywhere("alice")
    assert b.verify(value, now=T0) is None


def test_a_cookie_signed_after_a_rotation_elsewhere_is_accepted_at_once(
    tmp_path: Path, policy: Policy
) -> None:
    a, b = two_processes(tmp_path, policy, ttl=60)
    b.keys.miss_reload_interval = 0.0
    old = a.issue("alice", now=T0)
    assert b.verify(old, now=T0) == "alice"  # b has cached alice's rings
    a.keys.rotate("sessions")
    new = a.issue("alice", now=T0)
    assert decode_cookie(new)[:32] != decode_cookie(old)[:32]
    assert b.verify(new, now=T0) == "alice"  # the miss reloads the rotated ring
    assert b.verify(old, now=T0) == "alice"


def test_a_user_first_seen_in_another_process(tmp_path: Path, policy: Policy) -> None:
    a, b = two_processes(tmp_path, policy, ttl=60)
    value = a.issue("dave", now=T0)
    assert b.verify(value, now=T0) == "dave"


# -- cookies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "samesite"), [("basic", "Lax"), ("balanced", "Lax"), ("strict", "Strict")]
)
def test_cookie_flags(keys: KeyManager, preset: str, samesite: str) -> None:
    sm = SessionManager(load_policy(preset), keys)
    assert sm.cookie_name == "__Host-sw_session"
    value = sm.issue("alice")
    header = sm.set_cookie(value)
    assert header == f"__Host-sw_session={value}; Path=/; Secure; HttpOnly; SameSite={samesite}"
    assert "domain" not in header.lower() and "max-age" not in header.lower()
    cleared = sm.clear_cookie()
    assert (
        cleared == f"__Host-sw_session=; Path=/; Secure; HttpOnly; SameSite={samesite}; Max-Age=0"
    )


def test_cookie_without_secure_has_no_host_prefix(keys: KeyManager) -> None:
    sm = SessionManager(load_policy(session_cookie_secure=False, session_cookie="sid"), keys)
    assert sm.cookie_name == "sid"
    assert sm.set_cookie("v") == "sid=v; Path=/; HttpOnly; SameSite=Lax"
    assert sm.clear_cookie() == "sid=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"


def test_cookie_value_is_cookie_safe(sm: SessionManager) -> None:
    value = sm.issue("ünïcode!user; x=1")
    assert all(c.isalnum() or c in "+/=" for c in value)
    assert sm.verify(value) == "ünïcode!user; x=1"


def test_hmac_key_is_the_documented_combination(sm: SessionManager, keys: KeyManager) -> None:
    ticket = decode_cookie(sm.issue("alice", now=T0))
    key = keys.secret("sessions") + keys.user_ring("alice").current
    data = b"\0\0\0\0" + T0.to_bytes(4, "big") + b"alice\0\0" + f"{T0:08x}".encode()
    assert hmac.compare_digest(ticket[:32], hmac.new(key, data, sha256).digest())
