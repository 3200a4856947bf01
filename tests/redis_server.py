"""Pytest plugin: a throwaway ``redis-server`` for the tests that need a real Redis.

Registered from ``tests/conftest.py`` (``pytest_plugins = ["tests.redis_server"]``).

* ``redis_server`` (session): one server on a free 127.0.0.1 port, without persistence,
  stopped at the end of the session. Tests may ``stop()`` and ``start()`` it (same port)
  to prove how the code behaves while Redis is down.
* ``redis_url`` (function): a URL on that server with a key prefix unique to the test, so
  tests never see each other's keys; the server is (re)started if a test left it down.

Without a ``redis-server`` binary the tests are skipped — unless
``SITEWARDEN_REQUIRE_SERVICES=1``, where they fail, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

__all__ = ["RedisServer", "free_port", "redis_binary", "redis_server", "redis_url"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` subprocess on a fixed port, which can be stopped and restarted."""

    def __init__(self, binary: str, port: int, workdir: Path, *, persistent: bool = False) -> None:
        self.binary = binary
        #: Write every change to an append-only file (fsync each write), so a stopped and
        #: restarted server has lost nothing — what a production Redis for sitewarden does.
        self.persistent = persistent
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.workdir = workdir
        self.log = workdir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers PING."""
        if self.running:
            return
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "yes" if self.persistent else "no",
                    "--appendfsync", "always",
                    "--dir", str(self.workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                if self._proc.poll() is not None:
                    pytest.fail(f"redis-server exited at start; see {self.log}:\n{self._tail()}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(
                        f"redis-server did not answer PING on port {self.port} within "
                        f"{_START_TIMEOUT:.0f} s; see {self.log}:\n{self._tail()}"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers); no-op if not running."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(_STOP_TIMEOUT)

    def _tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"


def redis_binary() -> str:
    """Return the ``redis-server`` path, or skip (fail under SITEWARDEN_REQUIRE_SERVICES=1)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("SITEWARDEN_REQUIRE_SERVICES") == "1":
            pytest.fail(
                "redis-server is not on PATH, and SITEWARDEN_REQUIRE_SERVICES=1 forbids "
                "skipping the Redis tests; install redis-server (e.g. apt-get install "
                "redis-server)"
            )
        pytest.skip("redis-server not installed")
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running ``redis-server`` on 127.0.0.1 for the whole session."""
    binary = redis_binary()
    server = RedisServer(binary, free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A URL on the test server whose key prefix is unique to this test."""
    redis_server.start()  # a previous test may have stopped it
    return f"{redis_server.url}?prefix=t-{uuid.uuid4().hex}:"
