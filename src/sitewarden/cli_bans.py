"""The ``sitewarden bans`` command (wired in by :mod:`sitewarden.cli`).

``sitewarden bans list [--store URL] [--json]`` shows the bans in force, the soonest to
end first. ``sitewarden bans unban ADDRESS [--store URL]`` lifts the ban of an address
(an IPv6 address lifts its banned network), a network (``2001:db8::/64``) or a client key
(``unknown``), and forgets its breach count and ban level.

Exit status: 0 on success, 1 for a runtime failure (store unavailable or damaged) or when
there was no ban to lift, 2 for a bad setting such as an unknown store URL. Expected
failures end with one line on standard error, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sitewarden.errors import ConfigError, SitewardenError
from sitewarden.guards.bans import BanList, BanRecord
from sitewarden.policy import load_policy
from sitewarden.store import default_store_url, open_store

__all__ = ["add_bans_parser", "run_bans"]

_EXIT_FAILURE = 1
_EXIT_USAGE = 2
_STORE_HELP = "store URL (default: $SITEWARDEN_STORE or sqlite:///.sitewarden/state.db)"


def add_bans_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bans`` command (``list`` and ``unban``) to *subparsers*."""
    text = "list the clients banned for repeated rate-limit breaches, or lift a ban"
    parser = subparsers.add_parser("bans", help=text, description=text)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="show the bans in force", description="show the bans in force"
    )
    listing.add_argument("--store", default=None, help=_STORE_HELP)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    text = "lift the ban of an address, a network or a client key"
    unban = actions.add_parser("unban", help=text, description=text)
    unban.add_argument(
        "address", metavar="ADDRESS", help="e.g. 203.0.113.9, 2001:db8::1 or 2001:db8::/64"
    )
    unban.add_argument("--store", default=None, help=_STORE_HELP)


def _error(message: str) -> None:
    print(f"sitewarden: error: {message}", file=sys.stderr)


def run_bans(args: argparse.Namespace, console: Console) -> int:
    """Run ``sitewarden bans list`` or ``sitewarden bans unban``; return the exit status."""
    url = getattr(args, "store", None) or default_store_url()
    action = getattr(args, "action", "list")
    address = str(getattr(args, "address", ""))
    removed = False
    records: list[BanRecord] = []
    try:
        store = open_store(url, create=False)  # inspecting never creates a store
        try:
            # The defaults are enough: unban also finds IPv6 bans made with another prefix.
            bans = BanList(load_policy(), store)
            shown_url = store.url
            if action == "unban":
                removed = bans.unban(address)
            else:
                records = bans.list()
        finally:
            store.close()
    except ConfigError as exc:
        _error(str(exc))
        return _EXIT_USAGE
    except SitewardenError as exc:
        _error(str(exc))
        return _EXIT_FAILURE
    if action == "unban":
        if not removed:
            console.print(Text(f"No ban for {address} in {shown_url}."))
            return _EXIT_FAILURE
        console.print(Text(f"Lifted the ban of {address} in {shown_url}."))
        return 0
    return _show(records, shown_url, bool(getattr(args, "json", False)), console)


def _show(records: list[BanRecord], url: str, as_json: bool, console: Console) -> int:
    now = time.time()
    if as_json:
        doc = {
            "store": url,
            "bans": [
                {
                    "client": r.client,
                    "until": r.until,
                    "seconds_left": max(0, round(r.until - now)),
                    "level": r.level,
                    "reason": r.reason,
                }
                for r in records
            ],
        }
        console.print_json(json.dumps(doc))
        return 0
    if not records:
        console.print(Text(f"No bans in {url}."))
        return 0
    table = Table(title=Text(f"Bans — {url}"), title_justify="left")
    for column in ("client", "until (UTC)", "left", "level", "reason"):
        table.add_column(column, overflow="fold")
    for r in records:
        until = datetime.fromtimestamp(r.until, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            Text(r.client),
            Text(until),
            Text(_duration(r.until - now)),
            Text(str(r.level)),
            Text(r.reason),
        )
    console.print(table)
    return 0


def _duration(seconds: float) -> str:
    """Say *seconds* the short way: ``45 s``, ``12 min``, ``3 h 20 min``, ``2 d 4 h``."""
    left = max(0, round(seconds))
    if left < 60:
        return f"{left} s"
    minutes, _ = divmod(left, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
