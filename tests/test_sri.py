"""Subresource Integrity values, the template helper and its cache."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from sitewarden import sri
from sitewarden.sri import integrity, integrity_for_file, sri_attributes

SAMPLE = b"alert('Hello, world.');"
# The example of the W3C SRI specification and MDN.
SAMPLE_SHA384 = "sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO"


def test_known_vector() -> None:
    assert integrity(SAMPLE) == SAMPLE_SHA384
    # and independently, straight from hashlib
    expected = "sha384-" + base64.b64encode(hashlib.sha384(SAMPLE).digest()).decode()
    assert expected == SAMPLE_SHA384


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_algorithms(algorithm: str) -> None:
    digest = hashlib.new(algorithm, SAMPLE).digest()
    assert integrity(SAMPLE, algorithm) == f"{algorithm}-{base64.b64encode(digest).decode()}"


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA384", "sha3_384", ""])
def test_other_algorithms_are_refused(algorithm: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        integrity(SAMPLE, algorithm)
    path = tmp_path / "a.js"
    path.write_bytes(SAMPLE)
    with pytest.raises(ValueError, match="algorithm"):
        integrity_for_file(path, algorithm)


def test_file(tmp_path: Path) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(SAMPLE)
    assert integrity_for_file(path) == SAMPLE_SHA384
    assert integrity_for_file(str(path), "sha256") == integrity(SAMPLE, "sha256")
    big = tmp_path / "big.bin"
    data = os.urandom(3 * 2**20 + 7)
    big.write_bytes(data)
    assert integrity_for_file(big, "sha512") == integrity(data, "sha512")


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        integrity_for_file(tmp_path / "nope.js")
    with pytest.raises(FileNotFoundError):
        sri_attributes(tmp_path / "nope.js")


def test_attributes(tmp_path: Path) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(SAMPLE)
    assert sri_attributes(path) == f'integrity="{SAMPLE_SHA384}" crossorigin="anonymous"'
    assert sri_attributes(path, crossorigin=None) == f'integrity="{SAMPLE_SHA384}"'
    assert sri_attributes(path, crossorigin="use-credentials").endswith(
        'crossorigin="use-credentials"'
    )
    assert sri_attributes(path, algorithm="sha256").startswith('integrity="sha256-')
    with pytest.raises(ValueError, match="crossorigin"):
        sri_attributes(path, crossorigin='x" onload="alert(1)')


def test_attributes_follow_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(SAMPLE)
    first = sri_attributes(path)
    assert sri_attributes(path) == first  # answered from the cache
    path.write_bytes(b"console.log('changed, and longer');")
    os.utime(path, ns=(1, 1))  # even with an old modification time the size differs
    assert sri_attributes(path) != first
    assert integrity(b"console.log('changed, and longer');") in sri_attributes(path)


def test_cache_hit_does_not_reread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "app.js"
    path.write_bytes(SAMPLE)
    sri_attributes(path)
    calls: list[object] = []
    monkeypatch.setattr(sri, "integrity_for_file", lambda *a: calls.append(a) or "x")
    assert SAMPLE_SHA384 in sri_attributes(path)
    assert calls == []
