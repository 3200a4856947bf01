"""sitewarden: one coherent, secure-by-default security layer for Python web sites.

The foundation available in this release (each module documents itself; see ``docs/``):

* :mod:`sitewarden.store` — the state store protocol and ``open_store(url)``;
* :mod:`sitewarden.keyring` — ``Keyring`` and ``KeyManager`` (named rotating secrets);
* :mod:`sitewarden.tickets` — mod_auth_tkt session tickets;
* :mod:`sitewarden.csrf` — CSRF authenticators;
* :mod:`sitewarden.errors` — the exception hierarchy.
"""

from __future__ import annotations

from sitewarden.csrf import check_token, create_token
from sitewarden.errors import (
    ConfigError,
    KeyringError,
    SitewardenError,
    StoreCorruptError,
    StoreError,
    StoreUnavailableError,
    UnknownRingError,
)
from sitewarden.keyring import KeyManager, Keyring
from sitewarden.store import Store, open_store
from sitewarden.tickets import (
    Ticket,
    TicketError,
    create_ticket,
    decode_cookie,
    encode_cookie,
    validate_ticket,
)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Import ``Warden`` on first use: the web layer stays out of core-only programs."""
    if name == "Warden":
        from sitewarden.warden import Warden

        return Warden
    raise AttributeError(f"module 'sitewarden' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "KeyManager",
    "Keyring",
    "KeyringError",
    "SitewardenError",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreUnavailableError",
    "Ticket",
    "TicketError",
    "UnknownRingError",
    "Warden",
    "__version__",
    "check_token",
    "create_ticket",
    "create_token",
    "decode_cookie",
    "encode_cookie",
    "open_store",
    "validate_ticket",
]
