"""Shared fixtures: the Redis server plugin and one store of each kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sitewarden.store import Store, open_store

pytest_plugins = ["tests.redis_server"]

BACKENDS = ["memory", "sqlite", "redis"]


def store_url_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return a fresh, empty store URL of *kind* for one test."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL, once per backend."""
    return store_url_for(request.param, request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A fresh, open store, once per backend."""
    s = open_store(store_url)
    yield s
    s.close()
