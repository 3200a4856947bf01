"""``sitewarden walkthrough``: a live walkthrough of the foundation in the terminal.

Nothing here is canned: every line is the result of a real call on a real SQLite store
under the state directory, and the command exits non-zero if any protection did not
behave as stated. (``sitewarden demo`` serves the web demo site.)
"""

from __future__ import annotations

import os
import time

from rich.console import Console

from sitewarden.csrf import check_token, create_token
from sitewarden.keyring import DEFAULT_RINGS, KeyManager
from sitewarden.store import open_store
from sitewarden.tickets import create_ticket, decode_cookie, encode_cookie, validate_ticket

__all__ = ["run_walkthrough"]


class _Checks:
    """Prints each claim with its observed outcome and remembers any mismatch."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.failed = 0

    def expect(self, claim: str, observed: bool, expected: bool = True) -> None:
        ok = observed == expected
        self.failed += not ok
        mark = "[green]✓[/green]" if ok else "[red]✗ UNEXPECTED[/red]"
        self.console.print(f"  {mark} {claim}")


def run_walkthrough(state_dir: str, console: Console) -> int:
    """Run the walkthrough on a store in *state_dir*; return 0 if everything held."""
    checks = _Checks(console)
    path = os.path.join(state_dir, "state.db")
    url = f"sqlite:///{os.path.abspath(path)}"
    store = open_store(url)
    existed = bool(store.keys("keyring:"))
    keys = KeyManager.open(store)

    console.rule("[bold]1. Keyring")
    console.print(
        f"Store: {url} ({'loaded: the rings survived the last run' if existed else 'created'})"
    )
    for name in DEFAULT_RINGS:
        ring = keys.ring(name)
        console.print(f"  {name:9} {ring.size} secrets, current {ring.fingerprints()[0]}")
    console.print("  (fingerprints only: secrets are 256-bit and never printed)", style="dim")
    mode = os.stat(path).st_mode & 0o777
    checks.expect(f"store file is private to its owner (mode {mode:o})", mode == 0o600)

    console.rule("[bold]2. Session tickets (mod_auth_tkt format, plone.session compatible)")
    sessions = keys.ring("sessions")
    cookie = encode_cookie(create_ticket(sessions, "alice", tokens=("editor",)))
    console.print(f"  cookie for alice: {cookie[:44]}…")
    ticket = validate_ticket(sessions, decode_cookie(cookie), timeout=3600)
    checks.expect("the cookie validates as alice", ticket is not None and ticket.userid == "alice")
    forged = decode_cookie(cookie).replace(b"alice", b"admin")
    checks.expect(
        "the same cookie edited to say 'admin' is refused",
        validate_ticket(sessions, forged, timeout=3600) is not None,
        expected=False,
    )
    elevated = decode_cookie(cookie).replace(b"editor", b"manage")
    checks.expect(
        "a token changed from 'editor' to 'manage' is refused",
        validate_ticket(sessions, elevated) is not None,
        expected=False,
    )
    later = time.time() + 2 * 3600
    checks.expect(
        "two hours later, with a one-hour timeout, it has expired",
        validate_ticket(sessions, decode_cookie(cookie), timeout=3600, now=later) is not None,
        expected=False,
    )

    console.rule("[bold]3. CSRF authenticators")
    token = create_token(keys, "alice", extra="comment-form")
    again = create_token(keys, "alice", extra="comment-form")
    console.print(f"  alice's token: {token[:40]}…")
    checks.expect("it is accepted for alice", check_token(keys, token, "alice", "comment-form"))
    checks.expect(
        "it is refused for mallory",
        check_token(keys, token, "mallory", "comment-form"),
        expected=False,
    )
    checks.expect(
        "it is refused for another form",
        check_token(keys, token, "alice", "delete-site"),
        expected=False,
    )
    checks.expect("a second page gets different bytes (BREACH masking)", token != again)

    console.rule("[bold]4. Rotation retires secrets gradually")
    for n in range(1, 6):
        keys.rotate("forms")
        alive = check_token(keys, token, "alice", "comment-form")
        checks.expect(
            f"after rotation {n} the token is {'valid' if n < 5 else 'retired'}",
            alive,
            expected=n < 5,
        )

    console.rule("[bold]5. Log out everywhere (per-user ring)")
    laptop = create_ticket(keys.user_ring("alice"), "alice")
    phone = create_ticket(keys.user_ring("alice"), "alice")
    checks.expect(
        "laptop and phone sessions validate",
        all(validate_ticket(keys.user_ring("alice"), t) for t in (laptop, phone)),
    )
    keys.rotate_user("alice")
    checks.expect(
        "after 'log out everywhere' both are refused",
        any(validate_ticket(keys.user_ring("alice"), t) for t in (laptop, phone)),
        expected=False,
    )
    keys.close()

    console.rule()
    if checks.failed:
        console.print(f"[red]{checks.failed} protection(s) did not behave as expected.[/red]")
        return 1
    console.print(
        "[green]All protections held.[/green] Run it again: the keyring is loaded, not "
        "recreated. Next: 'sitewarden keyring show --store " + url + "'."
    )
    return 0
