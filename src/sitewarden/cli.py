"""The ``sitewarden`` command.

Every failure sitewarden expects (a bad store URL, a damaged store, a malformed ring)
ends with one line on standard error and a non-zero exit status — never a traceback, and
never a secret: only fingerprints of secrets are ever printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from sitewarden import __version__
from sitewarden.cli_bans import add_bans_parser, run_bans
from sitewarden.cli_check import add_check_parser, run_check
from sitewarden.cli_common import EXIT_FAILURE, EXIT_USAGE
from sitewarden.cli_events import add_events_parser, run_events
from sitewarden.cli_lockout import add_lockout_parser, run_lockout
from sitewarden.cli_reports import add_reports_parser, add_sri_parser, run_reports, run_sri
from sitewarden.cli_scan import add_scan_parser, run_scan
from sitewarden.demo.cli import add_demo_parser, run_demo
from sitewarden.errors import ConfigError, SitewardenError
from sitewarden.keyring import DEFAULT_RINGS, KeyManager, Keyring
from sitewarden.store import default_store_url, open_store

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``sitewarden`` command."""
    parser = argparse.ArgumentParser(
        prog="sitewarden",
        description="Secure-by-default web security for Python sites.",
    )
    parser.add_argument("--version", action="version", version=f"sitewarden {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    add_demo_parser(commands)
    walkthrough = commands.add_parser(
        "walkthrough",
        help="a terminal walkthrough of the keyring, session tickets and CSRF tokens",
        description=(
            "Opens a store under --state-dir, issues and checks real tickets and tokens, and "
            "shows attacks failing. Run it twice to see the keyring survive a restart."
        ),
    )
    walkthrough.add_argument(
        "--state-dir",
        default=".sitewarden/walkthrough",
        help="directory for the walkthrough's SQLite store (default: .sitewarden/walkthrough)",
    )
    add_reports_parser(commands)
    add_events_parser(commands)
    add_lockout_parser(commands)
    add_bans_parser(commands)
    add_sri_parser(commands)
    add_check_parser(commands)
    add_scan_parser(commands)

    keyring = commands.add_parser("keyring", help="inspect and rotate the keyring")
    actions = keyring.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (
        ("init", "create and fill the default rings (kept if they exist)"),
        ("show", "list rings: size, secret fingerprints, last rotation"),
        ("rotate", "rotate rings now (all default rings unless --ring is given)"),
    ):
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument(
            "--store",
            default=None,
            help="store URL (default: $SITEWARDEN_STORE or sqlite:///.sitewarden/state.db)",
        )
        sub.add_argument("--ring", default=None, help="only this ring")
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        if action == "rotate":
            sub.add_argument(
                "--reset",
                action="store_true",
                help="replace EVERY secret of --ring (voids all it signed: signs users out)",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console()
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command == "walkthrough":
            from sitewarden.walkthrough import run_walkthrough

            return run_walkthrough(args.state_dir, console)
        if args.command == "demo":
            return run_demo(args)
        if args.command == "reports":
            return run_reports(args, console)
        if args.command == "sri":
            return run_sri(args, console)
        if args.command == "events":
            return run_events(args, console)
        if args.command == "lockout":
            return run_lockout(args, console)
        if args.command == "bans":
            return run_bans(args, console)
        if args.command == "check":
            return run_check(args, console)
        if args.command == "scan":
            return run_scan(args, console)
        return _keyring_command(args, console)
    except ConfigError as exc:
        print(f"sitewarden: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SitewardenError as exc:
        print(f"sitewarden: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _keyring_command(args: argparse.Namespace, console: Console) -> int:
    url = args.store or default_store_url()
    if args.action == "rotate" and args.reset and not args.ring:
        raise ConfigError("--reset needs --ring NAME: resetting every ring at once is refused")
    if args.action == "rotate" and args.ring == "totp" and args.reset:
        # Every enrolled user's two-factor secret is sealed with this ring: replacing all
        # its secrets at once would make them unreadable. Rotate, then reseal (docs/totp.md).
        raise ConfigError(
            "--reset of the totp ring is refused: it would lock every enrolled user out of "
            "two-factor sign-in; rotate without --reset and reseal (see docs/totp.md)"
        )
    if args.action == "init":
        keys = KeyManager.open(url)
    else:
        # show and rotate never create rings: a missing ring is reported, not made up.
        keys = KeyManager(open_store(url, create=False))
    try:
        names = [args.ring] if args.ring else None
        if args.action == "rotate":
            for name in names or list(DEFAULT_RINGS):
                if args.reset:
                    keys.reset(name)
                else:
                    keys.rotate(name)
        shown = names or keys.names()
        if not shown:
            raise ConfigError(f"no keyrings in {keys.store.url}; run 'sitewarden keyring init'")
        rings = {name: keys.stored_ring(name) for name in shown}
        report = {"store": keys.store.url, "rings": {n: _describe(r) for n, r in rings.items()}}
        if args.json:
            console.print_json(json.dumps(report))
        else:
            _print_table(console, args.action, report)
        return 0
    finally:
        keys.close()


def _describe(ring: Keyring) -> dict[str, Any]:
    when = ring.last_rotation
    return {
        "size": ring.size,
        "fingerprints": ring.fingerprints(),
        "last_rotation": when,
        "last_rotation_utc": datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")
        if when
        else None,
    }


def _print_table(console: Console, action: str, report: dict[str, Any]) -> None:
    verb = {"init": "Keyring ready", "show": "Keyring", "rotate": "Rotated"}[action]
    table = Table(title=f"{verb} — {report['store']}", title_justify="left")
    table.add_column("ring")
    table.add_column("size", justify="right")
    table.add_column("fingerprints (newest first)")
    table.add_column("last rotation (UTC)")
    for name, info in report["rings"].items():
        prints = " ".join(p or "—" for p in info["fingerprints"])
        table.add_row(name, str(info["size"]), prints, info["last_rotation_utc"] or "never")
    console.print(table)
    console.print("Fingerprints are one-way hashes; secrets are never displayed.", style="dim")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
