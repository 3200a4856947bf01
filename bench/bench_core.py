"""Micro-benchmarks of sitewarden's per-request hot paths against its peers.

Everything runs in ONE process, on the same inputs. Each case is a ``timeit`` statement;
every case is calibrated so one repeat lasts about ``--target-time`` seconds, then the
cases of a group are run in interleaved rounds (round *r* runs every case once, in an
order rotated by *r*), so a burst of machine load hits sitewarden and its peers alike.
The figure kept is the best (minimum) per-operation time over the repeats.

Groups:

1. ticket create   sitewarden.tickets.create_ticket vs plone.session tktauth.createTicket
                   (+ Pyramid AuthTicket.cookie_value, itsdangerous TimestampSigner.sign)
2. ticket validate sitewarden.tickets.validate_ticket vs tktauth.validateTicket
                   (+ Pyramid parse_ticket, itsdangerous TimestampSigner.unsign, and
                   sitewarden against a 5-secret Keyring)
3. CSRF            sitewarden.csrf create_token + check_token vs Django get_token + the
                   CsrfViewMiddleware token check, and vs Flask-WTF generate_csrf +
                   validate_csrf
4. HMAC floor      hmac.new / hmac.digest / sitewarden.hmackey.PrekeyedHMAC on ~60 bytes

Targets (sitewarden time / peer time) are checked at the end; the exit status is 1 if one
is missed, so the script can gate a change. It is not part of the test suite.

Run::

    uv run --group bench python bench/bench_core.py            # full (~1 min)
    uv run --group bench python bench/bench_core.py --quick    # smoke run (~5 s)
    uv run --group bench python bench/bench_core.py --json     # machine-readable
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import importlib.metadata
import importlib.util
import itertools
import json
import sys
import time
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from harness import Case, evaluate_ratio_targets, json_document, parse_options, run_interleaved
from harness import machine_info as harness_machine_info

# -- shared inputs ------------------------------------------------------------------

SECRET = bytes(range(32))  # a fixed 32-byte secret: same bytes for every library
USERID = "jbloggs"
TOKENS = ("editor",)
USER_DATA = "Joe Bloggs"
TIMESTAMP = 1_795_305_600  # 2026-11-22 00:00:00 UTC
TIMEOUT = 12 * 3600
NOW = TIMESTAMP + 3600  # one hour after issue: well inside the timeout
FLOOR_MESSAGE = bytes(range(60))  # about the size of a ticket's signed data

#: (name, sitewarden case, peer case, maximum ratio sitewarden / peer)
# (name, sitewarden case, peer case, limit, gating). Validation is gated on the same
# statement the peers run (one cookie validated again and again, as a browser sends it
# on every request); the full check of a ticket seen for the first time is reported too.
TARGETS = [
    ("ticket validate", "validate.sitewarden", "validate.tktauth", 0.4, True),
    ("  (first sight)", "validate.sitewarden_first", "validate.tktauth_first", 0.4, False),
    ("ticket create", "create.sitewarden", "create.tktauth", 0.5, True),
    ("CSRF issue + check", "csrf.sitewarden", "csrf.django", 0.1, True),
]


# -- measurement --------------------------------------------------------------------


@dataclass
class Group:
    key: str
    title: str
    baseline: str  # the case the ratios are relative to
    cases: list[Case]

    def case(self, key: str) -> Case:
        return next(c for c in self.cases if c.key == key)


def run_group(group: Group, repeats: int, target_time: float) -> None:
    run_interleaved(group.cases, repeats, target_time)


# -- peers --------------------------------------------------------------------------


def load_tktauth() -> ModuleType:
    """Load plone.session's self-contained tktauth.py by path (no Zope imports)."""
    for entry in importlib.metadata.files("plone.session") or ():
        if str(entry).replace("\\", "/").endswith("session/tktauth.py"):
            spec = importlib.util.spec_from_file_location("_bench_tktauth", entry.locate())
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise SystemExit("plone.session is installed but has no session/tktauth.py")


def setup_django() -> dict[str, Any]:
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY=SECRET.hex(),
            DEBUG=False,
            ALLOWED_HOSTS=["testserver"],
            INSTALLED_APPS=[],
            MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
            USE_TZ=True,
        )
    import django

    django.setup()
    from django.http import HttpRequest
    from django.middleware import csrf

    # A returning visitor: CsrfViewMiddleware.process_request has read the CSRF cookie
    # into META. Built once, outside the timed region; get_token() still masks the
    # secret afresh on every call (Django 4+ does not cache the masked token).
    cookie_secret = csrf._get_new_csrf_string()
    request = HttpRequest()
    request.method = "POST"
    request.COOKIES[settings.CSRF_COOKIE_NAME] = cookie_secret
    request.META["CSRF_COOKIE"] = cookie_secret
    middleware = csrf.CsrfViewMiddleware(lambda _request: None)
    return {
        "get_token": csrf.get_token,
        "_check_token_format": csrf._check_token_format,
        "_does_token_match": csrf._does_token_match,
        "request": request,
        "cookie_secret": cookie_secret,
        "middleware": middleware,
        "header": settings.CSRF_HEADER_NAME,
    }


