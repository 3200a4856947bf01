"""Pre-keyed HMAC: the key schedule done once, so each MAC costs two hash copies.

``hmac.new(key, msg, sha256)`` re-derives the padded inner and outer keys on every call
(1.3 µs on the reference machine). HMAC (RFC 2104) is ``H(K⊕opad ‖ H(K⊕ipad ‖ m))``: the
two hash states after absorbing ``K⊕ipad`` and ``K⊕opad`` depend only on the key, so we
absorb them once and copy the states per message (0.6 µs). Tickets and CSRF tokens are
checked on every request, which is why this module exists instead of calling
:func:`hmac.digest`; the test suite checks it against :func:`hmac.digest` for random keys
and messages of every length.
"""

from __future__ import annotations

import hashlib

__all__ = ["PREKEYED_SHA256", "PrekeyedHMAC", "prekeyed"]


class PrekeyedHMAC:
    """An HMAC key with its inner and outer hash states precomputed.

    >>> import hmac
    >>> PrekeyedHMAC(b"key", "sha256").digest(b"msg") == hmac.digest(b"key", b"msg", "sha256")
    True
    """

    __slots__ = ("_inner", "_outer", "algorithm", "digest_size")

    def __init__(self, key: bytes, algorithm: str = "sha256") -> None:
        """Absorb *key* into the inner and outer states of hash *algorithm*."""
        inner = hashlib.new(algorithm)
        outer = hashlib.new(algorithm)
        block = inner.block_size
        if len(key) > block:  # RFC 2104: long keys are hashed first
            key = hashlib.new(algorithm, key).digest()
        key = key.ljust(block, b"\0")
        inner.update(key.translate(_IPAD))
        outer.update(key.translate(_OPAD))
        self._inner = inner
        self._outer = outer
        self.algorithm = algorithm
        self.digest_size = inner.digest_size

    def digest(self, message: bytes) -> bytes:
        """Return HMAC(key, *message*) as raw bytes."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __repr__(self) -> str:
        """Name the algorithm only: the key never appears in a repr."""
        return f"<PrekeyedHMAC {self.algorithm}>"


# Translation tables XOR every byte with the HMAC pad constants in one C-level pass.
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))

#: HMAC-SHA256 states by key, shared by every caller. Keyed by the key bytes alone, so a
#: hot path can look a key up with ``PREKEYED_SHA256.get(key)`` without allocating;
#: entries are added through :func:`prekeyed`, which keeps the cache bounded.
PREKEYED_SHA256: dict[bytes, PrekeyedHMAC] = {}
_CACHE_LIMIT = 1024


def prekeyed(key: bytes) -> PrekeyedHMAC:
    """Return the cached HMAC-SHA256 :class:`PrekeyedHMAC` for *key*.

    The cache is bounded (it is emptied when full), so a stream of distinct keys cannot
    grow memory without limit.
    """
    mac = PREKEYED_SHA256.get(key)
    if mac is None:
        if len(PREKEYED_SHA256) >= _CACHE_LIMIT:
            PREKEYED_SHA256.clear()
        mac = PREKEYED_SHA256[key] = PrekeyedHMAC(key)
    return mac
