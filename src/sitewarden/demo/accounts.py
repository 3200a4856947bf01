"""The demo site's user accounts, kept in sitewarden's own store.

Each account is one key, ``demo:user:<name>``, holding JSON::

    {"name": "admin", "hash": "$argon2id$v=19$m=19456,t=2,p=1$…", "admin": true,
     "created": 1767225600.0, "totp": "swtotp1:…", "totp_since": 1767229200.0}

Passwords are hashed and verified by sitewarden's
:class:`~sitewarden.accounts.passwords.Passwords` (``warden.passwords``): Argon2id with the
policy's parameters (OWASP's 19 MiB of memory, two passes, one lane by default). Nothing
else about a password is ever stored or logged. ``totp`` is the account's TOTP secret
*sealed* by :meth:`sitewarden.accounts.totp.TOTP.seal` (AES-256-GCM, bound to the user
name), present only while two-factor sign-in is on.

:meth:`Accounts.verify` takes about the same time whether or not the account exists: an
unknown (or malformed) user name is checked by ``passwords.verify(None, password)``, which
verifies against a dummy hash made with the same parameters, so response timing does not
reveal which accounts exist. Its result is the same ``None`` for "no such user" and "wrong
password"; callers show one message for both. A hash made with other parameters is
replaced after a successful sign-in (``Verification.new_hash``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sitewarden.store.base import Store

if TYPE_CHECKING:
    from sitewarden.accounts.passwords import Passwords

__all__ = [
    "ADMIN_NAME",
    "MAX_PASSWORD",
    "USER_PREFIX",
    "Account",
    "Accounts",
    "new_password",
    "valid_name",
]

#: Store key prefix of the accounts.
USER_PREFIX = "demo:user:"
#: The first account, created with a random password at first start.
ADMIN_NAME = "admin"
#: Longest password looked at when signing in (longer ones are refused before hashing: no
#: hashing DoS). New passwords are held to the policy's ``password_max_length``.
MAX_PASSWORD = 1024

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


def new_password() -> str:
    """Return a fresh random password (144 bits, 24 URL-safe characters)."""
    return secrets.token_urlsafe(18)


def valid_name(name: str) -> bool:
    """Return whether *name* is an acceptable user name (lower-case, 1 to 32 characters)."""
    return bool(_NAME.match(name))


@dataclass(frozen=True, slots=True)
class Account:
    """One stored account (the hash and the sealed TOTP secret stay in the store)."""

    name: str
    admin: bool
    created: float
    #: Whether two-factor sign-in (TOTP) is on for this account.
    two_factor: bool = False
    #: When two-factor sign-in was switched on (Unix time), or ``None``.
    two_factor_since: float | None = None


class Accounts:
    """Create, verify and change the demo's accounts in *store*, hashing with *passwords*."""

    def __init__(self, store: Store, passwords: Passwords) -> None:
        """Keep accounts in *store*; *passwords* hashes and verifies (``warden.passwords``)."""
        self.store = store
        self.passwords = passwords

    @staticmethod
    def key(name: str) -> str:
        """Return the store key of account *name*."""
        return USER_PREFIX + name

    def create(self, name: str, password: str, *, admin: bool = False) -> bool:
        """Create account *name* with *password*; return ``False`` if it already exists.

        Raise :class:`ValueError` for an invalid name or an empty or overlong password.
        (Whether the password is *good* is the caller's question: ``passwords.check``.)
        """
        if not valid_name(name):
            raise ValueError(f"invalid user name {name!r}: 1 to 32 of a-z 0-9 _ . - (lower case)")
        _check_length(password)
        record = {
            "name": name,
            "hash": self.passwords.hash(password),
            "admin": admin,
            "created": time.time(),
        }
        return self.store.add(self.key(name), json.dumps(record).encode())

    def set_password(self, name: str, password: str) -> bool:
        """Replace the password of account *name*; return ``False`` if there is none."""
        _check_length(password)
        new = self.passwords.hash(password)
        return self._change(name, lambda record: record.update(hash=new))

    def get(self, name: str) -> Account | None:
        """Return account *name*, or ``None`` if there is none (or it is unreadable)."""
        record = self._record(name) if valid_name(name) else None
        return None if record is None else _account(record)

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
        docstring). A hash made with other parameters is replaced on success.
        """
        record = self._record(name) if valid_name(name) else None
        if not password or len(password) > MAX_PASSWORD:
            password = ""  # still verified below: the same work as a real check
        stored = str(record["hash"]) if record is not None else None
        result = self.passwords.verify(stored, password)
        if not result or record is None or stored is None or not password:
            return None
        if result.new_hash is not None:
            self._replace_hash(name, stored, result.new_hash)
        return _account(record)

    # -- two-factor -------------------------------------------------------------------

    def sealed_totp(self, name: str) -> str | None:
        """Return the sealed TOTP secret of *name*, or ``None`` when 2FA is off."""
        record = self._record(name) if valid_name(name) else None
        sealed = None if record is None else record.get("totp")
        return sealed if isinstance(sealed, str) and sealed else None

    def set_totp(self, name: str, sealed: str | None) -> bool:
        """Switch two-factor sign-in on with the *sealed* secret, or off with ``None``.

        Return ``False`` if there is no account *name*.
        """
        since = time.time()

        def change(record: dict[str, Any]) -> None:
            if sealed is None:
                record.pop("totp", None)
                record.pop("totp_since", None)
            else:
                record.update(totp=sealed, totp_since=since)

        return self._change(name, change)

    # -- internals --------------------------------------------------------------------

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

    def _change(self, name: str, edit: Callable[[dict[str, Any]], None]) -> bool:
        """Apply *edit* to the record of *name* atomically; return whether it exists."""

        def apply(raw: bytes | None) -> bytes | None:
            if raw is None:
                return None
            record = json.loads(raw)
            edit(record)  # pure: update() may call this more than once
            return json.dumps(record).encode()

        return self.store.update(self.key(name), apply) is not None

    def _replace_hash(self, name: str, old: str, new: str) -> None:
        def upgrade(raw: bytes | None) -> bytes | None:
            if raw is None:
                return None
            record = json.loads(raw)
            if record.get("hash") != old:
                return None  # changed meanwhile (a new password): leave it
            record["hash"] = new
            return json.dumps(record).encode()

        self.store.update(self.key(name), upgrade)


def _check_length(password: str) -> None:
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD:
        raise ValueError(f"a password must have 1 to {MAX_PASSWORD} characters")


def _account(record: dict[str, Any]) -> Account:
    sealed = record.get("totp")
    since = record.get("totp_since")
    return Account(
        str(record.get("name", "")),
        bool(record.get("admin")),
        float(record.get("created", 0)),
        two_factor=isinstance(sealed, str) and bool(sealed),
        two_factor_since=float(since) if isinstance(since, int | float) else None,
    )
