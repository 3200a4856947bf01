"""The ``sitewarden events`` command (wired in by :mod:`sitewarden.cli`).

``sitewarden events [--store URL] [--json] [--limit N] [--type PREFIX] [--since SECONDS]``
lists the security events recorded in the store by
:class:`~sitewarden.events_store.EventRecorder`: a table, newest first, or with ``--json``
one JSON object per line, oldest first (for ``jq``, Fail2Ban or a log shipper).

Events carry attacker-controlled text (paths, logins, host names). The table removes
control characters, bidirectional overrides and lone surrogates and never interprets rich
markup (``[red]…`` is shown as written); the JSON lines are pure ASCII, everything else is
escaped. Expected failures end with one line on standard error: exit status 1 for a runtime
failure (store unavailable or damaged), 2 for a bad setting.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sitewarden.cli_common import (
    add_store_option,
    positive,
    returns_failure_status,
    store_url,
    with_store,
)
from sitewarden.events_store import recent

__all__ = ["add_events_parser", "run_events"]

#: Longest text shown in one table cell (the JSON output is never shortened).
_CELL = 160
#: Removed from table cells: C0/C1 controls (terminal escapes), bidirectional overrides
#: (text that displays differently than it reads) and lone surrogates (not printable).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: Fields shown in their own column; any other field is shown after the reason.
_SHOWN = frozenset(
    {"event", "time", "client", "user", "login", "method", "path", "reason", "severity", "host"}
)
#: An events.dropped reason already states its counts.
_DROPPED_SHOWN = _SHOWN | {"count", "over_budget", "store_unavailable"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_events_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``events`` command to *subparsers*."""
    text = "list the security events recorded in the store, newest first"
    parser = subparsers.add_parser("events", help=text, description=text)
    add_store_option(parser)
    parser.add_argument(
        "--json", action="store_true", help="JSON lines, oldest first (for jq, Fail2Ban)"
    )
    parser.add_argument(
        "--limit", type=positive, default=100, help="show at most N events (default: 100)"
    )
    parser.add_argument(
        "--type",
        metavar="PREFIX",
        default=None,
        help="only events whose name starts with PREFIX, e.g. login. or ban",
    )
    parser.add_argument(
        "--since",
        metavar="SECONDS",
        type=_duration,
        default=None,
        help="only events of the last SECONDS (or 15m, 2h, 7d)",
    )


def _duration(text: str) -> float:
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:], 0)
    number = raw[:-1] if unit else raw
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds (or a number with s, m, h or d), got {text!r}"
        ) from None
    if not 0 < value < 10 * 365 * 86400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return value


@returns_failure_status
def run_events(args: argparse.Namespace, console: Console) -> int:
    """Run ``sitewarden events``; return the exit status."""
    url = store_url(args)
    limit = getattr(args, "limit", 100)
    prefix = getattr(args, "type", None)
    age = getattr(args, "since", None)
    since = None if age is None else time.time() - age
    found, shown_url = with_store(
        url, lambda store: (recent(store, limit, prefix=prefix, since=since), store.url)
    )
    if getattr(args, "json", False):
        for event in reversed(found):
            # ASCII only: every control or bidi character is a \u escape, so the line is
            # safe in a terminal; the separators match the log's (one failregex for both).
            line = json.dumps(event, ensure_ascii=True, default=str)
            console.out(line, highlight=False)
        return 0
    if not found:
        console.print(Text(f"No security events in {shown_url}."))
        return 0
    title = f"Security events — {shown_url}" + (f" — {prefix}*" if prefix else "")
    table = Table(title=Text(_clean(title)), title_justify="left")
    for column in ("time (UTC)", "event", "client", "user / login", "path", "reason"):
        table.add_column(column, overflow="fold")
    for event in found:
        table.add_row(*(Text(_clean(cell)) for cell in _row(event)))
    console.print(table)
    return 0


def _clean(value: object) -> str:
    """Return *value* as terminal-safe text, shortened to one table cell."""
    text = _CONTROL.sub("", value if isinstance(value, str) else str(value))
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=True, default=str)


def _row(event: dict[str, Any]) -> list[str]:
    when = event.get("time")
    stamp = (
        datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(when, int | float) and not isinstance(when, bool) and 0 <= when < 2**33
        else "?"
    )
    user, login = _text(event.get("user")), _text(event.get("login"))
    who = user if not login or login == user else (f"{user} ({login})" if user else login)
    method, path = _text(event.get("method")), _text(event.get("path"))
    reason = _text(event.get("reason"))
    hidden = _DROPPED_SHOWN if event.get("event") == "events.dropped" else _SHOWN
    extra = ", ".join(
        f"{key}={_text(value)}"
        for key, value in event.items()
        if key not in hidden and value is not None
    )
    if extra:
        reason = f"{reason} ({extra})" if reason else extra
    name = _text(event.get("event")) or "?"
    if event.get("severity") in ("error", "critical"):
        name += " !"
    return [
        stamp,
        name,
        _text(event.get("client")) or "—",
        who,
        f"{method} {path}" if method and path else path,
        reason,
    ]
