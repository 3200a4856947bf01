"""SQLite store: private file, WAL, atomic writes across processes, corruption reported."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from sitewarden.errors import StoreCorruptError, StoreUnavailableError
from sitewarden.store import open_store
from sitewarden.store.sqlite import SQLiteStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_and_directory_are_private(tmp_path: Path) -> None:
    """Other local users cannot read the secrets: file 0600, new directory 0700."""
    old = os.umask(0o022)  # a typical, permissive umask
    try:
        path = tmp_path / "new-dir" / "state.db"
        store = open_store(f"sqlite:///{path}")
        store.set("k", b"v")
    finally:
        os.umask(old)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    for side in ("state.db-wal", "state.db-shm"):
        side_file = path.parent / side
        if side_file.exists():
            assert _mode(side_file) & 0o077 == 0, side
    store.close()


def test_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_relative_url_is_relative_to_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///.sitewarden/state.db") as store:
        store.set("k", b"v")
    assert (tmp_path / ".sitewarden" / "state.db").exists()


def test_data_survives_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    with open_store(url) as store:
        store.set("k", b"v")
        store.incr("n", 3)
        store.set_add("s", b"m")
    with open_store(url) as store:
        assert store.get("k") == b"v"
        assert store.incr("n", 0) == 3
        assert store.set_members("s") == {b"m"}


def test_not_a_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    """A damaged file is an error naming the file, never silently replaced."""
    path = tmp_path / "state.db"
    garbage = b"this is not an sqlite file at all" * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreCorruptError, match=r"state\.db.*left untouched"):
        open_store(f"sqlite:///{path}")
    assert path.read_bytes() == garbage


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE sitewarden_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(StoreCorruptError, match="schema version"):
        SQLiteStore(path)


def test_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailableError, match="cannot create"):
        open_store(f"sqlite:///{blocker}/state.db")


def _append_many(url: str, worker: int, count: int) -> None:
    store = open_store(url)
    for i in range(count):
        store.update("log", lambda cur, i=i: (cur or b"") + b"%d:%d," % (worker, i))
        store.incr("hits")
    store.close()


def test_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    """Four processes read-modify-write one key at once; every write survives."""
    url = f"sqlite:///{tmp_path}/state.db"
    open_store(url).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(url, w, 60)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with open_store(url) as store:
        entries = (store.get("log") or b"").rstrip(b",").split(b",")
        assert len(entries) == 240 == len(set(entries))
        assert store.incr("hits", 0) == 240


def test_forked_child_gets_its_own_connection(tmp_path: Path) -> None:
    """A store opened before a fork (gunicorn --preload) keeps working in the child."""
    url = f"sqlite:///{tmp_path}/state.db"
    store = open_store(url)
    store.set("before", b"fork")
    pid = os.fork()
    if pid == 0:  # child
        try:
            ok = store.get("before") == b"fork"
            store.set("child", b"wrote")
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get("child") == b"wrote"
    store.close()
