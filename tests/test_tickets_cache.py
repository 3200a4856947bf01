"""The cache of verified tickets never accepts what a full validation would refuse."""

from __future__ import annotations

import os

import pytest

from sitewarden import tickets
from sitewarden.keyring import KeyManager, Keyring
from sitewarden.tickets import create_ticket, validate_ticket

TS = 1_795_305_600


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    tickets._VERIFIED.clear()


def test_a_repeat_is_answered_from_the_cache_with_the_same_result() -> None:
    secret = os.urandom(32)
    ticket = create_ticket(secret, "alice", ("editor",), "Alice", timestamp=TS)
    first = validate_ticket(secret, ticket)
    assert first is not None
    assert ticket in tickets._VERIFIED
    assert validate_ticket(secret, ticket) is first


def test_timeout_is_enforced_on_a_cache_hit() -> None:
    secret = os.urandom(32)
    ticket = create_ticket(secret, "alice", timestamp=TS)
    assert validate_ticket(secret, ticket, timeout=60, now=TS + 10) is not None
    assert validate_ticket(secret, ticket, timeout=60, now=TS + 60) is None
    assert validate_ticket(secret, ticket, timeout=60, now=TS + 59) is not None


def test_another_secret_is_never_answered_from_the_cache() -> None:
    secret, other = os.urandom(32), os.urandom(32)
    ticket = create_ticket(secret, "alice", timestamp=TS)
    assert validate_ticket(secret, ticket) is not None
    assert validate_ticket(other, ticket) is None
    # an equal secret in another object takes the full path, and still validates
    assert validate_ticket(bytes(bytearray(secret)), ticket) is not None


def test_another_address_is_never_answered_from_the_cache() -> None:
    secret = os.urandom(32)
    ticket = create_ticket(secret, "alice", ip="192.0.2.1", timestamp=TS)
    assert validate_ticket(secret, ticket, "192.0.2.1") is not None
    assert validate_ticket(secret, ticket, "192.0.2.2") is None
    assert validate_ticket(secret, ticket) is None


def test_quote_flag_is_part_of_the_entry() -> None:
    secret = os.urandom(32)
    ticket = create_ticket(secret, "a%41", timestamp=TS)
    assert validate_ticket(secret, ticket).userid == "a%41"  # type: ignore[union-attr]
    # read with Pyramid's quoting, the same bytes mean another user id: full path, refused
    assert validate_ticket(secret, ticket, quote_userid=True) is None


def test_rotating_a_ring_in_place_drops_its_entries() -> None:
    ring = Keyring(2)
    ring.fill()
    ticket = create_ticket(ring, "alice", timestamp=TS)
    assert validate_ticket(ring, ticket).key_index == 0  # type: ignore[union-attr]
    ring.rotate()
    assert validate_ticket(ring, ticket).key_index == 1  # type: ignore[union-attr]
    ring.rotate()
    assert validate_ticket(ring, ticket) is None


def test_log_out_everywhere_is_not_bypassed_by_the_cache() -> None:
    keys = KeyManager.open("memory://")
    ticket = create_ticket(keys.user_ring("alice"), "alice", timestamp=TS)
    assert validate_ticket(keys.user_ring("alice"), ticket) is not None
    keys.rotate_user("alice")
    assert validate_ticket(keys.user_ring("alice"), ticket) is None


def test_forged_tickets_never_enter_the_cache() -> None:
    secret = os.urandom(32)
    ticket = create_ticket(secret, "alice", timestamp=TS)
    forged = bytes([ticket[0] ^ 1]) + ticket[1:]
    assert validate_ticket(secret, forged) is None
    assert forged not in tickets._VERIFIED
    assert tickets._VERIFIED == {}


def test_the_cache_is_bounded() -> None:
    secret = os.urandom(32)
    for i in range(tickets._VERIFIED_LIMIT + 50):
        assert validate_ticket(secret, create_ticket(secret, f"user{i}", timestamp=TS))
        assert len(tickets._VERIFIED) <= tickets._VERIFIED_LIMIT


def test_oversized_tickets_are_not_remembered() -> None:
    secret = os.urandom(32)
    ticket = create_ticket(secret, "alice", user_data="x" * 2000, timestamp=TS)
    assert validate_ticket(secret, ticket) is not None
    assert ticket not in tickets._VERIFIED


def test_lists_of_secrets_take_the_full_path_every_time() -> None:
    secret = os.urandom(32)
    ticket = create_ticket(secret, "alice", timestamp=TS)
    assert validate_ticket([os.urandom(32), secret], ticket).key_index == 1  # type: ignore[union-attr]
    assert ticket not in tickets._VERIFIED