def setup_flask() -> dict[str, Any]:
    from flask import Flask, g
    from flask_wtf.csrf import generate_csrf, validate_csrf

    app = Flask("bench")
    app.config["SECRET_KEY"] = SECRET.hex()
    context = app.test_request_context("/", method="POST")
    context.push()  # stays pushed for the rest of the process
    generate_csrf()  # a returning visitor: the raw token is already in the session
    return {"g": g, "generate_csrf": generate_csrf, "validate_csrf": validate_csrf}


# -- the cases ----------------------------------------------------------------------


def build_groups() -> list[Group]:
    # Pyramid 2.1 imports pkg_resources, which warns on recent setuptools: noise here.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    import itsdangerous
    from pyramid.authentication import AuthTicket, parse_ticket

    from sitewarden.csrf import check_token, create_token
    from sitewarden.hmackey import PrekeyedHMAC
    from sitewarden.keyring import KeyManager, Keyring
    from sitewarden.tickets import create_ticket, validate_ticket

    tkt = load_tktauth()
    ring = Keyring(5)
    ring.fill()
    signer = itsdangerous.TimestampSigner(SECRET)
    ns: dict[str, Any] = {
        "SECRET": SECRET,
        "USERID": USERID,
        "TOKENS": TOKENS,
        "USER_DATA": USER_DATA,
        "TIMESTAMP": TIMESTAMP,
        "TIMEOUT": TIMEOUT,
        "NOW": NOW,
        "create_ticket": create_ticket,
        "validate_ticket": validate_ticket,
        "createTicket": tkt.createTicket,
        "validateTicket": tkt.validateTicket,
        "AuthTicket": AuthTicket,
        "parse_ticket": parse_ticket,
        "signer": signer,
        "ring": ring,
    }
    ns["sw_ticket"] = create_ticket(SECRET, USERID, TOKENS, USER_DATA, timestamp=TIMESTAMP)
    # More distinct tickets than sitewarden remembers (4096): every call is a full check.
    ns["fresh_tickets"] = itertools.cycle(
        [
            create_ticket(SECRET, USERID, TOKENS, USER_DATA, timestamp=TIMESTAMP - i)
            for i in range(20_000)
        ]
    )
    # The same walk for tktauth, so the iteration costs the same on both sides.
    ns["fresh_tkt"] = itertools.cycle(
        [
            tkt.createTicket(SECRET, USERID, TOKENS, USER_DATA, timestamp=TIMESTAMP - i)
            for i in range(20_000)
        ]
    )
    ns["fresh_oldest"] = itertools.cycle(
        [
            create_ticket(ring.secrets[-1], USERID, TOKENS, USER_DATA, timestamp=TIMESTAMP - i)
            for i in range(20_000)
        ]
    )
    ns["tkt_ticket"] = tkt.createTicket(SECRET, USERID, TOKENS, USER_DATA, timestamp=TIMESTAMP)
    ns["ring_ticket"] = create_ticket(ring, USERID, TOKENS, USER_DATA, timestamp=TIMESTAMP)
    ns["pyr_ticket"] = AuthTicket(
        SECRET, USERID, "0.0.0.0", TOKENS, USER_DATA, time=TIMESTAMP, hashalg="sha256"
    ).cookie_value()
    ns["its_value"] = signer.sign(f"{USERID}!{','.join(TOKENS)}!{USER_DATA}")

    # Same format, same defaults: the two implementations must agree byte for byte.
    if ns["sw_ticket"] != ns["tkt_ticket"]:
        raise SystemExit("sitewarden and tktauth tickets differ: not comparing like with like")

    create = Group(
        "create",
        "Ticket create (hmac-sha256 unless noted)",
        "create.sitewarden",
        [
            Case(
                "create.sitewarden",
                "sitewarden create_ticket",
                "create_ticket(SECRET, USERID, TOKENS, USER_DATA, timestamp=TIMESTAMP)",
                ns,
            ),
            Case(
                "create.tktauth",
                "plone.session tktauth.createTicket",
                "createTicket(SECRET, USERID, TOKENS, USER_DATA, timestamp=TIMESTAMP)",
                ns,
            ),
            Case(
                "create.pyramid",
                "Pyramid AuthTicket(sha256).cookie_value",
                "AuthTicket(SECRET, USERID, '0.0.0.0', TOKENS, USER_DATA, time=TIMESTAMP,"
                " hashalg='sha256').cookie_value()",
                ns,
            ),
            Case(
                "create.itsdangerous",
                "itsdangerous TimestampSigner.sign (HMAC-SHA1)",
                "signer.sign('jbloggs!editor!Joe Bloggs')",
                ns,
            ),
        ],
    )
    validate = Group(
        "validate",
        "Ticket validate (genuine ticket, inside the timeout)",
        "validate.sitewarden",
        [
            Case(
                "validate.sitewarden",
                "sitewarden validate_ticket (repeat: cache hit)",
                "validate_ticket(SECRET, sw_ticket, timeout=TIMEOUT, now=NOW)",
                ns,
            ),
            Case(
                "validate.sitewarden_first",
                "sitewarden, a new ticket each call (full check)",
                "validate_ticket(SECRET, next(fresh_tickets), timeout=TIMEOUT, now=NOW)",
                ns,
            ),
            Case(
                "validate.tktauth",
                "plone.session tktauth.validateTicket",
                "validateTicket(SECRET, tkt_ticket, timeout=TIMEOUT, now=NOW)",
                ns,
            ),
            Case(
                "validate.tktauth_first",
                "plone.session tktauth, a new ticket each call",
                "validateTicket(SECRET, next(fresh_tkt), timeout=TIMEOUT, now=NOW)",
                ns,
            ),
            Case(
                "validate.pyramid",
                "Pyramid parse_ticket(sha256)",
                "parse_ticket(SECRET, pyr_ticket, '0.0.0.0', hashalg='sha256')",
                ns,
            ),
            Case(
                "validate.itsdangerous",
                "itsdangerous TimestampSigner.unsign",
                "signer.unsign(its_value, max_age=TIMEOUT)",
                ns,
            ),
            Case(
                "validate.sitewarden_ring",
                "sitewarden, 5-secret Keyring, current secret",
                "validate_ticket(ring, ring_ticket, timeout=TIMEOUT, now=NOW)",
                ns,
            ),
            Case(
                "validate.sitewarden_ring_oldest",
                "sitewarden, 5-secret Keyring, oldest secret, new",
                "validate_ticket(ring, next(fresh_oldest), timeout=TIMEOUT, now=NOW)",
                ns,
            ),
        ],
    )

    keys = KeyManager.open("memory://")
    csrf_ns: dict[str, Any] = {
        "keys": keys,
        "create_token": create_token,
        "check_token": check_token,
        **setup_django(),
        **setup_flask(),
    }
    csrf = Group(
        "csrf",
        "CSRF token issue + check (one of each, per request)",
        "csrf.sitewarden",
        [
            Case(
                "csrf.sitewarden",
                "sitewarden create_token + check_token",
                "t = create_token(keys, 'jbloggs')\nassert check_token(keys, t, 'jbloggs')",
                csrf_ns,
            ),
            Case(
                "csrf.django",
                "Django get_token + token check",
                # get_token masks the cookie secret afresh; the check is what
                # CsrfViewMiddleware._check_token runs: format of the cookie secret,
                # format of the submitted token, then unmask-and-compare.
                "t = get_token(request)\n"
                "_check_token_format(cookie_secret)\n"
                "_check_token_format(t)\n"
                "assert _does_token_match(t, cookie_secret)",
                csrf_ns,
            ),
            Case(
                "csrf.django_middleware",
                "Django get_token + CsrfViewMiddleware._check_token",
                "request.META[header] = get_token(request)\nmiddleware._check_token(request)",
                csrf_ns,
            ),
            Case(
                "csrf.flask_wtf",
                "Flask-WTF generate_csrf + validate_csrf",
                # flask-wtf caches the signed token in g for the rest of the request;
                # dropping it makes every iteration a new request's work.
                "g.pop('csrf_token', None)\nvalidate_csrf(generate_csrf())",
                csrf_ns,
            ),
        ],
    )

    floor_ns = {
        "hmac": hmac,
        "sha256": hashlib.sha256,
        "key": SECRET,
        "msg": FLOOR_MESSAGE,
        "pre": PrekeyedHMAC(SECRET),
    }
    floor = Group(
        "floor",
        f"HMAC-SHA256 floor ({len(FLOOR_MESSAGE)}-byte message)",
        "floor.prekeyed",
        [
            Case("floor.prekeyed", "sitewarden PrekeyedHMAC.digest", "pre.digest(msg)", floor_ns),
            Case(
                "floor.hmac_new",
                "hmac.new(k, msg, sha256).digest()",
                "hmac.new(key, msg, sha256).digest()",
                floor_ns,
            ),
            Case(
                "floor.hmac_digest",
                "hmac.digest(k, msg, 'sha256')",
                "hmac.digest(key, msg, 'sha256')",
                floor_ns,
            ),
            Case("floor.sha256", "hashlib.sha256(msg).digest()", "sha256(msg).digest()", floor_ns),
        ],
    )
    groups = [create, validate, csrf, floor]
    sanity_check(groups)
    return groups


