"""TOTP two-factor sign-in: RFC 6238 vectors, window, replay (threads, instances, processes),
throttling, sealing at rest, recovery codes, enrolment URI and QR code."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import multiprocessing
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
import segno

from sitewarden.accounts.totp import RECOVERY_ALPHABET, RING, SEALED_PREFIX, TOTP
from sitewarden.errors import ConfigError, StoreError, TotpError
from sitewarden.keyring import KeyManager, Keyring, fingerprint
from sitewarden.policy import load_policy
from sitewarden.store import Store, open_store
from tests.conftest import store_url_for

# RFC 6238 appendix B: the SHA1 seed "12345678901234567890" (ASCII), 8 digits, 30 s steps.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]
T0 = 1_700_000_000.0  # a fixed "now", in the middle of a 30 s step (1700000000 % 30 == 20)


class Clock:
    """A settable clock for the TOTP service."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(
    store: Store, clock: Clock | None = None, keys: KeyManager | None = None, **settings: Any
) -> TOTP:
    return TOTP(load_policy(**settings), store, keys or KeyManager(store), clock=clock or Clock())


def code_at(secret: str, when: float, digits: int = 6, period: int = 30) -> str:
    """The code an authenticator app shows at *when* (pyotp, independent of our step maths)."""
    return pyotp.TOTP(secret, digits=digits, interval=period).generate_otp(int(when // period))


@pytest.fixture
def events(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The security events logged during the test, parsed."""
    caplog.set_level(logging.INFO, logger="sitewarden.events")
    out: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out.append(json.loads(record.getMessage()))

    handler = Collect(logging.INFO)
    logger = logging.getLogger("sitewarden.events")
    logger.addHandler(handler)
    yield out
    logger.removeHandler(handler)


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


# -- codes: RFC 6238, the window, input --------------------------------------------------


def test_rfc6238_vectors(store: Store) -> None:
    clock = Clock()
    totp = make(store, clock, totp_digits=8)
    for when, code in RFC_VECTORS:
        clock.now = when
        # One user throughout: the vectors' steps increase, so none is a replay.
        assert totp.verify("alice", RFC_SECRET, code), when
    clock.now = 59
    assert not make(store, clock, totp_digits=8).verify("bob", RFC_SECRET, "94287083")


def test_rfc6238_vector_through_a_sealed_secret(store: Store) -> None:
    clock = Clock(1234567890)
    totp = make(store, clock, totp_digits=8)
    assert totp.verify("alice", totp.seal(RFC_SECRET, "alice"), "89005924")


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
)
def test_window_one_step_either_side(store: Store, offset: int, accepted: bool) -> None:
    totp = make(store)
    secret = totp.new_secret()
    assert totp.verify("alice", secret, code_at(secret, T0 + 30 * offset)) is accepted


def test_window_zero_accepts_only_the_current_step(store: Store) -> None:
    totp = make(store, totp_window=0)
    secret = totp.new_secret()
    assert not totp.verify("alice", secret, code_at(secret, T0 - 30))
    assert not totp.verify("alice", secret, code_at(secret, T0 + 30))
    assert totp.verify("alice", secret, code_at(secret, T0))


def test_period_and_digits_follow_the_policy(store: Store) -> None:
    totp = make(store, totp_digits=7, totp_period=60)
    secret = totp.new_secret()
    assert not totp.verify("alice", secret, code_at(secret, T0, digits=7, period=30) + "")
    assert totp.verify("alice", secret, code_at(secret, T0, digits=7, period=60))


def test_code_input_is_normalised_and_bad_input_refused(
    store: Store, events: list[dict[str, Any]]
) -> None:
    totp = make(store)
    secret = totp.new_secret()
    code = code_at(secret, T0)
    for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", "12-345", "1" * 10_000, None, 123456]:
        assert totp.verify("alice", secret, bad) is False  # type: ignore[arg-type]
    assert set(names(events)) == {"totp.failure"}
    assert {e["reason"] for e in events} == {"malformed code"}
    assert store.keys("totp:attempts:") == []  # malformed input costs no attempt
    assert totp.verify("alice", secret, f" {code[:3]} {code[3:]} ")


def test_bad_secret_is_a_clear_error(store: Store) -> None:
    totp = make(store)
    for bad in ["not base32!", "ABC", "", "GEZDGNBV", 42]:  # GEZDGNBV: 40 bits, far too short
        with pytest.raises(TotpError):
            totp.verify("alice", bad, "123456")  # type: ignore[arg-type]
    with pytest.raises(TotpError, match="format version"):
        totp.verify("alice", "swtotp9:AAAA", "123456")


def test_bad_user_id_is_a_clear_error(store: Store) -> None:
    totp = make(store)
    for bad in ["", "a\nb", "x" * 1000, None]:
        with pytest.raises(TotpError):
            totp.verify(bad, totp.new_secret(), "123456")  # type: ignore[arg-type]


def test_new_secret_is_160_random_bits(store: Store) -> None:
    totp = make(store)
    made = {totp.new_secret() for _ in range(200)}
    assert len(made) == 200
    for secret in made:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20


# -- replay --------------------------------------------------------------------------


def test_same_code_twice_is_a_replay(store: Store, events: list[dict[str, Any]]) -> None:
    totp = make(store)
    secret = totp.new_secret()
    code = code_at(secret, T0)
    assert totp.verify("alice", secret, code)
    assert not totp.verify("alice", secret, code)
    assert names(events) == ["totp.replay"]
    # Another user with the same code is not affected by alice's mark.
    assert totp.verify("bob", secret, code)


def test_older_step_after_newer_is_refused(store: Store) -> None:
    clock = Clock()
    totp = make(store, clock)
    secret = totp.new_secret()
    assert totp.verify("alice", secret, code_at(secret, T0 + 30))  # the next step, early
    assert not totp.verify("alice", secret, code_at(secret, T0))  # still in the window
    assert not totp.verify("alice", secret, code_at(secret, T0 - 30))
    clock.now = T0 + 60
    assert not totp.verify("alice", secret, code_at(secret, T0 + 30))
    assert totp.verify("alice", secret, code_at(secret, T0 + 60))


def test_replay_refused_across_two_workers_sharing_a_store(store: Store) -> None:
    worker_a = make(store)
    worker_b = make(store, keys=KeyManager(store))  # its own ring cache, like another process
    secret = worker_a.new_secret()
    sealed = worker_a.seal(secret, "alice")
    code = code_at(secret, T0)
    assert worker_a.verify("alice", sealed, code)
    assert not worker_b.verify("alice", sealed, code)


def test_replay_race_between_threads(store: Store) -> None:
    totp = make(store)
    secret = totp.new_secret()
    code = code_at(secret, T0)
    assert _race(lambda: totp.verify("alice", secret, code)) == [False] * 5 + [True]


_race_barrier: Any = None


def _init_race_worker(barrier: Any) -> None:
    global _race_barrier
    _race_barrier = barrier


def _race_verify(url: str, rounds: list[tuple[str, str, str]]) -> list[bool]:
    """In a worker process: verify each round's code at the same moment as the sibling."""
    with open_store(url) as store:
        totp = TOTP(load_policy(), store, KeyManager(store), clock=lambda: T0)
        results = []
        for userid, sealed, code in rounds:
            _race_barrier.wait(30)
            results.append(totp.verify(userid, sealed, code))
        return results


@pytest.fixture(scope="module")
def race_pool() -> Iterator[Any]:
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(2, initializer=_init_race_worker, initargs=(ctx.Barrier(2),))
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_replay_race_between_processes(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, race_pool: Any
) -> None:
    """Two processes present one code at the same moment, ten times: one wins each time."""
    url = store_url_for(kind, request, tmp_path)
    with open_store(url) as store:
        totp = make(store)
        rounds = []
        for n in range(10):
            secret = totp.new_secret()
            rounds.append((f"user{n}", totp.seal(secret, f"user{n}"), code_at(secret, T0)))
    tasks = [(url, rounds), (url, rounds)]
    first, second = race_pool.starmap_async(_race_verify, tasks, chunksize=1).get(timeout=60)
    assert [a + b for a, b in zip(first, second, strict=True)] == [1] * 10


# -- throttling ----------------------------------------------------------------------


def test_wrong_codes_throttle_even_the_right_one(
    store: Store, events: list[dict[str, Any]]
) -> None:
    totp = make(store, totp_max_attempts=3, totp_attempt_window=1)
    secret = totp.new_secret()
    wrong = f"{(int(code_at(secret, T0)) + 1) % 1_000_000:06d}"
    for _ in range(3):
        assert not totp.verify("alice", secret, wrong)
    assert not totp.verify("alice", secret, code_at(secret, T0))
    assert names(events) == ["totp.failure"] * 3 + ["totp.throttled"]
    assert totp.verify("bob", secret, code_at(secret, T0))  # per user: bob is not throttled
    time.sleep(1.1)  # the attempt window (the store's expiry) passes
    assert totp.verify("alice", secret, code_at(secret, T0))


def test_right_codes_do_not_use_up_the_attempts(store: Store) -> None:
    clock = Clock()
    totp = make(store, clock, totp_max_attempts=3)
    secret = totp.new_secret()
    wrong = f"{(int(code_at(secret, T0 + 90)) + 1) % 1_000_000:06d}"
    assert not totp.verify("alice", secret, wrong)
    assert not totp.verify("alice", secret, wrong)
    assert totp.verify("alice", secret, code_at(secret, T0))
    clock.now += 30
    assert totp.verify("alice", secret, code_at(secret, clock.now))
    assert not totp.verify("alice", secret, wrong)  # the third wrong code
    clock.now += 30
    assert not totp.verify("alice", secret, code_at(secret, clock.now))  # throttled now


def test_replays_count_as_wrong_codes(store: Store) -> None:
    totp = make(store, totp_max_attempts=2)
    secret = totp.new_secret()
    code = code_at(secret, T0)
    assert totp.verify("alice", secret, code)
    assert not totp.verify("alice", secret, code)
    assert not totp.verify("alice", secret, code)
    assert not totp.verify("alice", secret, code_at(secret, T0 + 30))  # throttled


def test_parallel_guesses_cannot_exceed_the_limit(
    store: Store, events: list[dict[str, Any]]
) -> None:
    """A burst of 24 simultaneous guesses gets exactly five of them evaluated."""
    totp = make(store, totp_max_attempts=5)
    secret = totp.new_secret()
    right = code_at(secret, T0)
    guesses = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(100, 124)]
    barrier = threading.Barrier(len(guesses))

    def guess(code: str) -> None:
        barrier.wait(10)
        assert not totp.verify("alice", secret, code)

    threads = [threading.Thread(target=guess, args=(g,)) for g in guesses]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert names(events).count("totp.failure") == 5
    assert names(events).count("totp.throttled") == 19


# -- sealing at rest -----------------------------------------------------------------


def test_seal_round_trip(store: Store) -> None:
    totp = make(store)
    secret = totp.new_secret()
    sealed = totp.seal(secret, "alice")
    assert sealed.startswith(SEALED_PREFIX)
    assert secret not in sealed
    assert totp.seal(secret, "alice") != sealed  # a fresh nonce every time
    assert totp.unseal(sealed, "alice") == secret
    # Lower case and spaces (as some apps display secrets) are the same secret.
    spaced = " ".join(secret[i : i + 4].lower() for i in range(0, 32, 4))
    assert totp.unseal(totp.seal(spaced, "alice"), "alice") == secret


def test_sealed_text_records_the_ring_secret(store: Store) -> None:
    totp = make(store)
    sealed = totp.seal(totp.new_secret(), "alice")
    raw = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :] + "==")
    assert raw[:6].hex() == fingerprint(KeyManager(store).stored_ring(RING).current)


