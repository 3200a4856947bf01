"""Passwords: Argon2id hashing, verification without account enumeration, the NIST/OWASP
policy (length, common list, user inputs, rules, strength) and the HIBP range check."""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from sitewarden import events
from sitewarden.accounts.passwords import (
    ESTIMATE_MAX_LENGTH,
    Passwords,
    Problem,
    Strength,
    Verification,
)
from sitewarden.policy import Policy, load_policy

# OWASP's cheapest allowed pair (7 MiB, 5 passes, 1 lane): about 16 ms per hash here.
FAST = {"argon2_memory_kib": 7168, "argon2_time_cost": 5, "argon2_parallelism": 1}
USER = ("jbloggs", "joe.bloggs@example.org", "Joe Bloggs")


def fullwidth(text: str) -> str:
    """Return *text* in full-width forms (U+FF01…), which NFKC maps back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def make_policy(**settings: Any) -> Policy:
    return load_policy(**{**FAST, **settings})


@pytest.fixture
def pw() -> Iterator[Passwords]:
    passwords = Passwords(make_policy())
    yield passwords
    passwords.close()


def codes(problems: list[Problem]) -> list[str]:
    return [p.code for p in problems]


def logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == events.LOGGER_NAME]


# -- hashing ---------------------------------------------------------------------------


def test_hash_round_trip(pw: Passwords) -> None:
    stored = pw.hash("correct horse battery staple")
    good = pw.verify(stored, "correct horse battery staple")
    assert good == Verification(True, None)
    assert good  # truthy when ok
    bad = pw.verify(stored, "correct horse battery stapler")
    assert bad == Verification(False, None)
    assert not bad
    assert pw.hash("same") != pw.hash("same")  # a fresh random salt each time


def test_encoded_hash_carries_the_owasp_parameters() -> None:
    default = Passwords(load_policy())  # 19 MiB, 2 passes, 1 lane: OWASP's first choice
    params = extract_parameters(default.hash("correct horse battery staple"))
    assert params.type is Type.ID
    assert params.version == 19
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19_456, 2, 1)
    assert (params.salt_len, params.hash_len) == (16, 32)
    assert default.parameters == params


def test_encoded_hash_follows_the_policy(pw: Passwords) -> None:
    params = extract_parameters(pw.hash("x"))
    assert (params.memory_cost, params.time_cost, params.parallelism) == (7168, 5, 1)
    assert params.type is Type.ID


def test_rehash_signalled_when_parameters_change(pw: Passwords) -> None:
    old = pw.hash("correct horse battery staple")
    stronger = Passwords(load_policy(argon2_memory_kib=9216, argon2_time_cost=4))
    result = stronger.verify(old, "correct horse battery staple")
    assert result.ok and result.new_hash is not None
    params = extract_parameters(result.new_hash)
    assert (params.memory_cost, params.time_cost) == (9216, 4)
    # The replacement verifies and needs nothing more; a wrong password gets no new hash.
    assert stronger.verify(result.new_hash, "correct horse battery staple") == Verification(True)
    assert stronger.verify(old, "wrong") == Verification(False)


@pytest.mark.parametrize(
    "hasher",
    [
        PasswordHasher(memory_cost=7168, time_cost=5, parallelism=1, type=Type.I),
        PasswordHasher(memory_cost=7168, time_cost=5, parallelism=1, type=Type.D),
        PasswordHasher(memory_cost=7168, time_cost=5, parallelism=1, salt_len=8, hash_len=16),
    ],
    ids=["argon2i", "argon2d", "short-salt-and-tag"],
)
def test_other_argon2_variants_verify_and_are_replaced(pw: Passwords, hasher: Any) -> None:
    stored = hasher.hash("correct horse battery staple")
    result = pw.verify(stored, "correct horse battery staple")
    assert result.ok
    assert result.new_hash is not None
    assert extract_parameters(result.new_hash) == pw.parameters


@pytest.mark.parametrize(
    "stored",
    [
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        "{SSHA}dGhpcyBpcyBub3QgYSByZWFsIGhhc2g=",  # Plone's AuthEncoding
        "5f4dcc3b5aa765d61d8327deb882cf99",  # unsalted MD5 of "password"
        "password",  # a plain-text password in the column
    ],
)
def test_foreign_formats_are_refused_with_an_event(
    pw: Passwords, stored: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=events.LOGGER_NAME)
    assert pw.verify(stored, "password") == Verification(False)
    [record] = logged(caplog)
    assert record["event"] == "password.hash_invalid"
    assert record == {
        "event": "password.hash_invalid",
        "time": record["time"],
        "reason": "not an Argon2 hash",
    }  # nothing of the hash itself


def _corrupt_hashes() -> list[Any]:
    real = PasswordHasher(memory_cost=7168, time_cost=5, parallelism=1).hash("x")
    head, salt, tag = real.rsplit("$", 2)
    return [
        "",
        "$",
        "$argon2id$",
        "$argon2id$v=19$m=7168,t=5,p=1",
        "$argon2id$v=19$m=abc,t=5,p=1$c2FsdHNhbHQ$dGFn",
        "$argon2id$v=19$t=5,p=1$c2FsdHNhbHRzYWx0$dGFndGFndGFndGFn",
        "$argon2xx$v=19$m=7168,t=5,p=1$c2FsdHNhbHRzYWx0$dGFndGFndGFndGFn",
        real[:-10],  # truncated tag
        f"{head}$!!!notbase64!!!${tag}",
        f"{head}${salt}$",
        real.replace("$argon2id$", "$argon2id$ "),
        real + "é",  # not ASCII
        "$argon2id$" + "A" * 10_000,
        b"$argon2id$v=19$m=7168,t=5,p=1$c2FsdHNhbHQ$dGFn",  # bytes, not str
        12345,
    ]


@pytest.mark.parametrize("stored", _corrupt_hashes())
def test_malformed_hashes_are_refused_never_raised(pw: Passwords, stored: Any) -> None:
    assert pw.verify(stored, "x") == Verification(False)


@pytest.mark.parametrize(
    "params",
    ["m=7168,t=2147483647,p=1", "m=2147483647,t=5,p=1", "m=7168,t=5,p=255"],
    ids=["time-bomb", "memory-bomb", "lane-bomb"],
)
def test_tampered_hash_cannot_make_verification_hang(
    pw: Passwords, params: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A row rewritten to ask for 2**31 passes or 2 TiB would hang or kill the worker.
    caplog.set_level(logging.WARNING, logger=events.LOGGER_NAME)
    salt, tag = pw.hash("x").rsplit("$", 2)[1:]
    stored = f"$argon2id$v=19${params}${salt}${tag}"
    start = time.perf_counter()
    assert pw.verify(stored, "x") == Verification(False)
    assert time.perf_counter() - start < 2.0
    assert [r["event"] for r in logged(caplog)] == ["password.hash_invalid"]


def test_unknown_user_is_never_accepted(pw: Passwords) -> None:
    for guess in ("", "x", "password", "correct horse battery staple"):
        assert pw.verify(None, guess) == Verification(False)


@pytest.mark.parametrize("password", [None, b"bytes", 42, "bad \udc80 surrogate", "x" * 600])
def test_unusable_password_input_is_a_refusal(pw: Passwords, password: Any) -> None:
    stored = pw.hash("x")
    assert pw.verify(stored, password) == Verification(False)
    assert pw.verify(None, password) == Verification(False)


def test_hash_refuses_bad_input_clearly(pw: Passwords) -> None:
    with pytest.raises(TypeError, match="must be str"):
        pw.hash(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        pw.hash("")
    with pytest.raises(ValueError, match="Unicode"):
        pw.hash("bad \udc80 surrogate")
    with pytest.raises(ValueError, match="512"):
        pw.hash("x" * 513)  # 4 x password_max_length
    assert pw.verify(pw.hash("x" * 512), "x" * 512)


def test_passwords_are_normalised_before_hashing(pw: Passwords) -> None:
    # NIST SP 800-63B 5.1.1.2: the same password from another keyboard or OS must match.
    composed = "Ångström café"
    decomposed = "A\u030angstro\u0308m cafe\u0301"
    assert composed != decomposed
    assert pw.verify(pw.hash(composed), decomposed)
    assert pw.verify(pw.hash(decomposed), composed)
    assert pw.verify(pw.hash(fullwidth("pass word")), "pass word")  # full-width forms


def _elapsed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_unknown_user_takes_as_long_as_a_known_one(pw: Passwords) -> None:
    """Account enumeration by timing fails: unknown, known-wrong and damaged cost alike."""
    stored = pw.hash("correct horse battery staple")
    known = lambda: pw.verify(stored, "guess")  # noqa: E731
    others: dict[str, Callable[[], object]] = {
        "unknown": lambda: pw.verify(None, "guess"),
        "bcrypt": lambda: pw.verify("$2b$12$" + "a" * 53, "guess"),
    }
    for fn in (known, *others.values()):  # warm up (the dummy hash is made on first use)
        fn()
    ratios: dict[str, list[float]] = {name: [] for name in others}
    for _ in range(9):
        for name, fn in others.items():
            # Paired, back to back: a burst of machine load hits both sides alike.
            ratios[name].append(_elapsed(fn) / _elapsed(known))
    for name, values in ratios.items():
        ratio = statistics.median(values)
        assert 0.7 < ratio < 1.4, (name, ratio, values)


# -- the policy: NIST SP 800-63B / OWASP examples ----------------------------------------


def test_nist_examples(pw: Passwords) -> None:
    assert "common" in codes(pw.check("password"))
    assert "common" in codes(pw.check("Password1!"))
    assert "common" in codes(pw.check("Password1!", two_factor=True))
    assert pw.check("purple cactus 9") == []  # a 15-character passphrase
    assert pw.check("🦊 jumps over 🐢 lazily") == []  # emoji and spaces
    assert pw.check("all lowercase words and no digits") == []  # no composition rules


def test_length_minimum_depends_on_a_second_factor(pw: Passwords) -> None:
    assert codes(pw.check("purple cactus ")) == ["too_short"]  # 14 characters
    [problem] = pw.check("purple cactus ")
    assert problem.message == "Use at least 15 characters (8 with two-factor sign-in)."
    assert pw.check("purple cactus ", two_factor=True) == []
    assert pw.check("jx7!pq2z", two_factor=True) == []  # 8 characters with 2FA
    assert codes(pw.check("jx7!pq2z")) == ["too_short", "weak"]
    [short] = pw.check("jx7!pq2", two_factor=True)
    assert short == Problem("too_short", "Use at least 8 characters.")


def test_long_passwords_are_allowed_up_to_the_maximum(pw: Passwords) -> None:
    sentence = "the quick brown fox jumps over the lazy dog while the cat naps "
    assert pw.check(sentence[:64]) == []
    assert pw.check((sentence * 2)[:100]) == []
    assert pw.check((sentence * 2)[:128]) == []
    [problem] = pw.check((sentence * 3)[:129])
    assert problem == Problem("too_long", "Use at most 128 characters.")
    start = time.perf_counter()
    assert codes(pw.check("x" * 1_000_000)) == ["too_long"]  # refused before any work
    assert time.perf_counter() - start < 0.5


def test_length_counts_code_points_after_nfkc() -> None:
    pw = Passwords(make_policy(password_min_score=0))
    fifteen = "🦊🐢🐙🦉🐝🦋🐌🐞🦂🐢🦀🐡🦑🦐🐳"  # 15 code points, 60 UTF-8 bytes
    assert pw.check(fifteen) == []
    assert codes(pw.check(fifteen[:14])) == ["too_short"]
    # 16 code points as typed, 8 after NFKC (e + combining acute → é)
    assert codes(pw.check("e\u0301" * 8)) == ["too_short"]
    # 8 ligatures as typed, 16 letters after NFKC (ﬁ → fi)
    assert pw.check("\ufb01" * 8) == []
    assert codes(pw.check("\ufb01" * 65)) == ["too_long"]  # 130 after NFKC


def test_every_printable_character_is_allowed() -> None:
    pw = Passwords(make_policy(password_min_score=0))
    printable = "".join(chr(c) for c in range(0x20, 0x7F))  # space to tilde
    assert pw.check(printable) == []
    assert pw.check("Grüße aus Köln, 東京 и Москва ✓") == []


@pytest.mark.parametrize("control", ["\n", "\t", "\x00", "\r", "\x1b", "\x85"])
def test_control_characters_are_refused(pw: Passwords, control: str) -> None:
    problems = pw.check(f"purple cactus{control}nine")
    assert codes(problems) == ["invalid_character"]
    assert "control characters" in problems[0].message


def test_lone_surrogate_is_refused_not_raised(pw: Passwords) -> None:
    assert "invalid_character" in codes(pw.check("purple cactus \udc80 nine"))


@pytest.mark.parametrize(
    "password",
    [
        "password",
        "PASSWORD",
        "PaSsWoRd",
        "Password1!",
        "password2024",
        "password123!",
        "123password",
        "!!dragon2024!!",
        "monkey!!",
        fullwidth("password"),  # the same after NFKC
        "qwertyuiop12345",
        "1qaz2wsx3edc4rfv",  # a 16-character entry of the list
    ],
)
def test_common_passwords_and_trivial_variants(password: str) -> None:
    pw = Passwords(make_policy(password_min_score=0))
    assert "common" in codes(pw.check(password, two_factor=True))


@pytest.mark.parametrize(
    "password",
    [
        "password is not my secret",  # a common word inside a passphrase is fine
        "dragon 8472619305738291",  # a long random number is not a "trivial" suffix
        "xk!monkey-turnip-lamp",
    ],
)
def test_passphrases_with_common_words_are_not_common(password: str) -> None:
    pw = Passwords(make_policy(password_min_score=0))
    assert "common" not in codes(pw.check(password))


@pytest.mark.parametrize(
    "password",
    [
        "jbloggs-loves-purple-cactus",  # the login
        "JBLOGGS loves purple cactus",  # any case
        "purple joe.bloggs cactus nine",  # the e-mail local part
        "my name is bloggs okay friend",  # a word of the name (and of the local part)
        "purple cactus joe bloggs nine",  # the whole name
    ],
)
def test_user_inputs_are_refused(pw: Passwords, password: str) -> None:
    problems = pw.check(password, USER)
    assert "contains_user_input" in codes(problems)
    [problem] = [p for p in problems if p.code == "contains_user_input"]
    assert problem.message == "Do not use your user name, e-mail address or name in your password."


@pytest.mark.parametrize(
    "password",
    [
        "joe and the purple cactus",  # "joe" is under 4 characters: chance, not a leak
        "example purple cactus org",  # the e-mail domain is no secret of the user's
    ],
)
def test_short_inputs_and_the_domain_are_not_refused(pw: Passwords, password: str) -> None:
    assert pw.check(password, USER) == []


def test_a_single_string_is_one_input_not_letters(pw: Passwords) -> None:
    assert codes(pw.check("jbloggs-loves-purple-cactus", "jbloggs")) == ["contains_user_input"]
    assert pw.strength("jbloggs2024", "jbloggs").score <= 1


def test_user_inputs_tolerate_odd_values(pw: Passwords) -> None:
    odd: list[Any] = ["", "   ", None, 42, "@", "a@b"]
    assert pw.check("purple cactus nine", odd) == []


def test_plone_style_rules_report_every_failure() -> None:
    rules = {
        r"[A-Z]": "Minimum 1 capital letter",
        r"[0-9]": "Minimum 1 number",
        r".*[^0-9a-zA-Z ].*": "Minimum 1 non-alpha character",  # Plone's own spelling
    }
    pw = Passwords(make_policy(password_rules=rules))
    problems = pw.check("purple cactus nine")
    assert problems == [Problem("rule", message) for message in rules.values()]
    # re.search: a digit at the end satisfies "[0-9]" (re.match would not).
    assert pw.check("Purple cactus nine 9!") == []
    assert codes(pw.check("Purple cactus nine!")) == ["rule"]


def test_rules_apply_to_the_normalised_password() -> None:
    pw = Passwords(make_policy(password_rules={r"[0-9]": "Use a digit."}))
    assert pw.check(fullwidth("purple cactus 9")) == []  # full-width nine is "9" after NFKC


def test_weak_passwords_are_refused_with_zxcvbn_feedback(pw: Passwords) -> None:
    [problem] = pw.check("aaaaaaaaaaaaaaaa")
    assert problem.code == "weak"
    assert problem.message.startswith("This password is too easy to guess.")
    assert 'Repeats like "aaa" are easy to guess.' in problem.message
    assert codes(pw.check("abcdefghijklmnopq")) == ["weak"]  # a sequence


def test_min_score_zero_turns_the_estimate_off() -> None:
    pw = Passwords(make_policy(password_min_score=0))
    assert pw.check("aaaaaaaaaaaaaaaa") == []


def test_long_passwords_are_estimated_on_their_beginning(pw: Passwords) -> None:
    assert codes(pw.check("a" * 120)) == ["weak"]  # not waved through for being long
    assert codes(pw.check("xyz" * 40)) == ["weak"]
    assert len("xyz" * 40) > ESTIMATE_MAX_LENGTH


def test_l33t_heavy_password_cannot_stall_the_estimate(pw: Passwords) -> None:
    # zxcvbn needed 3.6 s for 100 characters like this (736 l33t readings); an attacker
    # posting them to a sign-up form would have 175 times the cost of a login.
    nasty = ("4@8({[<3691!|70$5%2+7" * 7)[:128]
    pw.check("warm up")
    start = time.perf_counter()
    assert pw.check(nasty) == []
    assert time.perf_counter() - start < 1.5


def test_two_factor_caps_the_score_at_what_eight_characters_reach() -> None:
    # zxcvbn rates every 8-character password at most 2: with score 3 or 4 required, NIST's
    # "8 with a second factor" would be impossible. Longer passwords get no discount.
    pw = Passwords(make_policy(password_min_score=4))
    assert pw.strength("jx7!pq2z").score == 2
    assert pw.check("jx7!pq2z", two_factor=True) == []
    assert codes(pw.check("abcdefgh", two_factor=True)) == ["weak"]  # still estimated
    assert pw.strength("jx7!pq2zjx7!pq2z").score == 3
    assert codes(pw.check("jx7!pq2zjx7!pq2z", two_factor=True)) == ["weak"]


def test_check_rejects_non_strings(pw: Passwords) -> None:
    with pytest.raises(TypeError, match="must be str"):
        pw.check(None)  # type: ignore[arg-type]


def test_problem_and_verification_are_frozen() -> None:
    problem = Problem("weak", "x")
    with pytest.raises(FrozenInstanceError):
        problem.code = "fine"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        Verification(False).ok = True  # type: ignore[misc]


# -- strength meter --------------------------------------------------------------------


def test_strength_for_a_meter(pw: Passwords) -> None:
    strong = pw.strength("correct horse battery staple")
    assert isinstance(strong, Strength)
    assert strong.score == 4 and strong.guesses_log10 > 15
    assert strong.warning == "" and strong.suggestions == ()
    weak = pw.strength("password")
    assert weak.score == 0
    assert weak.warning == "This is a top-10 common password."
    assert weak.suggestions and all(isinstance(s, str) for s in weak.suggestions)
    assert pw.strength("") == Strength(0, 0.0, "", ("Choose a password.",))


def test_strength_uses_the_user_inputs(pw: Passwords) -> None:
    assert pw.strength("jbloggs2024").score == 4
    assert pw.strength("jbloggs2024", USER).score <= 1


def test_strength_is_thread_safe_with_different_user_inputs(pw: Passwords) -> None:
    # zxcvbn keeps the user inputs in a module global while it runs.
    users = [(f"user{i}name", f"user{i}name2024") for i in range(4)]
    expected = {name: pw.strength(password, [name]).score for name, password in users}
    seen: dict[str, set[int]] = {name: set() for name, _ in users}

    def worker(name: str, password: str) -> None:
        for _ in range(25):
            seen[name].add(pw.strength(password, [name]).score)

    threads = [threading.Thread(target=worker, args=user) for user in users]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: without the lock this fails 5/5
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert seen == {name: {score} for name, score in expected.items()}


# -- the online breach check -----------------------------------------------------------

SHA1 = hashlib.sha1(b"purple cactus nine").hexdigest().upper()
PREFIX, SUFFIX = SHA1[:5], SHA1[5:]
PADDING = "".join(f"{i:035X}:0\r\n" for i in range(1, 400))


class FakeHibp:
    """An httpx.MockTransport handler that records every request it gets."""

    def __init__(self, body: str = "", status: int = 200) -> None:
        self.body = body
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, text=self.body)


def breach_checker(
    handler: Callable[[httpx.Request], httpx.Response], **settings: Any
) -> Passwords:
    policy = make_policy(password_breach_check=True, **settings)
    return Passwords(policy, transport=httpx.MockTransport(handler))


def test_breached_password_is_refused_and_only_the_prefix_is_sent() -> None:
    fake = FakeHibp(PADDING + f"{SUFFIX}:4213\r\n" + PADDING.replace(":0", ":7", 3))
    pw = breach_checker(fake)
    assert pw.check("purple cactus nine") == [
        Problem(
            "breached",
            "This password has appeared in data breaches (4,213 times). Choose another.",
        )
    ]
    [request] = fake.requests
    assert request.method == "GET"
    assert str(request.url) == f"https://api.pwnedpasswords.com/range/{PREFIX}"
    assert request.headers["Add-Padding"] == "true"
    assert request.content == b""
    sent = str(request.url) + "".join(f"{k}:{v}" for k, v in request.headers.items())
    assert SUFFIX not in sent.upper() and SUFFIX[:8] not in sent.upper()
    assert "purple" not in sent


def test_breached_count() -> None:
    assert breach_checker(FakeHibp(f"{SUFFIX}:3\n")).breached_count("purple cactus nine") == 3
    assert breach_checker(FakeHibp(PADDING)).breached_count("purple cactus nine") == 0


def test_padding_rows_never_count() -> None:
    # HIBP's padding rows carry count 0; one may even share our suffix by chance.
    pw = breach_checker(FakeHibp(PADDING + f"{SUFFIX}:0\r\n"))
    assert pw.breached_count("purple cactus nine") == 0
    assert pw.check("purple cactus nine") == []


def test_breach_check_is_off_by_default_and_skipped_after_local_problems() -> None:
    fake = FakeHibp(f"{SUFFIX}:3\n")
    off = Passwords(make_policy(), transport=httpx.MockTransport(fake))
    assert off.check("purple cactus nine") == []
    on = breach_checker(fake)
    assert codes(on.check("password")) == ["too_short", "common", "weak"]
    assert fake.requests == []  # no prefix of a refused password left the machine


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (FakeHibp(status=503), "HTTP 503"),
        (FakeHibp(status=302), "HTTP 302"),  # redirects are not followed
        (FakeHibp("<html>captive portal</html>"), "malformed response"),
        (FakeHibp(f"{SUFFIX}:3\nnot a line\n"), "malformed response"),
        (FakeHibp(f"{SUFFIX}:3\n" * 40_000), "response too large"),
    ],
)
def test_bad_answers_skip_the_check_with_an_event(
    handler: FakeHibp, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=events.LOGGER_NAME)
    pw = breach_checker(handler)
    assert pw.breached_count("purple cactus nine") is None
    assert pw.check("purple cactus nine") == []  # fail open
    records = logged(caplog)
    assert [r["event"] for r in records] == ["password.breach_check_failed"] * 2
    assert records[0]["reason"] == reason


@pytest.mark.parametrize(
    "error", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError]
)
def test_unreachable_service_skips_the_check_with_an_event(
    error: type[httpx.TransportError], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=events.LOGGER_NAME)

    def down(request: httpx.Request) -> httpx.Response:
        raise error("down", request=request)

    pw = breach_checker(down)
    assert pw.check("purple cactus nine") == []
    [record] = logged(caplog)
    assert record == {
        "event": "password.breach_check_failed",
        "time": record["time"],
        "reason": error.__name__,
    }


def test_slow_drip_answer_is_abandoned(caplog: pytest.LogCaptureFixture) -> None:
    # Each chunk arrives within the per-read timeout, but the whole answer takes too long.
    caplog.set_level(logging.WARNING, logger=events.LOGGER_NAME)

    def drip(request: httpx.Request) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            for line in (PADDING + f"{SUFFIX}:3\r\n").splitlines(keepends=True)[:8]:
                time.sleep(0.05)
                yield line.encode()

        return httpx.Response(200, content=chunks())

    policy = make_policy(password_breach_check=True)
    pw = Passwords(policy, transport=httpx.MockTransport(drip), breach_timeout=0.2)
    start = time.perf_counter()
    assert pw.breached_count("purple cactus nine") is None
    assert time.perf_counter() - start < 1.0
    assert [r["reason"] for r in logged(caplog)] == ["too slow"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_closed_port_on_the_real_network_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=events.LOGGER_NAME)
    url = f"http://127.0.0.1:{_free_port()}/range/"
    pw = Passwords(make_policy(password_breach_check=True, password_breach_url=url))
    start = time.perf_counter()
    assert pw.breached_count("purple cactus nine") is None
    assert time.perf_counter() - start < 3.5
    assert [r["event"] for r in logged(caplog)] == ["password.breach_check_failed"]
    pw.close()


def test_real_http_server_sees_only_the_prefix() -> None:
    """What actually goes over the wire: request line, headers and body as received."""
    seen: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.requestline, dict(self.headers.items()), self.rfile.read(length)))
            body = (PADDING + f"{SUFFIX}:12\r\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/range/"
        pw = Passwords(make_policy(password_breach_check=True, password_breach_url=url))
        assert pw.breached_count("purple cactus nine") == 12
        assert codes(pw.check("purple cactus nine")) == ["breached"]
        pw.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(seen) == 2
    for requestline, headers, body in seen:
        assert requestline == f"GET /range/{PREFIX} HTTP/1.1"
        assert headers["Add-Padding"] == "true"
        assert body == b""
        wire = requestline + json.dumps(headers)
        assert SUFFIX not in wire.upper() and "purple" not in wire


def test_a_wrong_password_against_a_stale_cheap_hash_costs_a_full_check(pw: Passwords) -> None:
    """After the parameters are raised, old accounts must not answer faster than unknown ones."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID).hash("right")

    def best(stored: str | None) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            assert not pw.verify(stored, "wrong")
            times.append(time.perf_counter() - start)
        return min(times)

    assert best(cheap) > 0.5 * best(None)
