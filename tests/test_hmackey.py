"""PrekeyedHMAC is exactly HMAC (RFC 2104), its cache is bounded, and it keeps keys secret."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden import hmackey
from sitewarden.hmackey import PrekeyedHMAC, prekeyed

ALGORITHMS = ["sha256", "md5", "sha512", "sha1"]
MESSAGES = [b"", b"a", b"msg", bytes(range(256)), b"x" * 1000]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_key_length_up_to_200(algorithm) -> None:
    # covers keys shorter than, equal to and longer than every block size (64 and 128)
    for length in range(201):
        key = bytes((i * 7 + length) % 256 for i in range(length))
        mac = PrekeyedHMAC(key, algorithm)
        for message in MESSAGES:
            assert mac.digest(message) == hmac.digest(key, message, algorithm), (length, message)


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 127, 128, 129, 1000])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_block_size_boundaries(algorithm, length) -> None:
    for fill in (b"\x00", b"\x36", b"\x5c", b"\xff"):
        key = fill * length
        expected = hmac.new(key, b"message", getattr(hashlib, algorithm)).digest()
        assert PrekeyedHMAC(key, algorithm).digest(b"message") == expected


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200),
    st.binary(max_size=500),
    st.sampled_from(ALGORITHMS),
)
def test_matches_hmac_digest(key, message, algorithm) -> None:
    assert PrekeyedHMAC(key, algorithm).digest(message) == hmac.digest(key, message, algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_reusable_and_order_independent(algorithm) -> None:
    # the precomputed states are copied, never consumed by a digest
    mac = PrekeyedHMAC(b"key", algorithm)
    first = [mac.digest(m) for m in MESSAGES]
    second = [mac.digest(m) for m in reversed(MESSAGES)][::-1]
    assert first == second == [hmac.digest(b"key", m, algorithm) for m in MESSAGES]


def test_default_algorithm_and_attributes() -> None:
    mac = PrekeyedHMAC(b"key")
    assert mac.algorithm == "sha256"
    assert mac.digest_size == 32
    assert mac.digest(b"m") == hmac.digest(b"key", b"m", "sha256")
    assert PrekeyedHMAC(b"key", "sha512").digest_size == 64
    assert PrekeyedHMAC(b"key", "md5").digest_size == 16


def test_unknown_algorithm_raises() -> None:
    with pytest.raises(ValueError):
        PrekeyedHMAC(b"key", "no-such-hash")


def test_prekeyed_is_cached_per_key() -> None:
    key = b"cache me"
    assert prekeyed(key) is prekeyed(key)
    assert hmackey.PREKEYED_SHA256.get(key) is prekeyed(key)
    assert prekeyed(key).digest(b"m") == hmac.digest(key, b"m", "sha256")
    assert prekeyed(key + b"!") is not prekeyed(key)
    assert prekeyed(key + b"!").digest(b"m") == hmac.digest(key + b"!", b"m", "sha256")


def test_prekeyed_cache_is_bounded() -> None:
    """A stream of distinct keys (e.g. one per forged request) cannot grow memory forever."""
    limit = hmackey._CACHE_LIMIT
    for i in range(2 * limit + 10):
        key = b"distinct key %d" % i
        mac = prekeyed(key)
        assert len(hmackey.PREKEYED_SHA256) <= limit
        if i % 97 == 0:
            assert mac.digest(b"m") == hmac.digest(key, b"m", "sha256")
    # still correct after it has been emptied and refilled
    assert prekeyed(b"distinct key 0").digest(b"m") == hmac.digest(
        b"distinct key 0", b"m", "sha256"
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_repr_does_not_contain_the_key(algorithm) -> None:
    """A logged or printed PrekeyedHMAC never reveals its key."""
    key = b"TopSecretKeyMaterial-\xde\xad\xbe\xef"
    mac = PrekeyedHMAC(key, algorithm)
    text = repr(mac) + str(mac)
    assert algorithm in text
    for leak in (repr(key), key.hex(), "TopSecret", "deadbeef", r"\xde\xad"):
        assert leak not in text
    assert not hasattr(mac, "__dict__")  # no stray attribute holding the key