def test_sealed_secret_does_not_open_for_another_user(store: Store) -> None:
    totp = make(store)
    secret = totp.new_secret()
    sealed = totp.seal(secret, "alice")
    with pytest.raises(TotpError, match="another user or was altered"):
        totp.unseal(sealed, "mallory")
    with pytest.raises(TotpError):  # copied into mallory's account: sign-in fails closed
        totp.verify("mallory", sealed, code_at(secret, T0))
    with pytest.raises(TotpError):  # a prefix of the user id is another user too
        totp.unseal(sealed, "alic")


def test_tampered_sealed_secret_does_not_open(store: Store) -> None:
    totp = make(store)
    sealed = totp.seal(totp.new_secret(), "alice")
    body = sealed[len(SEALED_PREFIX) :]
    for i in (0, 5, 10, 20, len(body) // 2, len(body) - 1):
        flipped = "A" if body[i] != "A" else "B"
        tampered = SEALED_PREFIX + body[:i] + flipped + body[i + 1 :]
        with pytest.raises(TotpError):
            totp.unseal(tampered, "alice")
    for broken in [sealed[:30], SEALED_PREFIX, SEALED_PREFIX + "!!!!", "plain", "swtotp2:" + body]:
        with pytest.raises(TotpError):
            totp.unseal(broken, "alice")


def test_sealed_secret_survives_a_rotation_and_reseal_moves_it(store: Store) -> None:
    keys = KeyManager(store)
    totp = make(store, keys=keys)
    secret = totp.new_secret()
    sealed = totp.seal(secret, "alice")
    keys.rotate(RING)
    assert totp.unseal(sealed, "alice") == secret  # the old secret is still in the ring
    moved = totp.reseal(sealed, "alice")
    assert moved != sealed
    assert totp.unseal(moved, "alice") == secret
    assert totp.reseal(moved, "alice") == moved  # already on the newest secret
    with pytest.raises(TotpError):
        totp.reseal(sealed, "bob")
    for _ in range(4):  # the sealing secret leaves the ring of five
        keys.rotate(RING)
    with pytest.raises(TotpError, match="no longer in the ring"):
        totp.unseal(sealed, "alice")
    assert totp.unseal(moved, "alice") == secret  # moved in time: still opens


def test_rotation_in_another_process_is_seen_at_once(store: Store) -> None:
    here = make(store, keys=KeyManager(store, cache_ttl=3600))
    elsewhere = make(store, keys=KeyManager(store, cache_ttl=3600))
    secret = here.new_secret()
    sealed = here.seal(secret, "alice")  # this process now caches the ring
    elsewhere.keys.rotate(RING)
    newer = elsewhere.reseal(sealed, "alice")
    assert here.unseal(newer, "alice") == secret  # not in the cached ring: read from the store
    assert here.reseal(sealed, "alice") != sealed  # reseal targets the stored newest secret


def test_totp_ring_is_created_on_first_use_and_never_rotates_by_age(store: Store) -> None:
    keys = KeyManager(store, cache_ttl=0)
    assert RING not in keys.names()
    totp = make(store, keys=keys)
    secret = totp.new_secret()
    sealed = totp.seal(secret, "alice")
    assert RING in keys.names()
    # Age both rings by ten years: "forms" rotates on its next read, "totp" must not.
    keys.ensure("forms")
    for name in (RING, "forms"):
        ring = Keyring.from_json(store.get("keyring:" + name) or b"", name)
        ring.last_rotation = 0.0
        store.set("keyring:" + name, ring.to_json())
    before = keys.stored_ring(RING)
    forms_before = keys.stored_ring("forms")
    assert keys.ring(RING) == before
    assert keys.ring("forms").current != forms_before.current
    assert totp.unseal(sealed, "alice") == secret


def test_automatic_rotation_of_the_totp_ring_is_refused(store: Store) -> None:
    with pytest.raises(ConfigError, match="totp"):
        make(store, keys=KeyManager(store, rotate_after={"totp": 86400}))


# -- recovery codes ------------------------------------------------------------------


def test_recovery_codes_format_and_entropy(store: Store) -> None:
    totp = make(store)
    codes = totp.new_recovery_codes("alice")
    assert len(codes) == len(set(codes)) == 10
    assert len(RECOVERY_ALPHABET) == len(set(RECOVERY_ALPHABET)) == 32  # 5 bits a character
    assert not set("ilou") & set(RECOVERY_ALPHABET)
    group = f"[{RECOVERY_ALPHABET}]{{4}}"
    for code in codes:
        assert re.fullmatch(f"{group}-{group}-{group}-{group}", code)  # 16 x 5 = 80 bits
    assert totp.recovery_codes_left("alice") == 10
    assert len(totp.new_recovery_codes("bob", count=3)) == 3
    for bad in [0, -1, 101, True, "10"]:
        with pytest.raises(TotpError):
            totp.new_recovery_codes("alice", count=bad)  # type: ignore[arg-type]


def test_recovery_code_works_once(store: Store, events: list[dict[str, Any]]) -> None:
    totp = make(store)
    codes = totp.new_recovery_codes("alice", count=3)
    assert totp.use_recovery_code("alice", codes[0])
    assert not totp.use_recovery_code("alice", codes[0])
    assert totp.recovery_codes_left("alice") == 2
    assert names(events) == ["totp.recovery_used", "totp.failure"]
    assert events[0]["left"] == 2


def test_recovery_code_input_is_normalised(store: Store) -> None:
    totp = make(store)
    codes = totp.new_recovery_codes("alice", count=4)
    assert totp.use_recovery_code("alice", codes[0].upper())
    assert totp.use_recovery_code("alice", "  " + codes[1].replace("-", " ") + " ")
    assert totp.use_recovery_code("alice", codes[2].replace("-", ""))
    # Crockford's reading: O for 0, I or L for 1.
    misread = codes[3].replace("0", "O").replace("1", "l")
    assert totp.use_recovery_code("alice", misread)
    assert totp.recovery_codes_left("alice") == 0
    for bad in ["", "abcd", "uuuu-uuuu-uuuu-uuuu", "x" * 10_000, None]:
        assert not totp.use_recovery_code("alice", bad)  # type: ignore[arg-type]


def test_recovery_codes_belong_to_one_user_and_a_new_set_replaces_the_old(store: Store) -> None:
    totp = make(store)
    old = totp.new_recovery_codes("alice", count=2)
    assert not totp.use_recovery_code("bob", old[0])
    assert not totp.use_recovery_code("bob", "0000-0000-0000-0000")
    new = totp.new_recovery_codes("alice", count=2)
    assert not totp.use_recovery_code("alice", old[0])
    assert totp.recovery_codes_left("alice") == 2
    assert totp.use_recovery_code("alice", new[1])
    assert totp.recovery_codes_left("bob") == 0


def _race(action: Any, n: int = 6) -> list[bool]:
    """Run *action* in *n* threads released at the same moment; return their results."""
    barrier = threading.Barrier(n)
    results: list[bool] = []

    def run() -> None:
        barrier.wait(10)
        results.append(action())

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return sorted(results)


def test_recovery_code_race_between_threads(store: Store) -> None:
    totp = make(store)
    codes = totp.new_recovery_codes("alice", count=2)
    for code in codes:
        results = _race(lambda code=code: totp.use_recovery_code("alice", code))
        assert results == [False] * 5 + [True]
    assert totp.recovery_codes_left("alice") == 0


def _everything_in(store: Store, store_url: str) -> bytes:
    """Every key, value and set member in *store*, and for SQLite the raw files too."""
    dump = bytearray()
    for key in store.keys(""):
        dump += key.encode() + b"\n"
        with contextlib.suppress(StoreError):  # Redis: not a value
            dump += (store.get(key) or b"") + b"\n"
        with contextlib.suppress(StoreError):  # Redis: not a set
            dump += b"\n".join(store.set_members(key)) + b"\n"
    if store_url.startswith("sqlite:///"):
        for path in Path(store_url[len("sqlite://") :]).parent.iterdir():
            dump += path.read_bytes()
    return bytes(dump)


def test_recovery_codes_are_hashed_at_rest(store: Store, store_url: str) -> None:
    totp = make(store)
    codes = totp.new_recovery_codes("alice")
    totp.use_recovery_code("alice", codes[0])
    dump = _everything_in(store, store_url).lower()
    assert b"totp:recovery:alice" in dump  # the scan does see the record
    for code in codes:
        plain = code.replace("-", "")
        # Whole codes and halves (40 bits each). Not the 4-character groups: 20 bits
        # turn up by chance in the hex digests and random secrets around them.
        for form in (code, plain, plain[:8], plain[8:]):
            assert form.lower().encode() not in dump, form


def test_totp_secret_is_not_in_the_store(store: Store, store_url: str) -> None:
    totp = make(store)
    secret = totp.new_secret()
    assert totp.verify("alice", totp.seal(secret, "alice"), code_at(secret, T0))
    assert secret.encode() not in _everything_in(store, store_url).upper()


# -- enrolment: URI and QR code ------------------------------------------------------


def test_provisioning_uri_format(store: Store) -> None:
    totp = make(store, totp_issuer="Example Site", totp_digits=8, totp_period=60)
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "alice@example.org")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Example Site:alice@example.org"
    assert parts.path == "/Example%20Site:alice@example.org"
    query = parse_qs(parts.query)
    assert query == {
        "secret": [secret],
        "issuer": ["Example Site"],
        "digits": ["8"],
        "period": ["60"],
    }
    # An authenticator app (pyotp's parser here) shows the codes we accept.
    app = pyotp.parse_uri(uri)
    assert isinstance(app, pyotp.TOTP)
    assert app.now() == code_at(secret, time.time(), digits=8, period=60)
    with pytest.raises(TotpError):
        totp.provisioning_uri(secret, "evil:alice")
    with pytest.raises(TotpError):
        totp.provisioning_uri(totp.seal(secret, "alice"), "alice")  # unseal first
    with pytest.raises(TotpError):
        totp.provisioning_uri(secret, "")


