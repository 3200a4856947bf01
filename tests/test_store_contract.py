"""The Store protocol, checked identically against memory, SQLite and a real Redis."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sitewarden.errors import ConfigError
from sitewarden.store import Store, open_store, redact_url
from tests.conftest import store_url_for


def test_get_set_delete(store: Store) -> None:
    assert store.get("k") is None
    store.set("k", b"v1")
    assert store.get("k") == b"v1"
    store.set("k", b"\x00\xffbinary")
    assert store.get("k") == b"\x00\xffbinary"
    assert store.delete("k") is True
    assert store.get("k") is None
    assert store.delete("k") is False


def test_set_with_ttl_expires(store: Store) -> None:
    store.set("short", b"x", ttl=0.15)
    store.set("long", b"y", ttl=60)
    assert store.get("short") == b"x"
    time.sleep(0.3)
    assert store.get("short") is None
    assert store.get("long") == b"y"
    assert "short" not in store.keys("")


def test_add_is_first_writer_wins(store: Store) -> None:
    assert store.add("mark", b"a", ttl=0.15) is True
    assert store.add("mark", b"b") is False
    assert store.get("mark") == b"a"
    time.sleep(0.3)
    assert store.add("mark", b"c") is True  # the expired mark no longer blocks
    assert store.get("mark") == b"c"


def test_update_reads_modifies_writes(store: Store) -> None:
    assert store.update("u", lambda cur: b"1" if cur is None else cur + b"1") == b"1"
    assert store.update("u", lambda cur: b"1" if cur is None else cur + b"1") == b"11"
    # None from the updater leaves the value alone and returns what is stored
    assert store.update("u", lambda cur: None) == b"11"
    assert store.update("absent", lambda cur: None) is None
    assert store.get("absent") is None


def test_update_error_aborts_and_keeps_value(store: Store) -> None:
    store.set("u", b"keep")

    def boom(cur: bytes | None) -> bytes:
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        store.update("u", boom)
    assert store.get("u") == b"keep"
    store.set("u", b"still usable")
    assert store.get("u") == b"still usable"


def test_update_is_atomic_across_threads(store: Store) -> None:
    """Eight threads appending at once lose no append."""

    def append(i: int) -> None:
        for j in range(25):
            store.update("log", lambda cur, i=i, j=j: (cur or b"") + b"%d-%d," % (i, j))

    threads = [threading.Thread(target=append, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = (store.get("log") or b"").rstrip(b",").split(b",")
    assert len(entries) == 200
    assert len(set(entries)) == 200


def test_incr_counts_and_keeps_first_ttl(store: Store) -> None:
    assert store.incr("c") == 1
    assert store.incr("c", 5) == 6
    assert store.incr("w", ttl=0.3) == 1
    time.sleep(0.15)
    assert store.incr("w", ttl=10) == 2  # a later ttl does not extend the window
    time.sleep(0.25)
    assert store.incr("w", ttl=0.3) == 1  # the window ended; a new one begins


def test_incr_is_exact_across_threads(store: Store) -> None:
    def hit() -> None:
        for _ in range(50):
            store.incr("hits", ttl=60)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.incr("hits", 0) == 400


def test_sets(store: Store) -> None:
    assert store.set_members("s") == set()
    assert store.set_add("s", b"a", b"b") == 2
    assert store.set_add("s", b"b", b"c") == 1
    assert store.set_members("s") == {b"a", b"b", b"c"}
    assert store.set_remove("s", b"a", b"zz") == 1
    assert store.set_members("s") == {b"b", b"c"}
    assert store.delete("s") is True
    assert store.set_members("s") == set()


def test_keys_by_prefix(store: Store) -> None:
    store.set("keyring:system", b"1")
    store.set("keyring:user:bob", b"2")
    store.incr("lockout:bob")
    store.set_add("keyring:set", b"x")
    store.set("keyring_%_like", b"3")  # LIKE/glob metacharacters must not match
    assert store.keys("keyring:") == ["keyring:set", "keyring:system", "keyring:user:bob"]
    assert store.keys("keyring_%") == ["keyring_%_like"]
    assert store.keys("nothing:") == []


def test_ping_and_repr(store: Store) -> None:
    store.ping()
    assert type(store).__name__ in repr(store)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_state_is_shared_between_handles(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two handles on one durable store see each other's writes (memory:// is private)."""
    url = store_url_for(kind, request, tmp_path)
    store, other = open_store(url), open_store(url)
    try:
        store.set("shared", b"yes")
        assert other.get("shared") == b"yes"
        other.incr("n")
        assert store.incr("n") == 2
    finally:
        store.close()
        other.close()


@pytest.mark.parametrize(
    "url",
    ["", "postgres://db/x", "sqlite://", "sqlite:///", "sqlite:///x.db?mode=ro", "nonsense"],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="store"):
        open_store(url)


def test_default_url_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITEWARDEN_STORE", "memory://")
    with open_store() as s:
        assert s.url == "memory://"


def test_redact_url_hides_passwords() -> None:
    assert redact_url("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert "hunter2" not in redact_url("redis://user:hunter2@h/0")
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"
    hidden = redact_url("unix:///run/redis.sock?db=0&password=hunter2")
    assert "hunter2" not in hidden
    assert "db=0" in hidden


def test_ttl_of_zero_or_less_keeps_nothing(store: Store) -> None:
    store.set("gone", b"x", ttl=0)
    assert store.get("gone") is None
    assert store.add("gone2", b"x", ttl=-1) is True
    assert store.get("gone2") is None


def test_empty_set_add_creates_nothing(store: Store) -> None:
    assert store.set_add("empty") == 0
    assert store.keys("empty") == []
