"""The policy: presets, keyword and TOML settings, validation that names the setting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sitewarden.errors import ConfigError
from sitewarden.policy import PRESETS, Policy, load_policy, parse_rate


def test_default_is_balanced() -> None:
    policy = load_policy()
    assert policy.preset == "balanced"
    assert policy.csp == PRESETS["balanced"]["csp"]
    assert policy.hsts_max_age == 31_536_000


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_valid_and_applied(preset: str) -> None:
    policy = load_policy(preset)
    for name, value in PRESETS[preset].items():
        assert getattr(policy, name) == value


def test_strict_is_stricter_than_balanced_than_basic() -> None:
    basic, balanced, strict = (load_policy(p) for p in ("basic", "balanced", "strict"))
    assert basic.hsts_max_age < balanced.hsts_max_age < strict.hsts_max_age
    assert strict.session_idle_timeout < balanced.session_idle_timeout < basic.session_idle_timeout
    assert strict.csp is not None and strict.csp["default-src"] == ["'none'"]
    assert strict.frame_options == "DENY"
    assert strict.session_samesite == "Strict"


def test_keywords_override_the_preset() -> None:
    policy = load_policy("strict", frame_options="SAMEORIGIN", allowed_hosts=["example.org"])
    assert policy.frame_options == "SAMEORIGIN"
    assert policy.allowed_hosts == ("example.org",)
    assert policy.hsts_max_age == PRESETS["strict"]["hsts_max_age"]


def test_csp_may_be_given_as_a_string() -> None:
    policy = load_policy(csp="default-src 'self'; img-src 'self' data:")
    assert policy.csp == {"default-src": ["'self'"], "img-src": ["'self'", "data:"]}


def test_session_cookie_gets_the_host_prefix_when_secure() -> None:
    assert load_policy().session_cookie_name == "__Host-sw_session"
    assert load_policy(session_cookie_secure=False).session_cookie_name == "sw_session"
    assert load_policy(session_cookie="__Secure-x").session_cookie_name == "__Secure-x"


def test_refresh_defaults_to_a_quarter_of_the_idle_timeout() -> None:
    assert load_policy(session_idle_timeout=1200).refresh_after == 300
    assert load_policy(session_refresh_after=60).refresh_after == 60


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"hsts_max_age": "a year"}, "hsts_max_age"),
        ({"hsts_max_age": -1}, "hsts_max_age"),
        ({"hsts_max_age": True}, "hsts_max_age"),
        ({"frame_options": "ALLOW-FROM x"}, "frame_options"),
        ({"referrer_policy": "never"}, "referrer_policy"),
        ({"allowed_hosts": "example.org"}, "allowed_hosts"),
        ({"allowed_hosts": ["exa mple.org"]}, "allowed_hosts"),
        ({"trusted_proxies": ["10.0.0.0/33"]}, "trusted_proxies"),
        ({"manage_networks": ["not a network"]}, "manage_networks"),
        ({"csp": {"script-src": ["self"]}}, "csp"),
        ({"csp": {"script-src": ["'self'; evil"]}}, "csp"),
        ({"csp": {"Bad Name": []}}, "csp"),
        ({"csrf": "maybe"}, "csrf"),
        ({"csrf_trusted_origins": ["example.org"]}, "csrf_trusted_origins"),
        ({"cors_origins": ["*"], "cors_allow_credentials": True}, "cors_allow_credentials"),
        ({"session_idle_timeout": 0}, "session_idle_timeout"),
        ({"session_idle_timeout": 99999, "session_absolute_timeout": 100}, "session_idle_timeout"),
        ({"session_samesite": "None", "session_cookie_secure": False}, "session_samesite"),
        ({"session_cookie": "bad name"}, "session_cookie"),
        ({"hsts_preload": True, "hsts_max_age": 100}, "hsts_preload"),
        ({"https_port": 70000}, "https_port"),
        ({"on_store_failure": "pray"}, "on_store_failure"),
        ({"permissions_policy": {"camera": "none"}}, "permissions_policy"),
        ({"preset": "paranoid"}, "preset"),
        ({"csp": "script-src 'self'; script-src https:"}, "csp"),
        ({"csp": {"img-src": ["https://é.example"]}}, "csp"),
        ({"csp_report_path": "/r\r\nX-Injected: 1"}, "csp_report_path"),
        ({"csp_report_path": "/r;x"}, "csp_report_path"),
        ({"permissions_policy": {"camera": ["https://a\r\nX: y"]}}, "permissions_policy"),
        # login defence
        ({"lockout_threshold": 0}, "lockout_threshold"),
        ({"lockout_duration": 600, "lockout_max_duration": 60}, "lockout_max_duration"),
        ({"lockout_allow_networks": ["office"]}, "lockout_allow_networks"),
        ({"rate_limits": {"login": "5/minute"}}, "rate_limits"),
        ({"rate_limits": {"/login": "five a minute"}}, "rate_limits"),
        ({"rate_limits": {"/login": "0/minute"}}, "rate_limits"),
        ({"rate_limits": ["/login"]}, "rate_limits"),
        ({"rate_limit_ipv6_prefix": 129}, "rate_limit_ipv6_prefix"),
        ({"block_networks": ["10.0.0.0/40"]}, "block_networks"),
        ({"ban_duration": 600, "ban_max_duration": 10}, "ban_max_duration"),
        ({"password_max_length": 32}, "password_max_length"),
        ({"password_max_length": 1_000_000}, "password_max_length"),
        ({"password_min_length_2fa": 6}, "password_min_length_2fa"),
        ({"password_min_length": 200}, "password_min_length"),
        ({"password_min_score": 5}, "password_min_score"),
        ({"password_rules": {"[a-": "broken"}}, "password_rules"),
        ({"password_breach_url": "ftp://x/"}, "password_breach_url"),
        ({"argon2_memory_kib": 4096}, "argon2_memory_kib"),
        ({"argon2_memory_kib": 19_456, "argon2_time_cost": 1}, "argon2_memory_kib"),
        ({"totp_digits": 4}, "totp_digits"),
        ({"totp_window": 5}, "totp_window"),
        ({"totp_issuer": "a:b"}, "totp_issuer"),
        ({"events_keep": -1}, "events_keep"),
        ({"metrics_path": "metrics"}, "metrics_path"),
    ],
)
def test_a_wrong_setting_stops_start_up_naming_it(settings: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_policy(**settings)  # type: ignore[arg-type]
    assert str(info.value).startswith(named + ":") or named in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5/minute", (5, 60.0)),
        ("5/minutes", (5, 60.0)),
        ("100 per hour", (100, 3600.0)),
        ("10/30s", (10, 30.0)),
        ("1/day", (1, 86400.0)),
        ("2/2h", (2, 7200.0)),
        ("0/minute", None),
        ("5/fortnight", None),
        ("many", None),
    ],
)
def test_rates_parse(text: str, expected: tuple[int, float] | None) -> None:
    assert parse_rate(text) == expected


def test_argon2_accepts_owasp_equivalent_pairs() -> None:
    """OWASP lists equally strong pairs: less memory is fine with more passes."""
    assert load_policy(argon2_memory_kib=12_288, argon2_time_cost=3).argon2_time_cost == 3
    assert load_policy(argon2_memory_kib=47_104, argon2_time_cost=1).argon2_memory_kib == 47_104


def test_unknown_setting_suggests_the_right_name() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown setting 'alowed_hosts' \(did you mean 'allowed_hosts'\?\)"
    ):
        load_policy(alowed_hosts=["x"])


def test_policy_is_immutable() -> None:
    policy = load_policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.csrf = "off"  # type: ignore[misc]


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="csrf"):
        Policy(csrf="sometimes")


def test_toml_file(tmp_path: Path) -> None:
    file = tmp_path / "sitewarden.toml"
    file.write_text(
        """
