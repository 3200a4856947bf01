"""Keyring and KeyManager: rotation, persistence, concurrency, and refusal to lose secrets."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from sitewarden.errors import ConfigError, KeyringError, StoreCorruptError, UnknownRingError
from sitewarden.keyring import (
    DEFAULT_RINGS,
    SECRET_BYTES,
    KeyManager,
    Keyring,
    fingerprint,
)
from sitewarden.store import open_store
from tests.conftest import store_url_for

# -- Keyring, the value ----------------------------------------------------------------


def test_new_ring_is_empty_until_filled() -> None:
    ring = Keyring()
    assert ring.size == 5 == len(ring)
    assert ring.secrets == ()
    with pytest.raises(KeyringError, match="empty"):
        _ = ring.current
    ring.fill()
    assert len(ring.secrets) == 5
    assert all(len(s) == SECRET_BYTES for s in ring.secrets)
    assert len(set(ring.secrets)) == 5


def test_rotate_adds_newest_first_and_drops_oldest() -> None:
    ring = Keyring(3)
    ring.fill()
    before = ring.secrets
    ring.rotate(now=1234.0)
    assert ring.size == 3
    assert ring.secrets[1:] == before[:2]
    assert ring.current not in before
    assert ring.last_rotation == 1234.0


def test_rotate_can_resize() -> None:
    ring = Keyring(2)
    ring.fill()
    old = ring.secrets
    ring.rotate(size=4)
    assert ring.size == 4
    assert ring.secrets[1:] == old  # nothing dropped when growing
    ring.rotate(size=1)
    assert ring.size == 1


def test_fill_keeps_existing_and_clear_empties() -> None:
    ring = Keyring(3)
    ring.rotate()
    first = ring.current
    ring.fill()
    assert ring.current == first
    ring.clear()
    assert ring.size == 3
    assert ring.secrets == ()


def test_repr_and_fingerprints_never_show_secrets() -> None:
    ring = Keyring()
    ring.fill()
    text = repr(ring) + str(ring.fingerprints()) + ring.to_json().decode()
    for secret in ring.secrets:
        assert secret.hex() not in repr(ring)
        assert fingerprint(secret) in text
        assert len(fingerprint(secret)) == 12


def test_json_round_trip() -> None:
    ring = Keyring(4)
    ring.rotate(now=99.5)
    copy = Keyring.from_json(ring.to_json())
    assert copy == ring
    assert list(copy) == list(ring)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"version": 2, "secrets": ["00"], "last_rotation": 0}',
        b'{"version": 1, "secrets": [], "last_rotation": 0}',
        b'{"version": 1, "secrets": ["zz"], "last_rotation": 0}',
        b'{"version": 1, "secrets": ["00ff"], "last_rotation": 0}',  # too short: 16 bits
        b'{"version": 1, "secrets": [' + b'"' + b"00" * 32 + b'"], "last_rotation": "x"}',
        b'{"version": 1, "secrets": [' + b'"' + b"00" * 32 + b'"], "last_rotation": NaN}',
        b'{"version": 1, "secrets": [' + b'"' + b"00" * 32 + b'"], "last_rotation": true}',
        b'{"version": 1, "secrets": [7], "last_rotation": 0}',
    ],
)
def test_malformed_ring_is_a_clear_error(raw: bytes) -> None:
    with pytest.raises(KeyringError, match=r"keyring 'forms' in the store is malformed"):
        Keyring.from_json(raw, "forms")


# -- KeyManager, the store -------------------------------------------------------------


def test_open_creates_and_fills_the_default_rings(store_url: str) -> None:
    keys = KeyManager.open(store_url)
    assert set(DEFAULT_RINGS) <= set(keys.names())
    for name in DEFAULT_RINGS:
        ring = keys.ring(name)
        assert ring.size == 5
        assert len(ring.secrets) == 5
    assert len({keys.secret(n) for n in DEFAULT_RINGS}) == len(DEFAULT_RINGS)
    keys.close()


def test_rings_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    first = KeyManager.open(url)
    secrets_before = {n: first.secrets(n) for n in DEFAULT_RINGS}
    first.close()
    second = KeyManager.open(url)
    assert {n: second.secrets(n) for n in DEFAULT_RINGS} == secrets_before
    second.close()


def test_rings_are_shared_through_one_store(store_url: str, tmp_path: Path) -> None:
    if store_url == "memory://":
        store = open_store(store_url)
        a, b = KeyManager.open(store), KeyManager.open(store)
    else:
        a, b = KeyManager.open(store_url), KeyManager.open(store_url)
    assert a.secrets("forms") == b.secrets("forms")
    rotated = a.rotate("forms")
    b.refresh()
    assert b.ring("forms") == rotated


def test_malformed_ring_in_store_is_reported_not_replaced(store_url: str) -> None:
    """A damaged ring stops start-up; its bytes are left for the operator."""
    store = open_store(store_url)
    store.set("keyring:sessions", b'{"version": 1, "secrets": ["short"], "last_rotation": 0}')
    with pytest.raises(KeyringError, match=r"'sessions'.*malformed"):
        KeyManager.open(store)
    assert store.get("keyring:sessions") == (
        b'{"version": 1, "secrets": ["short"], "last_rotation": 0}'
    )


def test_corrupt_sqlite_file_is_not_replaced_by_fresh_secrets(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(StoreCorruptError):
        KeyManager.open(f"sqlite:///{path}")
    assert path.read_bytes() == b"\x00garbage" * 1000


def test_rotate_and_reset() -> None:
    keys = KeyManager.open("memory://")
    before = keys.secrets("forms")
    after = keys.rotate("forms")
    assert after.secrets[1:] == before[:4]
    assert keys.ring("forms") == after
    reset = keys.reset("forms")
    assert not set(reset.secrets) & set(after.secrets)
    assert len(reset.secrets) == 5


def test_unknown_ring_is_an_error() -> None:
    keys = KeyManager.open("memory://")
    with pytest.raises(UnknownRingError, match="no keyring named 'nope'"):
        keys.ring("nope")
    with pytest.raises(KeyringError, match="no keyring named 'nope'"):
        keys.rotate("nope")


def test_ensure_creates_custom_rings_once() -> None:
    keys = KeyManager.open("memory://")
    ring = keys.ensure("api", size=3)
    assert ring.size == 3
    assert keys.ensure("api") == ring


def test_user_rings_end_every_session_of_one_user() -> None:
    keys = KeyManager.open("memory://")
    assert keys.find_user_ring("bob") is None
    ring = keys.user_ring("bob")
    assert ring.size == 1
    assert keys.find_user_ring("bob") == ring
    old = ring.current
    new = keys.rotate_user("bob")
    assert new.size == 1
    assert new.current != old
    assert old not in new.secrets
    assert keys.user_ring("alice") != new  # rings are per user
    assert "user:bob" in keys.names()
    with pytest.raises(KeyringError):
        keys.user_ring("")


def test_reading_a_user_ring_does_not_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-request path reads the cache; only the first use creates the ring."""
    keys = KeyManager.open("memory://")
    keys.user_ring("bob")
    writes: list[str] = []
    real_update = keys.store.update
    monkeypatch.setattr(keys.store, "update", lambda k, fn: writes.append(k) or real_update(k, fn))
    for _ in range(100):
        keys.user_ring("bob")
    assert writes == []