def sanity_check(groups: list[Group]) -> None:
    """Run every case once, un-timed, and check it takes the success path."""
    checks = {
        "validate.sitewarden": "validate_ticket(SECRET, sw_ticket, timeout=TIMEOUT, now=NOW)",
        "validate.sitewarden_first": (
            "validate_ticket(SECRET, next(fresh_tickets), timeout=TIMEOUT, now=NOW)"
        ),
        "validate.tktauth": "validateTicket(SECRET, tkt_ticket, timeout=TIMEOUT, now=NOW)",
        "validate.sitewarden_ring": "validate_ticket(ring, ring_ticket, timeout=TIMEOUT, now=NOW)",
        "validate.sitewarden_ring_oldest": (
            "validate_ticket(ring, next(fresh_oldest), timeout=TIMEOUT, now=NOW)"
        ),
    }
    for group in groups:
        for case in group.cases:
            exec(case.stmt, dict(case.namespace))  # raises if a check fails
            if case.key in checks:
                result = eval(checks[case.key], dict(case.namespace))
                if result is None:
                    raise SystemExit(f"{case.key}: the ticket did not validate")
    ns = groups[1].cases[0].namespace
    expected = (0, 4)
    got = (
        eval("validate_ticket(ring, ring_ticket).key_index", dict(ns)),
        eval("validate_ticket(ring, next(fresh_oldest)).key_index", dict(ns)),
    )
    if got != expected:
        raise SystemExit(f"keyring tickets validated at key_index {got}, expected {expected}")


