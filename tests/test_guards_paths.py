"""ManagementGuard: the ZMI only on the management host, from the management network."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden.errors import ConfigError
from sitewarden.guards.paths import ManagementGuard
from sitewarden.policy import DEFAULT_MANAGE_PATHS

GUARD = ManagementGuard(
    DEFAULT_MANAGE_PATHS, ("manage.example.org",), ("10.8.0.0/16", "127.0.0.0/8", "::1/128")
)
NO_HOSTS = ManagementGuard(DEFAULT_MANAGE_PATHS, (), ("0.0.0.0/0", "::/0"))

MANAGEMENT = [
    "/manage",
    "/manage_main",
    "/manage_workspace",
    "/site/folder/manage_main",
    "/site/folder/manage_main/",
    "/site/acl_users/manage_users?x",
    # evasions
    "/%6danage",
    "/%6Danage_main",
    "/%256danage",
    "/%25256danage_main",
    "/%2fmanage",
    "/Manage",
    "/MANAGE_MAIN",
    "/site/Manage_Main",
    "/manage;x=1",
    "/manage_main;jsessionid=abc/x",
    "/site;v=1/manage",
    "//manage",
    "/site//manage_main",
    "/./manage",
    "/site/./manage_main",
    "/x/../manage",
    "/manage/../index.html",
    "/manage/",
    "/manage//",
    "\\manage",
    "/site\\manage_main",
    "/manage%00",
    "/manage%20",
    "/manage.",
    "manage",
    "/site/manage_main%3Bx",
]
LOOKALIKES = [
    "/",
    "/managed-care",
    "/management",
    "/site/management/report",
    "/manager",
    "/mymanage",
    "/manage-main",
    "/news/how-to-manage-time",
    "/manage.html",
    "/site/manage.pdf",
    "/management%2Fmanage-ment",
    "/%6danagement",
    "/100%",
    "/%zz",
]


@pytest.mark.parametrize("path", MANAGEMENT)
def test_management_paths_and_evasions_are_recognised(path: str) -> None:
    assert GUARD.is_management(path)


@pytest.mark.parametrize("path", LOOKALIKES)
def test_lookalikes_are_not_management(path: str) -> None:
    assert not GUARD.is_management(path)
    assert GUARD.allowed(path, "www.example.org", "203.0.113.7")


@pytest.mark.parametrize("path", MANAGEMENT)
def test_management_is_refused_from_the_public(path: str) -> None:
    assert not GUARD.allowed(path, "www.example.org", "203.0.113.7")
    assert not GUARD.allowed(path, "manage.example.org", "203.0.113.7")
    assert not GUARD.allowed(path, "www.example.org", "10.8.1.2")


@pytest.mark.parametrize("path", MANAGEMENT)
def test_management_host_and_network_pass(path: str) -> None:
    assert GUARD.allowed(path, "manage.example.org", "10.8.1.2")
    assert GUARD.allowed(path, "Manage.Example.org.:8443", "127.0.0.1")
    assert GUARD.allowed(path, "manage.example.org", "::1")
    assert GUARD.allowed(path, "manage.example.org", "::ffff:10.8.1.2")


@pytest.mark.parametrize(
    ("host", "client"),
    [
        ("manage.example.org", None),
        ("manage.example.org", "garbage"),
        ("manage.example.org", "10.9.0.1"),
        ("manage.example.org.evil.com", "10.8.1.2"),
        ("manage.example.org@evil.com", "10.8.1.2"),
        ("x.manage.example.org", "10.8.1.2"),
        ("", "10.8.1.2"),
    ],
)
def test_management_needs_both_host_and_network(host: str, client: str | None) -> None:
    assert not GUARD.allowed("/manage_main", host, client)


def test_without_manage_hosts_management_is_blocked_everywhere() -> None:
    assert not NO_HOSTS.allowed("/manage_main", "localhost", "127.0.0.1")
    assert NO_HOSTS.allowed("/front-page", "localhost", "127.0.0.1")


def test_without_networks_nobody_manages() -> None:
    guard = ManagementGuard(DEFAULT_MANAGE_PATHS, ("manage.example.org",), ())
    assert not guard.allowed("/manage", "manage.example.org", "127.0.0.1")


def test_custom_patterns() -> None:
    guard = ManagementGuard(("@@overview-controlpanel", "z?i", "*_admin"), (), ())
    assert guard.is_management("/site/@@overview-controlpanel")
    assert guard.is_management("/zmi")
    assert guard.is_management("/site/%7Ami")
    assert guard.is_management("/x/site_admin;y")
    assert not guard.is_management("/site/zmii")
    assert not guard.is_management("/manage")


def test_a_pattern_without_literal_text_parses_every_path() -> None:
    guard = ManagementGuard(("*",), (), ())
    assert guard.is_management("/anything")
    assert not guard.is_management("/")


@pytest.mark.parametrize("pattern", ["", "a/b", "/manage"])
def test_bad_pattern_is_a_config_error(pattern: str) -> None:
    with pytest.raises(ConfigError, match="manage_paths"):
        ManagementGuard((pattern,), (), ())


def test_bad_host_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="manage_hosts"):
        ManagementGuard(DEFAULT_MANAGE_PATHS, ("https://manage.example.org",), ())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_never_raises_and_finds_manage_behind_any_prefix(prefix: str) -> None:
    GUARD.is_management(prefix)
    assert GUARD.is_management(prefix.replace("\\", "/") + "/manage_main")


def test_ordinary_paths_memo_is_bounded_and_skips_long_paths() -> None:
    from sitewarden.guards.paths import ManagementGuard

    guard = ManagementGuard(("manage",), (), ())
    long = "/" + "a" * 300
    assert not guard.is_management(long) and long not in guard.ordinary
    assert not guard.is_management("/home") and "/home" in guard.ordinary
    for i in range(5000):
        guard.is_management(f"/p{i}")
    assert len(guard.ordinary) <= 4096
    assert guard.is_management("/manage") and "/manage" not in guard.ordinary
