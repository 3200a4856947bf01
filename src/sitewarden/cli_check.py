"""The ``sitewarden check`` command: the deploy audit (wired in by :mod:`sitewarden.cli`).

``sitewarden check [--settings FILE] [--preset P] [--store URL] [--deploy]
[--format text|json] [--fail-level LEVEL]`` audits the effective policy, the store and its
keyring (see ``docs/check.md``). Exit status 0 when no finding is at or above
``--fail-level`` (default ``high``), 1 otherwise, 2 for bad usage or a bad setting.
Secrets are never printed: findings name them by fingerprint.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sitewarden.audit import (
    SEVERITIES,
    Finding,
    at_or_above,
    audit_keyring,
    audit_policy,
    audit_store,
    counts,
)
from sitewarden.cli_common import (
    EXIT_FAILURE,
    guarded,
    returns_failure_status,
)
from sitewarden.errors import ConfigError, SitewardenError
from sitewarden.keyring import KeyManager, Keyring
from sitewarden.policy import PRESETS, Policy, load_policy
from sitewarden.store import default_store_url, open_store, redact_url

__all__ = ["add_check_parser", "audit_all", "run_check"]

_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def add_check_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check`` command to *subparsers*."""
    text = "audit the policy, store and keyring for deployment weaknesses"
    parser = subparsers.add_parser("check", help=text, description=text)
    parser.add_argument(
        "--settings", default=None, metavar="FILE", help="the site's sitewarden.toml"
    )
    parser.add_argument(
        "--preset", choices=tuple(PRESETS), default=None, help="the preset (overrides the file's)"
    )
    parser.add_argument(
        "--store",
        default=None,
        help="store URL (default: the policy's store, $SITEWARDEN_STORE or "
        "sqlite:///.sitewarden/state.db)",
    )
    parser.add_argument(
        "--deploy",
        action="store_true",
        help="also run the checks that only matter in production (HSTS, HTTPS, hosts…)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output")
    parser.add_argument(
        "--fail-level",
        choices=SEVERITIES,
        default="high",
        help="exit 1 when a finding is at least this severe (default: high)",
    )


def audit_all(policy: Policy, store_url: str | None, *, deploy: bool) -> list[Finding]:
    """Audit *policy*, then the store at *store_url* and its keyring (if it can be read)."""
    findings = audit_policy(policy, deploy=deploy)
    if store_url is None:
        return findings
    findings += audit_store(store_url, deploy=deploy)
    try:
        rings = _read_rings(store_url)
    except ConfigError:
        raise  # a bad URL is a usage error, not a finding
    except SitewardenError as exc:
        findings.append(
            Finding(
                "SW099",
                "info",
                "store",
                f"the keyring was not audited: {exc}",
                "run check where the site's store can be read, or pass --store",
            )
        )
        return findings
    return findings + audit_keyring(rings)


def _read_rings(store_url: str) -> dict[str, Keyring]:
    store = open_store(store_url, create=False)  # an audit never creates a store
    keys = KeyManager(store)
    try:
        return {name: keys.stored_ring(name) for name in keys.names()}
    finally:
        keys.close()


@returns_failure_status
def run_check(args: argparse.Namespace, console: Console) -> int:
    """Run ``sitewarden check``; return the exit status."""
    settings = getattr(args, "settings", None)
    overrides = {"preset": args.preset} if getattr(args, "preset", None) else {}
    policy = guarded(lambda: load_policy(file=settings, **overrides))
    url = getattr(args, "store", None) or policy.store or default_store_url()
    deploy = bool(getattr(args, "deploy", False))
    findings = guarded(lambda: audit_all(policy, url, deploy=deploy))
    level = getattr(args, "fail_level", "high")
    tally = counts(findings)
    if getattr(args, "format", "text") == "json":
        report = {
            "preset": policy.preset,
            "store": redact_url(url),
            "deploy": deploy,
            "findings": [f.as_dict() for f in findings],
            "counts": tally,
        }
        console.print_json(json.dumps(report))
    else:
        _print_text(console, findings, tally, policy, url, deploy)
    return EXIT_FAILURE if at_or_above(findings, level) else 0


def _print_text(
    console: Console,
    findings: list[Finding],
    tally: dict[str, int],
    policy: Policy,
    url: str,
    deploy: bool,
) -> None:
    scope = "deploy" if deploy else "development (add --deploy for production checks)"
    title = f"sitewarden check — preset {policy.preset}, store {redact_url(url)}, {scope}"
    if findings:
        table = Table(title=Text(title), title_justify="left")
        for column in ("id", "severity", "setting", "finding", "fix"):
            table.add_column(column, overflow="fold")
        for f in findings:
            table.add_row(
                Text(f.id),
                Text(f.severity, style=_STYLE[f.severity]),
                Text(f.setting),
                Text(f.message),
                Text(f.fix),
            )
        console.print(table)
    else:
        console.print(Text(title))
    summary = ", ".join(f"{n} {name}" for name, n in tally.items() if n) or "no findings"
    console.print(Text(f"{len(findings)} finding(s): {summary}"))