def test_qr_svg_is_local_svg_without_the_secret(store: Store) -> None:
    totp = make(store)
    secret = totp.new_secret()
    svg = totp.qr_svg(secret, "alice@example.org")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert secret not in svg and secret.lower() not in svg
    assert "otpauth" not in svg and "href" not in svg and "<image" not in svg
    # The modules are those of the provisioning URI's QR code.
    expected = segno.make(totp.provisioning_uri(secret, "alice@example.org"), error="m")
    assert svg == expected.svg_inline(scale=4)


# -- events, disable ----------------------------------------------------------------


def test_events_never_carry_a_code_or_secret(store: Store, events: list[dict[str, Any]]) -> None:
    totp = make(store, totp_max_attempts=2)
    secret = totp.new_secret()
    right = code_at(secret, T0)
    wrong = f"{(int(right) + 7) % 1_000_000:06d}"
    codes = totp.new_recovery_codes("alice", count=2)
    totp.verify("alice", secret, right)
    totp.verify("alice", secret, right)
    totp.verify("alice", secret, wrong)
    totp.verify("alice", secret, wrong)
    totp.use_recovery_code("alice", codes[0])
    totp.use_recovery_code("alice", "zzzz-zzzz-zzzz-zzzz")
    assert set(names(events)) == {
        "totp.replay",
        "totp.failure",
        "totp.throttled",
        "totp.recovery_used",
    }
    text = json.dumps(events)
    for needle in (secret, right, wrong, *codes, codes[0].replace("-", "")):
        assert needle not in text
    assert all(e["user"] == "alice" for e in events)