[sitewarden]
preset = "strict"
allowed_hosts = ["example.org", "*.example.org"]
trusted_proxies = ["10.0.0.0/8"]
csp_report_only = "default-src 'self'"

[sitewarden.permissions_policy]
camera = []
fullscreen = ["self"]
""",
        encoding="utf-8",
    )
    policy = load_policy(file=file, frame_options="SAMEORIGIN")
    assert policy.preset == "strict"
    assert policy.allowed_hosts == ("example.org", "*.example.org")
    assert policy.trusted_proxies == ("10.0.0.0/8",)
    assert policy.csp_report_only == {"default-src": ["'self'"]}
    assert policy.permissions_policy == {"camera": [], "fullscreen": ["self"]}
    assert policy.frame_options == "SAMEORIGIN"  # keywords win over the file


def test_toml_can_turn_headers_off(tmp_path: Path) -> None:
    file = tmp_path / "sitewarden.toml"
    file.write_text(
        '[sitewarden]\nframe_options = false\nreferrer_policy = "off"\ncsp_report_path = false\n',
        encoding="utf-8",
    )
    policy = load_policy(file=file)
    assert policy.frame_options is None
    assert policy.referrer_policy is None
    assert policy.csp_report_path is None
    none = load_policy(x_permitted_cross_domain_policies="none")
    assert none.x_permitted_cross_domain_policies == "none"  # a value, not "off"


def test_toml_errors_name_the_file_and_setting(tmp_path: Path) -> None:
    file = tmp_path / "sitewarden.toml"
    file.write_text('[sitewarden]\nhsts_max_age = "long"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sitewarden\.toml: hsts_max_age"):
        load_policy(file=file)
    file.write_text("[sitewarden]\nhst_max_age = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sitewarden\.toml: unknown setting 'hst_max_age'"):
        load_policy(file=file)
    file.write_text("this is = = not toml", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy(file=file)
    with pytest.raises(ConfigError, match="cannot read"):
        load_policy(file=tmp_path / "missing.toml")


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "settings.md").read_text(encoding="utf-8")
    missing = [f.name for f in dataclasses.fields(Policy) if f"`{f.name}`" not in doc]
    assert missing == []
