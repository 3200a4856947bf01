"""Passwords: Argon2id hashing and a NIST SP 800-63B / OWASP password policy.

:class:`Passwords` does three jobs for one :class:`~sitewarden.policy.Policy`:

**Hashing.** :meth:`Passwords.hash` makes an Argon2id hash (argon2-cffi) with the policy's
``argon2_memory_kib``, ``argon2_time_cost`` and ``argon2_parallelism``, a 16-byte salt from
``os.urandom`` and a 32-byte tag. :meth:`Passwords.verify` checks a password against a
stored hash and says when the hash should be replaced (other parameters, or not Argon2id):
the caller stores :attr:`Verification.new_hash` ("rehash on login"). Every refusal — a wrong
password, an unknown user (``stored=None``), a damaged or foreign hash — costs at least one
Argon2 verification at the current parameters, so response time does not tell an attacker
which accounts exist. A malformed hash is a refusal and an event, never an exception.

**Policy.** :meth:`Passwords.check` lists what is wrong with a new password, as
:class:`Problem` values (a stable ``code`` and a message for the form): length in Unicode
code points after NFKC normalisation (15 minimum, 8 with a second factor, a maximum of at
least 64), no control characters, no composition rules unless the site sets
``password_rules`` (Plone-style regular expressions), not on the bundled list of 30,000
common/breached passwords (also with a short number or symbols added at either end), not
containing the user's login, e-mail local part or name, a zxcvbn strength of at least
``password_min_score``, and optionally not in Have I Been Pwned's breach corpus.

**Online breach check.** With ``password_breach_check`` on, the password's SHA-1 is looked
up with HIBP's k-anonymity range API: only the first five hex digits of the hash leave the
machine, responses are padded (``Add-Padding: true``) so their size says nothing either. If
the service cannot be reached the check is *skipped* (fail open) and the event
``password.breach_check_failed`` is logged: a third party's outage must not stop sign-ups,
and the local list and the strength estimate still apply.

Passwords are normalised with NFKC before hashing, measuring and checking (NIST SP 800-63B
§5.1.1.2), so the same password typed on another keyboard or system still matches. No
password, hash or hash prefix is ever logged.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import logging
import math
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from argon2 import Parameters, PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION

from sitewarden.events import emit
from sitewarden.policy import Policy

if TYPE_CHECKING:  # httpx takes a quarter of a second to import: only when the check runs
    import httpx

__all__ = [
    "BREACH_TIMEOUT",
    "ESTIMATE_MAX_LENGTH",
    "SALT_BYTES",
    "TAG_BYTES",
    "USER_INPUT_MIN_LENGTH",
    "Passwords",
    "Problem",
    "Strength",
    "Verification",
]

#: Argon2 salt length in bytes (OWASP, RFC 9106: 128 bits).
SALT_BYTES = 16
#: Argon2 tag (hash) length in bytes.
TAG_BYTES = 32
#: Longest part of a password (code points) given to zxcvbn: longer ones are estimated on
#: this prefix, shortened further when zxcvbn's work would explode (see _estimated_part).
ESTIMATE_MAX_LENGTH = 100
#: Shortest user input (code points) that a password may not contain.
USER_INPUT_MIN_LENGTH = 4
#: Seconds allowed for each network wait of the HIBP request, and for the whole answer.
BREACH_TIMEOUT = 3.0

#: Largest HIBP response read (bytes). A padded answer is about 40 KB; a hostile or broken
#: endpoint cannot make us buffer more.
_BREACH_MAX_BYTES = 1 << 20
_BREACH_LINE = re.compile(r"^([0-9A-F]{35}):(\d{1,12})$")
#: Longest stored hash looked at. Real Argon2 hashes are about 100 characters.
_MAX_STORED = 512
#: A trailing or leading "decoration" that does not make a common password uncommon:
#: up to six digits and symbols at the end ("1", "123", "2024!", "1!"), four at the start.
_TRAILING = re.compile(r"[\d\W_]{1,6}$")
_LEADING = re.compile(r"^[\d\W_]{1,4}")
#: zxcvbn's work budget per estimate, in substring look-ups per dictionary: see
#: :func:`_estimated_part`.
_ESTIMATE_WORK = 200_000
#: Separators between the words of a name or an e-mail local part.
_WORD_SPLIT = re.compile(r"[\s._+\-]+")
#: zxcvbn keeps the user inputs in a module-global dictionary while it runs: two threads
#: estimating at once would see each other's inputs. One estimate at a time.
_ZXCVBN_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of :meth:`Passwords.verify`; true when the password matched.

    ``new_hash`` is set only when ``ok`` and the stored hash was made with other parameters
    or another algorithm: store it in place of the old one.
    """

    ok: bool
    new_hash: str | None = None

    def __bool__(self) -> bool:
        """Return ``ok``, so ``if passwords.verify(...):`` reads naturally."""
        return self.ok


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a new password is refused: a stable ``code`` and a ``message`` for forms.

    Codes: ``invalid_character``, ``too_short``, ``too_long``, ``rule``, ``common``,
    ``contains_user_input``, ``weak``, ``breached``.
    """

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Strength:
    """zxcvbn's estimate of a password, for a live strength meter.

    ``score`` runs from 0 (guessed at once) to 4 (very hard); ``guesses_log10`` is the
    base-10 logarithm of the estimated guesses; ``warning`` (may be empty) and
    ``suggestions`` are English sentences from zxcvbn.
    """

    score: int
    guesses_log10: float
    warning: str
    suggestions: tuple[str, ...]


_FAILED = Verification(False)


def _normalise(password: str) -> str:
    """Return *password* in NFKC form; a non-string is a programming error."""
    if not isinstance(password, str):
        raise TypeError(f"a password must be str, not {type(password).__name__}")
    return unicodedata.normalize("NFKC", password)


def _fold(text: str) -> str:
    """Return *text* normalised and case-folded, for case-insensitive comparisons."""
    return unicodedata.normalize("NFKC", text).casefold()


@functools.cache
def _common_passwords() -> frozenset[str]:
    """Return zxcvbn's 30,000 most common breached passwords, built once on first use."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(_fold(word) for word in FREQUENCY_LISTS["passwords"])