# -- reporting ----------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    return harness_machine_info(
        ("sitewarden", "plone.session", "pyramid", "itsdangerous", "django", "flask", "flask-wtf")
    )


def evaluate_targets(groups: list[Group]) -> list[dict[str, Any]]:
    return evaluate_ratio_targets([c for g in groups for c in g.cases], TARGETS)


def print_report(
    info: dict[str, Any], groups: list[Group], targets: list[dict[str, Any]], args: Any
) -> None:
    print(
        f"sitewarden core benchmark — {info['date']}\n"
        f"Python {info['python']} ({info['implementation']}), {info['cpu']}, "
        f"nproc={info['nproc']}, {info['openssl']}\n"
        f"mode={'quick' if args.quick else 'full'}: best of {args.repeats} interleaved "
        f"repeats, ~{args.target_time:g} s per repeat per case"
    )
    for group in groups:
        base = group.case(group.baseline)
        print(f"\n{group.title}")
        print(f"  {'case':<52} {'µs/op':>8} {'÷ first':>8} {'loops':>9}")
        for case in group.cases:
            ratio = case.best_us / base.best_us
            print(f"  {case.label:<52} {case.best_us:8.3f} {ratio:8.2f} {case.number:9d}")
    print("\nTargets (sitewarden ÷ peer, best of each):")
    for t in targets:
        verdict = ("PASS" if t["passed"] else "FAIL") if t["gating"] else "info"
        print(
            f"  {verdict}  {t['name']:<20} {t['sitewarden_us']:7.3f} / {t['peer_us']:7.3f} µs"
            f" = {t['ratio']:.3f}  (target ≤ {t['limit']})"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_options(__doc__.split("\n\n")[0], argv)

    try:
        groups = build_groups()
    except ImportError as exc:
        print(
            f"missing benchmark dependency ({exc}); run with "
            "`uv run --group bench python bench/bench_core.py`",
            file=sys.stderr,
        )
        return 2
    info = machine_info()
    started = time.perf_counter()
    gc.collect()
    for group in groups:
        run_group(group, args.repeats, args.target_time)
    elapsed = time.perf_counter() - started
    targets = evaluate_targets(groups)
    passed = all(t["passed"] for t in targets if t["gating"])
    if args.json:
        doc = json_document(info, args, elapsed, groups, targets=targets, passed=passed)
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print_report(info, groups, targets, args)
        print(f"\n({elapsed:.1f} s)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