def test_malformed_user_ring_is_not_recreated() -> None:
    keys = KeyManager.open("memory://")
    keys.store.set("keyring:user:bob", b"{broken")
    with pytest.raises(KeyringError, match="malformed"):
        keys.user_ring("bob")
    assert keys.store.get("keyring:user:bob") == b"{broken"


def test_size_setting_applies_to_new_rings_and_at_rotation() -> None:
    store = open_store("memory://")
    KeyManager.open(store, size=5)
    keys = KeyManager.open(store, size=3)
    assert keys.ring("system").size == 5  # existing secrets are never dropped silently
    assert keys.rotate("system").size == 3  # the new size applies at the next rotation


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="size"):
        KeyManager.open("memory://", size=0)
    with pytest.raises(ConfigError, match=r"rotate_after\['forms'\]"):
        KeyManager.open("memory://", rotate_after={"forms": -1})


def test_lazy_rotation_when_a_ring_is_older_than_its_interval() -> None:
    store = open_store("memory://")
    keys = KeyManager.open(store, rotate_after={"forms": 0.2}, cache_ttl=0)
    first = keys.secret("forms")
    assert keys.secret("forms") == first  # young ring: no rotation
    time.sleep(0.3)
    second = keys.secret("forms")
    assert second != first
    assert first in keys.secrets("forms")  # the old secret still verifies
    assert keys.secret("system") == keys.secret("system")  # other rings unaffected


def test_lazy_rotation_happens_once_when_many_notice_together(store_url: str) -> None:
    """Ten managers finding the ring stale at once rotate it exactly once."""
    store = open_store(store_url)
    KeyManager.open(store, rotate_after={"anon": None})
    raw = json.loads(store.get("keyring:anon") or b"")
    raw["last_rotation"] = 0.0  # make it ancient
    store.set("keyring:anon", json.dumps(raw).encode())
    before = Keyring.from_json(store.get("keyring:anon") or b"")
    managers = [KeyManager(store, rotate_after={"anon": 60}, cache_ttl=0) for _ in range(10)]
    currents = {m.secret("anon") for m in managers}
    assert len(currents) == 1
    after = Keyring.from_json(store.get("keyring:anon") or b"")
    assert after.secrets[1:] == before.secrets[:4]


def test_cached_ring_sees_another_processes_rotation_after_a_miss(store_url: str) -> None:
    store = open_store(store_url)
    here = KeyManager.open(store, cache_ttl=3600)
    there = KeyManager(open_store(store_url) if store_url != "memory://" else store)
    here.miss_reload_interval = 0.0
    cached = here.ring("forms")
    rotated = there.rotate("forms")
    assert here.ring("forms") == cached  # still cached
    assert here.reload_after_miss("forms") == rotated
    assert here.ring("forms") == rotated
    assert here.reload_after_miss("forms") is None  # nothing new


def test_reload_after_miss_is_throttled() -> None:
    keys = KeyManager.open("memory://", cache_ttl=3600)
    keys.miss_reload_interval = 60.0
    keys.ring("forms")
    KeyManager(keys.store).rotate("forms")
    assert keys.reload_after_miss("forms") is None  # within the interval: no store read


def _rotate_many(url: str, count: int, out: multiprocessing.Queue[list[str]]) -> None:
    keys = KeyManager(open_store(url), size=64)
    seen = [keys.rotate("forms").current.hex() for _ in range(count)]
    keys.close()
    out.put(seen)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_concurrent_rotation_in_processes_loses_no_secret(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Four processes rotate one ring at once: every secret any of them wrote is kept."""
    url = store_url_for(kind, request, tmp_path)
    KeyManager.open(url, size=64).close()
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[str]] = ctx.Queue()
    procs = [ctx.Process(target=_rotate_many, args=(url, 10, out)) for _ in range(4)]
    for p in procs:
        p.start()
    written = [s for _ in procs for s in out.get(timeout=60)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    final = KeyManager(open_store(url)).ring("forms")
    assert final.size == 64
    assert len(final.secrets) == 64
    assert set(written) <= {s.hex() for s in final.secrets}
    assert len(set(written)) == 40