def _is_common(folded: str) -> bool:
    """Return whether *folded* is a common password, or one with a short decoration.

    "Password1!", "2024password" and "password123" all count: attackers' word lists try
    such variants first, so they are no better than the bare word.
    """
    common = _common_passwords()
    end = _TRAILING.sub("", folded)
    for candidate in (folded, end, _LEADING.sub("", folded), _LEADING.sub("", end)):
        if candidate and candidate in common:
            return True
    return False


def _user_words(user_inputs: Sequence[str]) -> list[str]:
    """Return the folded user inputs and their words, longest first.

    An e-mail address gives itself and its local part (and the local part's words, such
    as ``joe.bloggs`` → ``bloggs``); the domain is left alone (``gmail`` is no secret of
    the user's). Names give themselves and their words. Entries shorter than
    :data:`USER_INPUT_MIN_LENGTH` are dropped: three letters occur by chance.
    """
    if isinstance(user_inputs, str):  # check(pw, "jbloggs"): one input, not seven letters
        user_inputs = (user_inputs,)
    words: set[str] = set()
    for item in user_inputs:
        if not isinstance(item, str):
            continue
        text = _fold(item).strip()
        if not text:
            continue
        words.add(text)
        if "@" in text:
            text = text.rsplit("@", 1)[0]
            words.add(text)
        words.update(_WORD_SPLIT.split(text))
    return sorted((w for w in words if len(w) >= USER_INPUT_MIN_LENGTH), key=len, reverse=True)


