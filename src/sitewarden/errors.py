"""The exceptions sitewarden raises, in one small hierarchy.

Every error says what went wrong and what to do about it, and never carries a secret.
Callers that only want "did sitewarden fail?" catch :class:`SitewardenError`.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "KeyringError",
    "SitewardenError",
    "StoreCorruptError",
    "StoreError",
    "StoreUnavailableError",
    "TotpError",
    "UnknownRingError",
]


class SitewardenError(Exception):
    """Base class of every error sitewarden raises on purpose."""


class ConfigError(SitewardenError, ValueError):
    """A setting or URL is wrong; the message names it."""


class StoreError(SitewardenError):
    """The state store could not do what was asked."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or opened right now (server down, file not readable).

    For SQLite nothing was changed. For Redis, a connection lost after a command was sent
    leaves it unknown whether that command was applied. Retrying later may succeed;
    sitewarden never falls back to fresh state, because that would sign every user out
    and void every form token.
    """


class StoreCorruptError(StoreError):
    """The store holds data sitewarden cannot read (not a database, malformed record).

    The data is left exactly as it is, for an operator to inspect or restore from backup.
    """


class KeyringError(SitewardenError):
    """A keyring is missing, malformed or used wrongly."""


class UnknownRingError(KeyringError, LookupError):
    """There is no ring of that name in the store (as opposed to a malformed one)."""


class TotpError(SitewardenError):
    """A TOTP secret, sealed secret or stored TOTP record cannot be used.

    It is malformed, was tampered with, was sealed for another user, or was sealed with a
    ``totp`` ring secret that is no longer in the ring. The message says which, and never
    carries the secret or a code.
    """
