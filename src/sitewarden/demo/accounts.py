"""The demo site's user accounts, kept in sitewarden's own store.

Each account is one key, ``demo:user:<name>``, holding JSON::

    {"name": "admin", "hash": "$argon2id$v=19$m=19456,t=2,p=1$…", "admin": true,
     "created": 1767225600.0}

Passwords are hashed with Argon2id at OWASP's recommended parameters (19 MiB of memory,
two passes, one lane). Nothing else about a password is ever stored or logged.

:meth:`Accounts.verify` takes about the same time whether or not the account exists: an
unknown (or malformed) user name is checked against a dummy hash made with the same
parameters, so response timing does not reveal which accounts exist. Its result is the
same ``None`` for "no such user" and "wrong password"; callers show one message for both.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sitewarden.store.base import Store

__all__ = [
    "ADMIN_NAME",
    "MAX_PASSWORD",
    "USER_PREFIX",
    "Account",
    "Accounts",
    "new_password",
    "password_hasher",
    "valid_name",
]

#: Store key prefix of the accounts.
USER_PREFIX = "demo:user:"
#: The first account, created with a random password at first start.
ADMIN_NAME = "admin"
#: Longest password accepted (longer ones are refused before hashing: no hashing DoS).
MAX_PASSWORD = 1024

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


def password_hasher() -> PasswordHasher:
    """Return Argon2id with OWASP's parameters: m=19456 KiB, t=2, p=1."""
    return PasswordHasher(
        time_cost=2, memory_cost=19_456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
    )


def new_password() -> str:
    """Return a fresh random password (144 bits, URL-safe characters)."""
    return secrets.token_urlsafe(18)


def valid_name(name: str) -> bool:
    """Return whether *name* is an acceptable user name (lower-case, 1 to 32 characters)."""
    return bool(_NAME.match(name))


@dataclass(frozen=True, slots=True)
class Account:
    """One stored account (the hash stays in the store; it is not needed outside)."""

    name: str
    admin: bool
    created: float


class Accounts:
    """Create and verify the demo's accounts in *store*."""

    def __init__(self, store: Store, hasher: PasswordHasher | None = None) -> None:
        """Use *store*; *hasher* defaults to :func:`password_hasher`."""
        self.store = store
        self.hasher = hasher if hasher is not None else password_hasher()
        # Same parameters as real hashes, so a miss costs what a hit costs.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(18))

    @staticmethod
    def key(name: str) -> str:
        """Return the store key of account *name*."""
        return USER_PREFIX + name

    def create(self, name: str, password: str, *, admin: bool = False) -> bool:
        """Create account *name* with *password*; return ``False`` if it already exists.

        Raise :class:`ValueError` for an invalid name or an empty or overlong password.
        """
        if not valid_name(name):
            raise ValueError(f"invalid user name {name!r}: 1 to 32 of a-z 0-9 _ . - (lower case)")
        if not password or len(password) > MAX_PASSWORD:
            raise ValueError(f"a password must have 1 to {MAX_PASSWORD} characters")
        record = {
            "name": name,
            "hash": self.hasher.hash(password),
            "admin": admin,
            "created": time.time(),
        }
        return self.store.add(self.key(name), json.dumps(record).encode())

    def set_password(self, name: str, password: str) -> bool:
        """Replace the password of account *name*; return ``False`` if there is none."""
        if not password or len(password) > MAX_PASSWORD:
            raise ValueError(f"a password must have 1 to {MAX_PASSWORD} characters")
        new = self.hasher.hash(password)

        def change(raw: bytes | None) -> bytes | None:
            if raw is None:
                return None
            record = json.loads(raw)
            record["hash"] = new
            return json.dumps(record).encode()

        return self.store.update(self.key(name), change) is not None

    def get(self, name: str) -> Account | None:
        """Return account *name*, or ``None`` if there is none (or it is unreadable)."""
        record = self._record(name)
        if record is None:
            return None
        return Account(name, bool(record.get("admin")), float(record.get("created", 0)))

    def names(self) -> list[str]:
        """Return every account name, sorted."""
        return [key[len(USER_PREFIX) :] for key in self.store.keys(USER_PREFIX)]

    def stored_hash(self, name: str) -> str | None:
        """Return the stored Argon2id hash of *name* (for inspection and tests)."""
        record = self._record(name)
        return None if record is None else str(record["hash"])

    def verify(self, name: str, password: str) -> Account | None:
        """Return the account if *password* is right for *name*, else ``None``.

        An unknown or malformed name costs one Argon2id verification too (see the module
        docstring). A hash made with older parameters is upgraded on success.
        """
        record = self._record(name) if valid_name(name) else None
        if not password or len(password) > MAX_PASSWORD:
            password = ""  # still hash below: the same work as a real check
        encoded = str(record["hash"]) if record is not None else self._dummy
        try:
            self.hasher.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if record is None or not password:
            return None
        if self.hasher.check_needs_rehash(encoded):
            self._rehash(name, encoded, password)
        return Account(name, bool(record.get("admin")), float(record.get("created", 0)))

    def _record(self, name: str) -> dict[str, Any] | None:
        raw = self.store.get(self.key(name))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
            return None
        return record

    def _rehash(self, name: str, old: str, password: str) -> None:
        new = self.hasher.hash(password)

        def upgrade(raw: bytes | None) -> bytes | None:
            if raw is None:
                return None
            record = json.loads(raw)
            if record.get("hash") != old:
                return None  # changed meanwhile: leave it
            record["hash"] = new
            return json.dumps(record).encode()

        self.store.update(self.key(name), upgrade)
