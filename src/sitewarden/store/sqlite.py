"""The embedded default store: one SQLite file, private to its owner, in WAL mode.

Why these choices:

* The file is created ``0600`` (and a missing parent directory ``0700``) before SQLite
  opens it, so the keyring's secrets are never readable by other local users, not even for
  the instant between creation and a later ``chmod``. SQLite gives its ``-wal`` and
  ``-shm`` files the same permissions as the database.
* WAL lets readers (every request) proceed while a writer (a rotation) commits, and
  ``synchronous=FULL`` makes a committed rotation survive a power cut: a secret that has
  signed a cookie must never roll back.
* Every change is one transaction. Read-modify-write operations start with
  ``BEGIN IMMEDIATE``, which takes SQLite's write lock before reading, so two processes
  updating the same key are serialised and neither loses the other's write.
* A file that is not an SQLite database, or holds tables of another schema version, is
  reported as :class:`~sitewarden.errors.StoreCorruptError` and left untouched.

Expiry times are wall-clock (``time.time()``) because they are shared between processes.
So is the throttle state (:meth:`SQLiteStore.throttle`): the theoretical arrival time in
integer nanoseconds since the epoch, stored as decimal text with the row expiring when
it is reached; processes on one machine share the clock.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from sitewarden.errors import StoreCorruptError, StoreError, StoreUnavailableError
from sitewarden.store.base import Store, Throttle, Updater, check_throttle_args, new_throttle

__all__ = ["SQLiteStore"]

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sitewarden_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sitewarden_kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires REAL
);
CREATE TABLE IF NOT EXISTS sitewarden_sets (
    key TEXT NOT NULL,
    member BLOB NOT NULL,
    PRIMARY KEY (key, member)
);
"""

#: Expired rows are removed lazily: once every this many writes on a connection.
_PURGE_EVERY = 512

#: Keys read per statement by get_many (well below SQLite's limit on bound parameters).
_CHUNK = 500

#: Messages by which SQLite says the file is damaged rather than busy or missing.
_CORRUPT_HINTS = ("not a database", "malformed", "corrupt")