def test_disable_forgets_marks_attempts_and_recovery_codes(store: Store) -> None:
    totp = make(store, totp_max_attempts=1)
    secret = totp.new_secret()
    code = code_at(secret, T0)
    totp.new_recovery_codes("alice")
    assert totp.verify("alice", secret, code)
    assert not totp.verify("alice", secret, "000000" if code != "000000" else "111111")
    assert not totp.verify("alice", secret, code_at(secret, T0 + 30))  # throttled
    totp.disable("alice")
    assert totp.recovery_codes_left("alice") == 0
    assert store.keys("totp:") == []
    assert totp.verify("alice", secret, code)  # no mark, no count: as if never enrolled


def test_repr_shows_no_secret(store: Store) -> None:
    totp = make(store)
    totp.seal(totp.new_secret(), "alice")
    text = repr(totp)
    assert "issuer='sitewarden'" in text
    for secret in KeyManager(store).stored_ring(RING).secrets:
        assert secret.hex() not in text


def test_a_user_id_that_is_not_valid_unicode_is_a_clear_error() -> None:
    store = open_store("memory://")
    totp = TOTP(load_policy(), store, KeyManager.open(store))
    for call in (
        lambda: totp.seal(totp.new_secret(), "a\ud800"),
        lambda: totp.new_recovery_codes("a\ud800"),
    ):
        with pytest.raises(TotpError, match="Unicode"):
            call()
