"""The ``sitewarden lockout`` command (wired in by :mod:`sitewarden.cli`).

``sitewarden lockout list [--store URL] [--settings FILE] [--json]`` shows the active
login locks (accounts, then client addresses). ``sitewarden lockout unlock LOGIN
[--address] [--store URL] [--settings FILE]`` lifts the lock of a login — or, with
``--address``, of a client address or the IPv6 network that ``list`` shows — and forgets
its failures. Neither creates a store: a store that does not exist is an error.

``--settings`` names the site's ``sitewarden.toml``; it matters for ``unlock --address``
with a plain IPv6 address (counted per ``rate_limit_ipv6_prefix``) and for the length of
the lock that replaces a damaged record. Expected failures end with one line on standard
error: exit status 1 for a runtime failure (store unavailable or damaged), 2 for a bad
setting or argument.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sitewarden.cli_common import (
    EXIT_USAGE,
    add_store_option,
    error,
    guarded,
    returns_failure_status,
    store_url,
    with_store,
)
from sitewarden.guards.lockout import Lockout, LockRecord
from sitewarden.keyring import KeyManager
from sitewarden.policy import Policy, load_policy
from sitewarden.store import Store

__all__ = ["add_lockout_parser", "run_lockout"]

_SETTINGS_HELP = "the site's settings file (sitewarden.toml), for its lockout settings"
#: Removed from names before they are printed: controls (terminal escapes), bidi overrides.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def add_lockout_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lockout`` command (``list`` and ``unlock``) to *subparsers*."""
    text = "list and lift login locks (accounts and client addresses)"
    parser = subparsers.add_parser("lockout", help=text, description=text)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    text = "show the active locks: accounts, then client addresses"
    listing = actions.add_parser("list", help=text, description=text)
    add_store_option(listing)
    listing.add_argument("--settings", default=None, metavar="FILE", help=_SETTINGS_HELP)
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    text = "lift the lock of a login (or, with --address, of a client address)"
    unlock = actions.add_parser("unlock", help=text, description=text)
    unlock.add_argument("login", metavar="LOGIN", help="the login (or address) to unlock")
    unlock.add_argument(
        "--address",
        action="store_true",
        help="LOGIN is a client address, or the IPv6 network shown by 'lockout list'",
    )
    add_store_option(unlock)
    unlock.add_argument("--settings", default=None, metavar="FILE", help=_SETTINGS_HELP)


@returns_failure_status
def run_lockout(args: argparse.Namespace, console: Console) -> int:
    """Run ``sitewarden lockout list|unlock``; return the exit status."""
    url = store_url(args)
    action = getattr(args, "action", None)
    if action not in ("list", "unlock"):
        error("lockout: expected the action 'list' or 'unlock'")
        return EXIT_USAGE
    settings = getattr(args, "settings", None)
    # A ValueError (a bad setting, an address that is not one) is a usage error too. The
    # policy is loaded before the store is opened, so a bad settings file is reported first.
    policy = guarded(lambda: _policy_for(settings), usage_errors=(ValueError,))
    return with_store(
        url, lambda store: _act(action, policy, store, args, console), usage_errors=(ValueError,)
    )


def _act(
    action: str, policy: Policy, store: Store, args: argparse.Namespace, console: Console
) -> int:
    """Run *action* (``list`` or ``unlock``) on the open *store*; return the exit status."""
    shown_url = store.url
    # A bare KeyManager creates no ring: listing and unlocking need no secret.
    lockout = Lockout(policy, store, KeyManager(store))
    if action == "list":
        now = time.time()
        return _show(lockout.locked(now), now, shown_url, args, console)
    return _unlock(lockout, args, console, shown_url)


def _unlock(lockout: Lockout, args: argparse.Namespace, console: Console, url: str) -> int:
    target = str(args.login)
    if getattr(args, "address", False):
        lifted = lockout.unlock_address(target)
        what = f"address {target}"
    else:
        lifted = lockout.unlock(target)
        what = f"login {target!r}"
    shown = _CONTROL.sub("", what)
    if lifted:
        console.print(Text(f"Unlocked {shown} in {url}."))
    else:
        console.print(Text(f"{shown} was not locked in {url}; its failures are cleared."))
    return 0


def _show(
    locks: list[LockRecord], now: float, url: str, args: argparse.Namespace, console: Console
) -> int:
    if getattr(args, "json", False):
        rows = [{**dataclasses.asdict(r), "retry_after": r.retry_after(now)} for r in locks]
        console.print_json(json.dumps({"store": url, "locked": rows}))
        return 0
    if not locks:
        console.print(Text(f"No locks in {url}."))
        return 0
    table = Table(title=Text(f"Login locks — {url}"), title_justify="left")
    for column in ("scope", "login or address", "failures", "level", "until (UTC)", "left"):
        table.add_column(column, overflow="fold")
    for lock in locks:
        name = _CONTROL.sub("", lock.name) or "(unknown login: damaged record)"
        until = (
            datetime.fromtimestamp(lock.until, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if 0 <= lock.until < 2**33
            else "?"
        )
        cells = (lock.scope, name, str(lock.failures), str(lock.level), until)
        table.add_row(*(Text(c) for c in cells), Text(_left(lock.retry_after(now))))
    console.print(table)
    return 0


def _left(seconds: int) -> str:
    """Return *seconds* as ``1h 02m 03s`` (the largest units that apply)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _policy_for(settings: str | None) -> Policy:
    """Return the site's policy from *settings*, or the default one."""
    return load_policy(file=settings) if settings else load_policy()