def _reachable_score(length: int) -> int:
    """Return the best zxcvbn score a *length*-character password can get.

    zxcvbn counts ten guesses per character of brute force, so the ceiling is 10**length
    guesses; its score thresholds are 10**3, 10**6, 10**8 and 10**10 (+5).
    """
    for score, most in ((0, 3), (1, 6), (2, 8), (3, 10)):
        if length <= most:
            return score
    return 4


def _estimated_part(text: str) -> str:
    """Return the beginning of *text* that zxcvbn may look at within its work budget.

    zxcvbn matches every substring against its dictionaries once per l33t reading of the
    password, so its work is about (1 + readings) x length²: 100 characters full of l33t
    symbols (``4@8({[<3691!|70$5%2+7…``) have 736 readings and took 3.6 s here. The text
    is cut so that work stays under :data:`_ESTIMATE_WORK` (about 0.1-0.4 s at worst);
    ordinary passwords (a handful of readings) are estimated on their first
    :data:`ESTIMATE_MAX_LENGTH` code points.
    """
    text = text[:ESTIMATE_MAX_LENGTH]
    try:  # zxcvbn's own l33t enumeration: at most a few milliseconds
        from zxcvbn.matching import (  # type: ignore[import-untyped]
            L33T_TABLE,
            enumerate_l33t_subs,
            relevant_l33t_subtable,
        )

        readings = len(enumerate_l33t_subs(relevant_l33t_subtable(text, L33T_TABLE)))
    except Exception:  # zxcvbn's internals moved: keep the plain length cap
        return text
    return text[: max(1, math.isqrt(_ESTIMATE_WORK // (1 + readings)))]


def _has_bad_character(text: str) -> bool:
    """Return whether *text* holds a control character or a lone surrogate.

    Controls (line breaks, tabs, NUL) are typing or pasting accidents that would lock the
    user out; lone surrogates cannot be encoded at all.
    """
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


class Passwords:
    """Argon2id hashing and the password policy of *policy*.

    *transport* replaces httpx's network transport for the online breach check (tests
    pass an ``httpx.MockTransport``). *breach_timeout* (seconds) bounds each network wait
    of the HIBP request and the time to receive the whole answer.
    Instances are safe to share between threads.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        transport: httpx.BaseTransport | None = None,
        breach_timeout: float = BREACH_TIMEOUT,
    ) -> None:
        """Build the hasher and compile the rules; nothing slow happens here."""
        self.policy = policy
        self._hasher = PasswordHasher(
            time_cost=policy.argon2_time_cost,
            memory_cost=policy.argon2_memory_kib,
            parallelism=policy.argon2_parallelism,
            hash_len=TAG_BYTES,
            salt_len=SALT_BYTES,
            type=Type.ID,
        )
        self._parameters = Parameters(
            type=Type.ID,
            version=ARGON2_VERSION,
            salt_len=SALT_BYTES,
            hash_len=TAG_BYTES,
            time_cost=policy.argon2_time_cost,
            memory_cost=policy.argon2_memory_kib,
            parallelism=policy.argon2_parallelism,
        )
        # Stored hashes asking for far more work than ours are refused unverified: a
        # tampered row with t=2**31 or m=4 TiB would otherwise hang or exhaust the worker.
        self._max_memory = max(4 * policy.argon2_memory_kib, 262_144)
        self._max_time = max(4 * policy.argon2_time_cost, 20)
        self._max_lanes = max(4 * policy.argon2_parallelism, 16)
        # Beyond this the input is refused before any work (NFKC, Argon2, zxcvbn).
        self._input_cap = 4 * policy.password_max_length
        self._rules = [(re.compile(p), m) for p, m in policy.password_rules.items()]
        self._transport = transport
        self._breach_timeout = breach_timeout
        self._client: httpx.Client | None = None
        self._dummy: str | None = None
        self._lock = threading.Lock()

    # -- hashing ---------------------------------------------------------------------

    @property
    def parameters(self) -> Parameters:
        """The Argon2 parameters new hashes are made with."""
        return self._parameters

    def hash(self, password: str) -> str:
        """Return the Argon2id hash of *password* (NFKC-normalised) to store.

        Raises :class:`TypeError` for a non-string and :class:`ValueError` for an empty
        password, one that is not valid Unicode text, or one over four times
        ``password_max_length`` code points.
        """
        if not isinstance(password, str):
            raise TypeError(f"a password must be str, not {type(password).__name__}")
        if not password:
            raise ValueError("refusing to hash an empty password")
        if len(password) > self._input_cap:
            raise ValueError(f"refusing to hash a password over {self._input_cap} characters")
        try:
            secret = _normalise(password).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the password is not valid Unicode text") from None
        return self._hasher.hash(secret)

    def verify(self, stored: str | None, password: str) -> Verification:
        """Check *password* against the *stored* hash (``None``: the user does not exist).

        The answer is false for a wrong password, an unknown user, and a hash that is
        malformed, not Argon2 (bcrypt, SSHA, …) or asks for unreasonable work; each of
        these costs one Argon2 verification at the current parameters, like a real
        attempt. When the password matches a hash made with other parameters or another
        Argon2 variant, :attr:`Verification.new_hash` holds its replacement.
        """
        secret = self._secret(password)
        if stored is None or secret is None:
            self._burn(secret)
            return _FAILED
        parameters = self._parse(stored)
        if parameters is None:
            self._burn(secret)
            return _FAILED
        try:
            self._hasher.verify(stored, secret)
        except VerifyMismatchError:
            if parameters != self._parameters:
                # A hash made with older (cheaper) parameters answers a wrong password
                # faster than an unknown user's dummy check: spend the difference, or the
                # timing tells which accounts exist and have not signed in since.
                self._burn(secret)
            return _FAILED
        except (VerificationError, InvalidHashError):
            emit("password.hash_invalid", logging.WARNING, reason="Argon2 could not decode it")
            self._burn(secret)
            return _FAILED
        if parameters != self._parameters:
            return Verification(True, self._hasher.hash(secret))
        return Verification(True)

    def _secret(self, password: object) -> bytes | None:
        """Return the bytes to hash for *password*, or ``None`` if it cannot be a password."""
        if not isinstance(password, str) or len(password) > self._input_cap:
            return None
        try:
            return _normalise(password).encode("utf-8")
        except UnicodeEncodeError:
            return None

    def _parse(self, stored: object) -> Parameters | None:
        """Return the parameters of *stored*, or ``None`` (and an event) if it is unusable."""
        reason = None
        parameters = None
        if not isinstance(stored, str) or len(stored) > _MAX_STORED or not stored.isascii():
            reason = "not a hash string"
        elif not stored.startswith("$argon2"):
            reason = "not an Argon2 hash"  # bcrypt, SSHA, …: verify those before migrating
        else:
            try:
                parameters = extract_parameters(stored)
            except (InvalidHashError, ValueError):
                reason = "malformed Argon2 hash"
            else:
                if (
                    parameters.memory_cost > self._max_memory
                    or parameters.time_cost > self._max_time
                    or parameters.parallelism > self._max_lanes
                ):
                    reason = "Argon2 parameters far above the policy's"
                    parameters = None
        if reason is not None:
            emit("password.hash_invalid", logging.WARNING, reason=reason)
        return parameters

    def _burn(self, secret: bytes | None) -> None:
        """Spend one Argon2 verification at the current parameters, for a refusal.

        The dummy hash is of a random password, made once, so nothing ever matches it.
        """
        dummy = self._dummy
        if dummy is None:
            with self._lock:
                if self._dummy is None:
                    self._dummy = self._hasher.hash(secrets.token_bytes(32))
                dummy = self._dummy
        with contextlib.suppress(VerificationError):
            self._hasher.verify(dummy, secret or b"")

    # -- policy ----------------------------------------------------------------------

    def check(
        self, password: str, user_inputs: Sequence[str] = (), *, two_factor: bool = False
    ) -> list[Problem]:
        """Return every problem with *password* as a new password (empty: acceptable).

        *user_inputs* are the user's login, e-mail address and name (and any site words);
        *two_factor* says the account has a second factor, which lowers the minimum
        length. The online breach check runs only when nothing else is wrong, so no hash
        prefix of a password the user must change anyway leaves the machine.
        """
        if not isinstance(password, str):
            raise TypeError(f"a password must be str, not {type(password).__name__}")
        p = self.policy
        if len(password) > self._input_cap:  # before normalising: no work for huge input
            return [Problem("too_long", f"Use at most {p.password_max_length} characters.")]
        text = _normalise(password)
        problems: list[Problem] = []
        if _has_bad_character(text):
            problems.append(
                Problem(
                    "invalid_character",
                    "Passwords cannot contain control characters such as tabs or line breaks.",
                )
            )
        minimum = p.password_min_length_2fa if two_factor else p.password_min_length
        if len(text) < minimum:
            problems.append(Problem("too_short", self._too_short_message(two_factor)))
        elif len(text) > p.password_max_length:
            problems.append(Problem("too_long", f"Use at most {p.password_max_length} characters."))
        # Plone's Products.PasswordStrength: each rule must be found, each failure reported.
        problems.extend(Problem("rule", msg) for rule, msg in self._rules if not rule.search(text))
        folded = text.casefold()
        if _is_common(folded):
            problems.append(
                Problem(
                    "common",
                    "This password is on a list of common or breached passwords. Choose another.",
                )
            )
        words = _user_words(user_inputs)
        if any(word in folded for word in words):
            problems.append(
                Problem(
                    "contains_user_input",
                    "Do not use your user name, e-mail address or name in your password.",
                )
            )
        required = p.password_min_score
        if two_factor:
            # zxcvbn rates any 8-character password at most 2 (10**8 guesses by brute
            # force): demanding 3 would make NIST's 8-with-a-second-factor unreachable.
            required = min(required, _reachable_score(len(text)))
        if required:
            strength = self._estimate(text, words)
            if strength.score < required:
                problems.append(Problem("weak", self._weak_message(strength)))
        if p.password_breach_check and not problems:
            count = self.breached_count(text)
            if count:
                problems.append(
                    Problem(
                        "breached",
                        f"This password has appeared in data breaches ({count:,} times). "
                        "Choose another.",
                    )
                )
        return problems

    def _too_short_message(self, two_factor: bool) -> str:
        p = self.policy
        if two_factor or p.password_min_length == p.password_min_length_2fa:
            minimum = p.password_min_length_2fa if two_factor else p.password_min_length
            return f"Use at least {minimum} characters."
        return (
            f"Use at least {p.password_min_length} characters "
            f"({p.password_min_length_2fa} with two-factor sign-in)."
        )

    @staticmethod
    def _weak_message(strength: Strength) -> str:
        parts = ["This password is too easy to guess."]
        if strength.warning:
            parts.append(strength.warning)
        parts.extend(strength.suggestions)
        return " ".join(parts)

    def strength(self, password: str, user_inputs: Sequence[str] = ()) -> Strength:
        """Return zxcvbn's estimate of *password* (NFKC-normalised), for a strength meter.

        Only the first :data:`ESTIMATE_MAX_LENGTH` code points are estimated (zxcvbn's time
        grows with length); a weak beginning still shows, a long tail only adds strength.
        """
        # Cut before normalising too (NFKC can shorten a text up to three times over):
        # a megabyte pasted into a meter costs no more than a long password.
        text = _normalise(password[: 4 * ESTIMATE_MAX_LENGTH])
        return self._estimate(text, _user_words(user_inputs))

    def _estimate(self, text: str, words: list[str]) -> Strength:
        if not text:  # zxcvbn fails on "" (IndexError); nothing to guess
            return Strength(0, 0.0, "", ("Choose a password.",))
        from zxcvbn import zxcvbn  # type: ignore[import-untyped]

        text = _estimated_part(text)
        try:
            with _ZXCVBN_LOCK:
                result: dict[str, Any] = zxcvbn(
                    text, user_inputs=words, max_length=ESTIMATE_MAX_LENGTH
                )
        except Exception as exc:  # a bug in the third-party estimator: fail closed, loudly
            emit("password.estimate_failed", logging.ERROR, reason=type(exc).__name__)
            return Strength(0, 0.0, "The strength of this password could not be estimated.", ())
        feedback = result.get("feedback") or {}
        guesses = float(result.get("guesses_log10", 0.0))
        return Strength(
            score=int(result["score"]),
            guesses_log10=guesses if math.isfinite(guesses) else 0.0,
            warning=str(feedback.get("warning") or ""),
            suggestions=tuple(str(s) for s in feedback.get("suggestions") or ()),
        )

    # -- online breach check -----------------------------------------------------------

    def breached_count(self, password: str) -> int | None:
        """Return how often *password* appears in HIBP's corpus; ``None`` if unreachable.

        Sends ``GET {password_breach_url}{first 5 hex digits of SHA-1}`` with
        ``Add-Padding: true``; the other 35 digits are compared here. An unreachable
        service, a non-200 answer or a malformed body gives ``None`` and the event
        ``password.breach_check_failed``.
        """
        try:
            secret = _normalise(password).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the password is not valid Unicode text") from None
        # SHA-1 is HIBP's lookup key, not our password storage: usedforsecurity=False.
        digest = hashlib.sha1(secret, usedforsecurity=False).hexdigest().upper()
        prefix, suffix = digest[:5], digest[5:].encode("ascii")
        body = self._fetch_range(prefix)
        if body is None:
            return None
        count = 0
        for raw in body.splitlines():
            line = raw.strip()
            if not line:
                continue
            match = _BREACH_LINE.match(line)
            if match is None:
                self._breach_failed("malformed response")
                return None
            # Every line is compared in full (no early exit): the position of a match
            # stays out of the timing.
            if hmac.compare_digest(match.group(1).encode("ascii"), suffix):
                count = int(match.group(2))  # padding rows have count 0: never a hit
        return count

    def _fetch_range(self, prefix: str) -> str | None:
        """Return HIBP's answer for *prefix* as text, or ``None`` (after an event)."""
        import httpx

        # httpx's timeout bounds each wait; the deadline bounds the whole answer, so a
        # server dripping a byte at a time cannot hold a sign-up for minutes.
        deadline = time.monotonic() + self._breach_timeout
        try:
            client = self._http()
            with client.stream(
                "GET",
                self.policy.password_breach_url + prefix,
                headers={"Add-Padding": "true"},
            ) as response:
                if response.status_code != 200:
                    self._breach_failed(f"HTTP {response.status_code}")
                    return None
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > _BREACH_MAX_BYTES:
                        self._breach_failed("response too large")
                        return None
                    if time.monotonic() > deadline:
                        self._breach_failed("too slow")
                        return None
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            self._breach_failed(type(exc).__name__)
            return None
        try:
            return b"".join(chunks).decode("ascii")
        except UnicodeDecodeError:
            self._breach_failed("malformed response")
            return None

    def _http(self) -> httpx.Client:
        """Return the shared client (created once: the TLS connection is reused)."""
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    transport=self._transport,
                    timeout=httpx.Timeout(self._breach_timeout),
                    follow_redirects=False,
                    headers={"User-Agent": "sitewarden-password-check"},
                )
            return self._client

    @staticmethod
    def _breach_failed(reason: str) -> None:
        """Log that the online check was skipped (fail open: see the module docstring)."""
        emit("password.breach_check_failed", logging.WARNING, reason=reason)

    def close(self) -> None:
        """Close the HTTP client of the breach check, if one was opened."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