class SQLiteStore(Store):
    """A :class:`~sitewarden.store.base.Store` in one SQLite file (see the module docstring)."""

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0, create: bool = True
    ) -> None:
        """Open the store at *path*, creating it first unless ``create=False``.

        *busy_timeout* is how long a writer waits for another process's transaction
        before :class:`~sitewarden.errors.StoreUnavailableError` is raised.
        """
        self.path = os.fspath(path)
        self.url = "sqlite:///" + self.path
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._writes = 0
        self._pid = os.getpid()
        if create:
            self._create_private_file()
        elif not os.path.exists(self.path):
            raise StoreUnavailableError(f"store: there is no store at {self.path!r}")
        self._conn = self._connect()

    # -- opening ---------------------------------------------------------------------

    def _create_private_file(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"store: cannot create the directory of {self.path!r}: {exc.strerror}"
            ) from exc
        try:
            # O_EXCL: create it ourselves with 0600, or leave an existing file as it is.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise StoreUnavailableError(
                f"store: cannot create {self.path!r}: {exc.strerror}"
            ) from exc
        os.close(fd)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailableError(
                    f"store: {self.path!r} cannot use WAL mode (got {mode!r}); "
                    "is it on a network file system?"
                )
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute(
                "SELECT value FROM sitewarden_meta WHERE name = 'schema_version'"
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO sitewarden_meta (name, value) VALUES ('schema_version', ?)",
                    (SCHEMA_VERSION,),
                )
            elif row[0] != SCHEMA_VERSION:
                raise StoreCorruptError(
                    f"store: {self.path!r} has schema version {row[0]!r}, this sitewarden "
                    f"reads version {SCHEMA_VERSION!r}; upgrade sitewarden or restore a backup"
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from exc
        except StoreError:
            conn.close()
            raise
        return conn

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if any(hint in text.lower() for hint in _CORRUPT_HINTS):
            return StoreCorruptError(
                f"store: {self.path!r} is not a readable sitewarden database ({text}); "
                "it was left untouched — restore it from a backup or move it away"
            )
        return StoreUnavailableError(f"store: {self.path!r}: {text}")

    # -- plumbing --------------------------------------------------------------------

    @contextlib.contextmanager
    def _cursor(self, write: bool) -> Iterator[sqlite3.Connection]:
        """Run a block in one transaction (``BEGIN IMMEDIATE`` for writes)."""
        with self._lock:
            if os.getpid() != self._pid:
                # A forked child must not use its parent's connection (SQLite's rule);
                # the parent's object is kept referenced so it is never closed here.
                self._inherited = self._conn
                self._conn = self._connect()
                self._pid = os.getpid()
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise self._translate(exc) from exc
            if write:
                self._writes += 1
                if self._writes % _PURGE_EVERY == 0:
                    self._purge()

    def _purge(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute(
                "DELETE FROM sitewarden_kv WHERE expires IS NOT NULL AND expires <= ?",
                (time.time(),),
            )

    @staticmethod
    def _deadline(ttl: float | None) -> float | None:
        return None if ttl is None else time.time() + ttl

    @staticmethod
    def _live_row(conn: sqlite3.Connection, key: str) -> Any:
        row = conn.execute(
            "SELECT value, expires FROM sitewarden_kv WHERE key = ?", (key,)
        ).fetchone()
        if row is not None and row[1] is not None and row[1] <= time.time():
            conn.execute("DELETE FROM sitewarden_kv WHERE key = ?", (key,))
            return None
        return row

    # -- key-value -------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``."""
        with self._cursor(write=False) as conn:
            row = conn.execute(
                "SELECT value FROM sitewarden_kv WHERE key = ? "
                "AND (expires IS NULL OR expires > ?)",
                (key, time.time()),
            ).fetchone()
        return None if row is None else _as_bytes(row[0])

    def get_many(self, keys: Sequence[str]) -> builtins.list[bytes | None]:
        """Return the values of *keys* in order, read in one transaction."""
        if not keys:
            return []
        with self._cursor(write=False) as conn:
            found = self._read_many(conn, keys)
        return [found.get(key) for key in keys]

    @staticmethod
    def _read_many(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, bytes]:
        """Read the live values of *keys* inside the caller's transaction."""
        found: dict[str, bytes] = {}
        now = time.time()
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT key, value FROM sitewarden_kv WHERE key IN ({marks}) "  # noqa: S608 (only ? marks)
                "AND (expires IS NULL OR expires > ?)",
                (*chunk, now),
            ).fetchall()
            for key, value in rows:
                found[key] = _as_bytes(value)
        return found

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store *value* under *key* with an optional time to live."""
        with self._cursor(write=True) as conn:
            conn.execute("DELETE FROM sitewarden_sets WHERE key = ?", (key,))
            conn.execute(
                "INSERT OR REPLACE INTO sitewarden_kv (key, value, expires) VALUES (?, ?, ?)",
                (key, bytes(value), self._deadline(ttl)),
            )

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store *value* only if *key* is absent; return whether it was stored."""
        with self._cursor(write=True) as conn:
            if self._live_row(conn, key) is not None:
                return False
            conn.execute(
                "INSERT INTO sitewarden_kv (key, value, expires) VALUES (?, ?, ?)",
                (key, bytes(value), self._deadline(ttl)),
            )
            return True

    def delete(self, key: str) -> bool:
        """Remove *key*; return whether it existed."""
        with self._cursor(write=True) as conn:
            live = self._live_row(conn, key) is not None
            conn.execute("DELETE FROM sitewarden_kv WHERE key = ?", (key,))
            in_set = conn.execute("DELETE FROM sitewarden_sets WHERE key = ?", (key,))
            return live or in_set.rowcount > 0

    def update(self, key: str, fn: Updater, ttl: float | None = None) -> bytes | None:
        """Atomically replace the value under *key* by ``fn(current)``."""
        with self._cursor(write=True) as conn:
            row = self._live_row(conn, key)
            current = None if row is None else _as_bytes(row[0])
            new = fn(current)
            if new is None:
                return current
            conn.execute(
                "INSERT OR REPLACE INTO sitewarden_kv (key, value, expires) VALUES (?, ?, ?)",
                (key, bytes(new), self._deadline(ttl)),
            )
            return bytes(new)

    def keys(self, prefix: str) -> list[str]:
        """Return the live keys starting with *prefix*, sorted."""
        # substr() comparison instead of LIKE: a prefix may contain % or _.
        with self._cursor(write=False) as conn:
            rows = conn.execute(
                "SELECT key FROM sitewarden_kv WHERE substr(key, 1, ?) = ? "
                "AND (expires IS NULL OR expires > ?) "
                "UNION SELECT DISTINCT key FROM sitewarden_sets WHERE substr(key, 1, ?) = ?",
                (len(prefix), prefix, time.time(), len(prefix), prefix),
            ).fetchall()
        return sorted(r[0] for r in rows)

    # -- counters --------------------------------------------------------------------

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add *amount* to the counter *key*; *ttl* is set when it is created."""
        with self._cursor(write=True) as conn:
            row = self._live_row(conn, key)
            if row is None:
                conn.execute(
                    "INSERT INTO sitewarden_kv (key, value, expires) VALUES (?, ?, ?)",
                    (key, amount, self._deadline(ttl)),
                )
                return amount
            try:
                count = int(row[0]) + amount
            except (TypeError, ValueError) as exc:
                raise StoreCorruptError(f"store: {key!r} does not hold a counter") from exc
            conn.execute("UPDATE sitewarden_kv SET value = ? WHERE key = ?", (count, key))
            return count

    # -- rate limiting ---------------------------------------------------------------

    def throttle(
        self, key: str, limit: int, period: float, cost: int = 1, peek: Sequence[str] = ()
    ) -> Throttle:
        """Decide one request by GCRA in one ``BEGIN IMMEDIATE`` transaction.

        The write lock is taken before the state is read, so concurrent processes are
        serialised and none is counted twice or lost (see :meth:`Store.throttle`).
        """
        check_throttle_args(limit, period, cost)
        interval = round(period * 1e9 / limit)  # ns between two requests at the steady rate
        capacity = interval * limit
        increment = interval * cost
        with self._cursor(write=True) as conn:
            now = time.time_ns()
            row = self._live_row(conn, key)
            tat = now
            if row is not None:
                try:
                    tat = max(int(row[0]), now)
                except (TypeError, ValueError) as exc:
                    raise StoreCorruptError(
                        f"store: {key!r} does not hold a throttle state"
                    ) from exc
            debt = tat + increment - now
            allowed = debt <= capacity
            if allowed and increment:
                new_tat = now + debt
                conn.execute(
                    "INSERT OR REPLACE INTO sitewarden_kv (key, value, expires) VALUES (?, ?, ?)",
                    (key, b"%d" % new_tat, new_tat / 1e9),
                )
            peeked: tuple[bytes | None, ...] = ()
            if peek:
                found = self._read_many(conn, peek)
                peeked = tuple(found.get(k) for k in peek)
        if allowed:
            return new_throttle(True, limit, (capacity - debt) // interval, 0.0, debt / 1e9, peeked)
        held = tat - now
        return new_throttle(
            False, limit, (capacity - held) // interval, (debt - capacity) / 1e9, held / 1e9, peeked
        )

    # -- sets ------------------------------------------------------------------------

    def set_add(self, key: str, *members: bytes) -> int:
        """Add *members* to the set *key*; return how many were new."""
        with self._cursor(write=True) as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO sitewarden_sets (key, member) VALUES (?, ?)",
                [(key, bytes(m)) for m in members],
            )
            return conn.total_changes - before

    def set_remove(self, key: str, *members: bytes) -> int:
        """Remove *members* from the set *key*; return how many were there."""
        with self._cursor(write=True) as conn:
            before = conn.total_changes
            conn.executemany(
                "DELETE FROM sitewarden_sets WHERE key = ? AND member = ?",
                [(key, bytes(m)) for m in set(members)],
            )
            return conn.total_changes - before

    def set_members(self, key: str) -> builtins.set[bytes]:
        """Return the members of the set *key*."""
        with self._cursor(write=False) as conn:
            rows = conn.execute(
                "SELECT member FROM sitewarden_sets WHERE key = ?", (key,)
            ).fetchall()
        return {_as_bytes(r[0]) for r in rows}

    # -- lifecycle -------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the file can still be read."""
        with self._cursor(write=False) as conn:
            conn.execute("SELECT 1 FROM sitewarden_meta LIMIT 1").fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):  # a counter read through get()
        return str(value).encode()
    if isinstance(value, str):
        return value.encode()
    raise StoreCorruptError(f"store: unexpected value of type {type(value).__name__}")
