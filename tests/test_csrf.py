"""CSRF authenticators: bound to user and form, masked per issue, forged tokens refused."""

from __future__ import annotations

import base64
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden import csrf
from sitewarden.csrf import TOKEN_LENGTH, check_token, create_token
from sitewarden.keyring import KeyManager
from sitewarden.store import open_store


@pytest.fixture
def keys() -> KeyManager:
    return KeyManager.open("memory://")


def test_token_round_trip(keys: KeyManager) -> None:
    token = create_token(keys, "bob")
    assert len(token) == TOKEN_LENGTH
    assert check_token(keys, token, "bob")
    anon = create_token(keys)
    assert check_token(keys, anon)
    assert check_token(keys, anon, None)


def test_every_issue_differs_bytes_so_breach_learns_nothing(keys: KeyManager) -> None:
    """BREACH: the same user's token never repeats across pages, yet each one checks."""
    tokens = {create_token(keys, "bob") for _ in range(200)}
    assert len(tokens) == 200
    assert all(check_token(keys, t, "bob") for t in tokens)


def test_token_of_one_user_is_refused_for_another(keys: KeyManager) -> None:
    token = create_token(keys, "alice")
    assert not check_token(keys, token, "mallory")
    assert not check_token(keys, token, "Alice")
    assert not check_token(keys, token, None)  # nor for an anonymous request


def test_anonymous_token_is_refused_for_a_signed_in_user(keys: KeyManager) -> None:
    """An attacker's own anonymous token cannot be planted in a victim's session."""
    assert not check_token(keys, create_token(keys), "victim")


def test_token_of_one_form_is_refused_for_another(keys: KeyManager) -> None:
    token = create_token(keys, "bob", extra="delete-page")
    assert check_token(keys, token, "bob", extra="delete-page")
    assert not check_token(keys, token, "bob", extra="delete-site")
    assert not check_token(keys, token, "bob")


def test_fields_cannot_be_shifted_between_user_and_extra(keys: KeyManager) -> None:
    """plone.protect hashes user+extra unseparated: ("ab","c") == ("a","bc"). Not here."""
    token = create_token(keys, "ab", extra="c")
    assert not check_token(keys, token, "a", extra="bc")
    assert not check_token(keys, token, "abc", extra="")


def test_token_lives_while_its_secret_is_in_the_ring(keys: KeyManager) -> None:
    token = create_token(keys, "bob")
    for _ in range(4):
        keys.rotate("forms")
        assert check_token(keys, token, "bob")
    keys.rotate("forms")  # the fifth rotation retires the signing secret
    assert not check_token(keys, token, "bob")


def test_reset_voids_every_token(keys: KeyManager) -> None:
    token = create_token(keys, "bob")
    keys.reset("forms")
    assert not check_token(keys, token, "bob")


def test_anonymous_and_user_tokens_use_separate_rings(keys: KeyManager) -> None:
    user, anon = create_token(keys, "bob"), create_token(keys)
    keys.reset("anon")
    assert check_token(keys, user, "bob")
    assert not check_token(keys, anon)


def test_rotation_by_another_process_is_picked_up() -> None:
    """A token signed by a worker that rotated the ring is accepted by a stale worker."""
    store = open_store("memory://")
    stale = KeyManager.open(store, cache_ttl=3600)
    stale.miss_reload_interval = 0.0
    stale.ring("forms")
    fresh = KeyManager(store)
    fresh.rotate("forms")
    token = create_token(fresh, "bob")
    assert check_token(stale, token, "bob")


def test_forged_tokens_are_refused(keys: KeyManager) -> None:
    token = create_token(keys, "bob")
    raw = bytearray(base64.urlsafe_b64decode(token))
    assert len(raw) == 48
    for position in (0, 15, 16, 47):
        forged = bytearray(raw)
        forged[position] ^= 1
        text = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
        assert not check_token(keys, text, "bob"), position
    # a MAC computed with a guessed key
    guess = hmac.digest(b"\0" * 32, b"bob" + b"\0" * 16, "sha256")
    text = base64.urlsafe_b64encode(b"\0" * 16 + guess).decode()
    assert not check_token(keys, text, "bob")
    # a salt and MAC lifted from another user's token
    other = base64.urlsafe_b64decode(create_token(keys, "alice"))
    assert not check_token(keys, base64.urlsafe_b64encode(other).decode(), "bob")


def test_salt_cannot_be_swapped(keys: KeyManager) -> None:
    """The MAC covers the salt: a token with another token's salt is refused."""
    a = base64.urlsafe_b64decode(create_token(keys, "bob"))
    b = base64.urlsafe_b64decode(create_token(keys, "bob"))
    spliced = base64.urlsafe_b64encode(b[:16] + a[16:]).decode()
    assert not check_token(keys, spliced, "bob")


@pytest.mark.parametrize(
    "token",
    [
        None,
        0,
        b"bytes",
        "",
        "x" * TOKEN_LENGTH,
        "é" * TOKEN_LENGTH,
        "=" * TOKEN_LENGTH,
        "A" * (TOKEN_LENGTH - 1),
        "A" * (TOKEN_LENGTH + 1),
        ["list"],
        "A" * 10_000,
    ],
)
def test_malformed_tokens_are_refused_without_error(keys: KeyManager, token: object) -> None:
    assert check_token(keys, token, "bob") is False


def test_invalid_userid_arguments(keys: KeyManager) -> None:
    with pytest.raises(ValueError, match="userid"):
        create_token(keys, "")
    assert check_token(keys, create_token(keys, "bob"), "") is False


def test_comparison_is_constant_time(keys: KeyManager, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(csrf.hmac, "compare_digest", recording)
    assert check_token(keys, create_token(keys, "bob"), "bob")
    assert calls


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_random_text_never_validates(text: str) -> None:
    keys = _SHARED_KEYS
    assert check_token(keys, text, "bob") is False
    assert check_token(keys, text) is False


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=48, max_size=48))
def test_random_well_formed_tokens_never_validate(raw: bytes) -> None:
    token = base64.urlsafe_b64encode(raw).decode()
    assert len(token) == TOKEN_LENGTH
    assert check_token(_SHARED_KEYS, token, "bob") is False


_SHARED_KEYS = KeyManager.open("memory://")


def test_a_remembered_token_is_still_bound_to_user_form_and_ring(keys: KeyManager) -> None:
    """The cache of verified tokens never accepts what a full check would refuse."""
    csrf._VERIFIED.clear()
    token = create_token(keys, "bob", extra="form")
    assert check_token(keys, token, "bob", extra="form")
    assert check_token(keys, token, "bob", extra="form")  # answered from the cache
    assert not check_token(keys, token, "alice", extra="form")
    assert not check_token(keys, token, "bob", extra="other")
    assert not check_token(keys, token, "bob")
    keys.reset("forms")  # every secret replaced: the cached answer must not survive
    assert not check_token(keys, token, "bob", extra="form")


def test_forged_tokens_never_enter_the_cache(keys: KeyManager) -> None:
    csrf._VERIFIED.clear()
    forged = "A" * TOKEN_LENGTH
    assert not check_token(keys, forged, "bob")
    assert csrf._VERIFIED == {}


def test_the_token_cache_is_bounded(keys: KeyManager) -> None:
    csrf._VERIFIED.clear()
    for _ in range(csrf._VERIFIED_LIMIT + 10):
        assert check_token(keys, create_token(keys, "bob"), "bob")
        assert len(csrf._VERIFIED) <= csrf._VERIFIED_LIMIT
