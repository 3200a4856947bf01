"""``sitewarden demo``: serve the demo site.

Wired into the ``sitewarden`` command with :func:`add_demo_parser` and :func:`run_demo`;
also runnable on its own as ``python -m sitewarden.demo.cli [options]``.

Output: the site's URL, the state directory, the CA to trust (``--https``) and — on the
first run only, or with ``--reset-admin`` — the admin password, printed to standard output
and nowhere else (it is not logged and not stored; only its Argon2id hash is).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sitewarden.demo.serve import Listener
    from sitewarden.demo.tls import TlsFiles
    from sitewarden.policy import Policy

__all__ = ["add_demo_arguments", "add_demo_parser", "main", "run_demo"]

EXIT_FAILURE = 1
EXIT_USAGE = 2

_DESCRIPTION = (
    "Serve a small real site protected by sitewarden: sign-in with Argon2id passwords behind "
    "rate limits and lockout, two-factor sign-in (TOTP with a QR code, recovery codes), a "
    "password form that shows the policy's verdict, a CSRF-protected comment form, 'log out "
    "everywhere', and an admin area (/manage) that lists locked accounts, bans, recent "
    "security events and CSP reports. State (keyring, accounts, comments, reports, events) "
    "is kept in an SQLite store under --state-dir. With --https a local CA and a certificate for "
    "127.0.0.1/::1/localhost are created under <state-dir>/tls/ (reused later), HTTPS is "
    "served on --port and plain HTTP on --http-port is redirected to it. Without --https "
    "the site runs in a loosened development mode over plain HTTP. Ctrl-C stops it."
)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to *parser*."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="port of the site (HTTPS with --https; default: 8000)",
    )
    parser.add_argument(
        "--state-dir",
        default=".sitewarden/demo",
        help="directory for the SQLite store and TLS files (default: .sitewarden/demo)",
    )
    parser.add_argument(
        "--https",
        action="store_true",
        help="serve HTTPS with a local CA (strict preset), and redirect --http-port to it",
    )
    parser.add_argument(
        "--http-port",
        type=_port,
        default=8080,
        help="with --https: plain-HTTP port that redirects to HTTPS (default: 8080)",
    )
    parser.add_argument(
        "--manage-host",
        default=None,
        help="the only Host name on which /manage is served (default: the --host address; "
        "127.0.0.1 when listening on all addresses)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name to answer to (repeatable; 127.0.0.1, ::1, localhost always)",
    )
    parser.add_argument(
        "--reset-admin",
        action="store_true",
        help="give the admin account a new random password (printed once) and sign it out",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default: info, with one access-log line per request)",
    )


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``demo`` command to *subparsers* (from ``add_subparsers``); return it."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo", help="serve a demo site protected by sitewarden", description=_DESCRIPTION
    )
    add_demo_arguments(parser)
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return port


def _url_host(host: str) -> str:
    """Return the host to print in URLs: a wildcard address becomes 127.0.0.1, IPv6 is bracketed."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - only turned into a printable name
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def _url(scheme: str, host: str, port: int) -> str:
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{_url_host(host)}{'' if port == default else f':{port}'}/"


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo with the parsed *args*; return the exit status (0 after Ctrl-C).

    sitewarden's own errors (a bad setting, an unreadable store) propagate to the
    ``sitewarden`` command, which reports them in one line with the usual exit status.
    """
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 0


def _run(args: argparse.Namespace) -> int:
    try:
        from sitewarden.demo import serve
        from sitewarden.demo.app import create_app
    except ImportError as exc:
        print(
            f"sitewarden: error: the demo needs its extra packages ({exc.name} is missing): "
            "pip install 'sitewarden[demo]'",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    from sitewarden.demo.tls import ensure_tls

    if args.https and args.port == args.http_port and args.port != 0:
        print("sitewarden: error: --port and --http-port must differ", file=sys.stderr)
        return EXIT_USAGE
    state = Path(args.state_dir)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    tls = ensure_tls(state / "tls") if args.https else None

    listeners: list[serve.Listener] = []
    try:
        for port, files in (
            ((args.port, tls), (args.http_port, None)) if args.https else ((args.port, None),)
        ):
            try:
                listeners.append(serve.Listener(serve.bind(args.host, port), files))
            except OSError as exc:
                print(
                    f"sitewarden: error: cannot listen on {args.host} port {port}: "
                    f"{exc.strerror or exc}",
                    file=sys.stderr,
                )
                return EXIT_FAILURE
        site_port = listeners[0].port
        if args.manage_host is None:
            args.manage_host = _url_host(args.host).strip("[]")
        admin: list[tuple[str, str]] = []
        hosts = list(args.allowed_host)
        if args.host not in ("", "0.0.0.0", "::"):  # noqa: S104 - a name to allow, not a bind
            hosts.append(args.host)
        app, warden = create_app(
            state,
            args.https,
            https_port=site_port,
            hosts=hosts,
            manage_host=args.manage_host,
            reset_admin=args.reset_admin,
            on_admin_password=lambda name, password: admin.append((name, password)),
        )
        try:
            _announce(args, state, listeners, tls, admin, warden.policy)
            serve.run(app, listeners, log_level=args.log_level)
        finally:
            warden.close()
    finally:
        for item in listeners:
            item.sock.close()
    print("sitewarden demo stopped.", flush=True)
    return 0


def _announce(
    args: argparse.Namespace,
    state: Path,
    listeners: Sequence[Listener],
    tls: TlsFiles | None,
    admin: list[tuple[str, str]],
    policy: Policy,
) -> None:
    scheme = "https" if args.https else "http"
    site = _url(scheme, args.host, listeners[0].port)
    lines = [f"sitewarden demo: {site}"]
    if tls is not None:
        lines.append(f"  plain HTTP {_url('http', args.host, listeners[1].port)} redirects there")
        lines.append(f"  CA certificate to trust: {tls.ca_cert}")
        if tls.created_ca:
            lines.append("  (a new CA: trust it in your browser — see docs/demo.md)")
        lines.append(f"  e.g. NODE_EXTRA_CA_CERTS={tls.ca_cert} or curl --cacert {tls.ca_cert}")
    else:
        lines.append(
            "  development mode: plain HTTP, no HTTPS redirect, session cookie without "
            "Secure (use --https for the real thing)"
        )
    manage = _url(scheme, args.manage_host, listeners[0].port) + "manage"
    lines.append(f"  admin area: {manage} (from this machine only)")
    lines.append(f"  state directory: {state.resolve()}")
    for name, password in admin:
        lines.append("")
        lines.append(f"  Admin account created: user {name!r}, password {password!r}")
        lines.append("  (shown only this once and stored nowhere: only its Argon2id hash is kept)")
    lines.append("")
    from sitewarden.demo.pages import duration  # the demo's packages are loaded by now

    rate = policy.rate_limits.get("POST /login", "none")
    lines.append("Try:")
    lines.append(
        f"  - {policy.lockout_threshold} wrong passwords for one user name: its sign-in "
        f"pauses for {duration(policy.lockout_duration)} (longer each time)"
    )
    lines.append(
        f"  - sign-in posts from one address beyond {rate}: 429, and repeat offenders get banned"
    )
    lines.append("  - Account (/account): two-factor sign-in with an authenticator app's QR code,")
    lines.append("    recovery codes, and a new password checked against the password policy")
    lines.append("  - the admin area: locked accounts, bans and recent security events")
    lines.append("")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m sitewarden.demo.cli``: the same as ``sitewarden demo``."""
    from sitewarden.cli import main as sitewarden_main  # here: cli imports this module

    return sitewarden_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
