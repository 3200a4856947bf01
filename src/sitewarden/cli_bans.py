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
import time
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sitewarden.cli_common import (
    EXIT_FAILURE,
    add_store_option,
    returns_failure_status,
    store_url,
    with_store,
)
from sitewarden.guards.bans import BanList, BanRecord
from sitewarden.policy import load_policy
from sitewarden.store import Store

__all__ = ["add_bans_parser", "run_bans"]


def add_bans_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bans`` command (``list`` and ``unban``) to *subparsers*."""
    text = "list the clients banned for repeated rate-limit breaches, or lift a ban"
    parser = subparsers.add_parser("bans", help=text, description=text)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="show the bans in force", description="show the bans in force"
    )
    add_store_option(listing)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    text = "lift the ban of an address, a network or a client key"
    unban = actions.add_parser("unban", help=text, description=text)
    unban.add_argument(
        "address", metavar="ADDRESS", help="e.g. 203.0.113.9, 2001:db8::1 or 2001:db8::/64"
    )
    add_store_option(unban)


@returns_failure_status
def run_bans(args: argparse.Namespace, console: Console) -> int:
    """Run ``sitewarden bans list`` or ``sitewarden bans unban``; return the exit status."""
    url = store_url(args)
    action = getattr(args, "action", "list")
    address = str(getattr(args, "address", ""))
    if action == "unban":
        removed, shown_url = with_store(
            url, lambda store: (_ban_list(store).unban(address), store.url)
        )
        if not removed:
            console.print(Text(f"No ban for {address} in {shown_url}."))
            return EXIT_FAILURE
        console.print(Text(f"Lifted the ban of {address} in {shown_url}."))
        return 0
    records, shown_url = with_store(url, lambda store: (_ban_list(store).list(), store.url))
    return _show(records, shown_url, bool(getattr(args, "json", False)), console)


def _ban_list(store: Store) -> BanList:
    """Return the ban list of *store*."""
    # The defaults are enough: unban also finds IPv6 bans made with another prefix.
    return BanList(load_policy(), store)


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
