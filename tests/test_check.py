"""The deploy audit (``sitewarden.audit``): every rule, presets, upstream, keyring, store."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from sitewarden.audit import (
    CHECKS,
    DEPLOY_ONLY,
    Finding,
    at_or_above,
    audit_keyring,
    audit_policy,
    audit_store,
    counts,
)
from sitewarden.errors import ConfigError
from sitewarden.keyring import Keyring, new_secret
from sitewarden.policy import Policy, load_policy

SITE = {"allowed_hosts": ["example.org"], "rate_limits": {"POST /login": "10/minute"}}


def ids(findings: list[Finding]) -> list[str]:
    return [f.id for f in findings]


def strict(**settings: Any) -> Policy:
    return load_policy("strict", **{**SITE, **settings})


def test_strict_preset_passes_clean() -> None:
    assert audit_policy(strict()) == []
    assert audit_policy(strict(), deploy=False) == []


def test_balanced_and_basic_only_expected_findings() -> None:
    assert ids(audit_policy(load_policy("balanced", **SITE))) == []
    assert ids(audit_policy(load_policy("basic", **SITE))) == ["SW004"]
    assert ids(audit_policy(load_policy("balanced"))) == ["SW060"]
    assert ids(audit_policy(load_policy("basic"))) == ["SW004", "SW060"]
    assert ids(audit_policy(load_policy("basic"), deploy=False)) == []


# settings that have one weakness → the id expected (and its severity)
WEAK: list[tuple[dict[str, Any], str, str]] = [
    ({"allowed_hosts": ["*"]}, "SW001", "high"),
    ({"allowed_hosts": []}, "SW001", "high"),
    ({"https_redirect": False}, "SW002", "high"),
    ({"hsts_max_age": 0}, "SW003", "high"),
    ({"hsts_max_age": 86400}, "SW003", "medium"),
    ({"hsts_include_subdomains": False}, "SW004", "low"),
    ({"hsts_preload": True, "https_redirect": False}, "SW005", "medium"),
    ({"trusted_proxies": ["0.0.0.0/0"]}, "SW006", "critical"),
    ({"trusted_proxies": ["::/0"]}, "SW006", "critical"),
    ({"trusted_proxies": ["93.184.216.0/24"]}, "SW007", "medium"),
    ({"handled_upstream": ["hsts"]}, "SW008", "medium"),
    ({"csp": False}, "SW010", "high"),
    ({"csp": "default-src 'self'; script-src 'self' 'unsafe-inline'; object-src 'none'; "
      "base-uri 'none'; frame-ancestors 'none'"}, "SW011", "high"),
    ({"csp": "default-src 'self' 'unsafe-eval'; object-src 'none'; base-uri 'none'; "
      "frame-ancestors 'none'"}, "SW011", "high"),
    ({"csp": "default-src https:; object-src 'none'; base-uri 'none'; "
      "frame-ancestors 'none'"}, "SW011", "high"),
    ({"csp": "default-src 'self'; style-src 'self' 'unsafe-inline'; object-src 'none'; "
      "base-uri 'none'; frame-ancestors 'none'"}, "SW012", "low"),
    ({"csp": "default-src 'self'; base-uri 'none'; frame-ancestors 'none'"}, "SW013", "medium"),
    ({"csp": "default-src 'self'; object-src 'none'; frame-ancestors 'none'"}, "SW014", "medium"),
    ({"csp": "default-src 'self'; object-src 'none'; base-uri 'none'"}, "SW015", "low"),
    ({"csp": "default-src 'self'; object-src 'none'; base-uri 'none'", "frame_options": False},
     "SW015", "high"),
    ({"session_cookie_secure": False, "session_samesite": "Lax"}, "SW020", "high"),
    ({"harden_cookies": False}, "SW021", "medium"),
    ({"session_samesite": "None"}, "SW022", "medium"),
    ({"cookie_samesite": "None"}, "SW022", "low"),
    ({"session_cookie": "__Secure-sid"}, "SW023", "low"),
    ({"cors_origins": ["*"]}, "SW030", "medium"),
    ({"cors_origins": ["https://*.example.org"], "cors_allow_credentials": True}, "SW031", "high"),
    ({"cors_origins": ["http://app.example.org"], "cors_allow_credentials": True},
     "SW031", "high"),
    ({"cors_origins": ["http://app.example.org"]}, "SW032", "medium"),
    ({"csrf": "off"}, "SW040", "critical"),
    ({"csrf": "log-only"}, "SW040", "high"),
    ({"csrf_trusted_origins": ["http://other.example.org"]}, "SW041", "high"),
    ({"manage_networks": ["0.0.0.0/0"]}, "SW050", "high"),
    ({"manage_networks": ["198.51.100.0/22"]}, "SW051", "medium"),
    ({"rate_limits": {"/api/*": "100/hour"}}, "SW060", "medium"),
    ({"lockout_threshold": 50}, "SW061", "low"),
    ({"password_min_length": 10}, "SW070", "medium"),
    ({"password_min_score": 0}, "SW071", "low"),
    ({"on_store_failure": "open"}, "SW080", "medium"),
    ({"x_content_type_options": False}, "SW081", "low"),
    ({"remove_headers": []}, "SW081", "low"),
    ({"session_idle_timeout": 8 * 3600, "session_absolute_timeout": 48 * 3600},
     "SW082", "low"),
]  # fmt: skip


@pytest.mark.parametrize(("settings", "expected", "severity"), WEAK)
def test_every_weakness_is_flagged(settings: dict[str, Any], expected: str, severity: str) -> None:
    findings = audit_policy(strict(**settings))
    assert expected in ids(findings)
    found = [f for f in findings if f.id == expected]
    assert severity in [f.severity for f in found]
    for f in found:
        assert f.setting and f.message and f.fix
    assert expected not in ids(audit_policy(strict()))


def test_every_policy_rule_has_a_weak_policy() -> None:
    policy_rules = {c.id for c in CHECKS.values() if c.kind == "policy"}
    assert policy_rules <= {expected for _, expected, _ in WEAK}
    for check in CHECKS.values():
        assert check.threat, check.id  # each rule states its threat


def test_login_paths_recognised() -> None:
    for route in ("POST /login", "/signin", "/acl_users/*", "POST /site/@@login",
                  "/login_form", "/*", "POST /accounts/login/"):  # fmt: skip
        assert "SW060" not in ids(audit_policy(strict(rate_limits={route: "5/minute"}))), route


def test_deploy_only_rules_skipped_without_deploy() -> None:
    weak = strict(https_redirect=False, hsts_max_age=0, allowed_hosts=["*"], csrf="off")
    assert set(DEPLOY_ONLY) >= {"SW001", "SW002", "SW003", "SW020", "SW060"}
    assert ids(audit_policy(weak, deploy=False)) == ["SW040"]
    assert {"SW001", "SW002", "SW003", "SW040"} <= set(ids(audit_policy(weak)))


def test_handled_upstream_downgrades_to_info() -> None:
    policy = strict(
        https_redirect=False, hsts_max_age=0, handled_upstream=["https_redirect", "hsts", "SW070"],
        trusted_proxies=["10.0.0.0/8"], password_min_length=12,
    )  # fmt: skip
    findings = audit_policy(policy)
    assert sorted(ids(findings)) == ["SW002", "SW003", "SW070"]
    for f in findings:
        assert f.severity == "info" and f.upstream and "declared handled upstream" in f.message
    assert at_or_above(findings, "low") == []
    assert counts(findings)["info"] == 3


def test_handled_upstream_is_validated() -> None:
    with pytest.raises(ConfigError, match="handled_upstream"):
        strict(handled_upstream=["SW999"])
    with pytest.raises(ConfigError, match="handled_upstream"):
        strict(handled_upstream=["everything"])
    assert strict(handled_upstream=["csp", "SW001"]).handled_upstream == ("csp", "SW001")


def secret_forms(secret: bytes) -> list[str]:
    return [secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(),
            base64.urlsafe_b64encode(secret).decode().rstrip("=")]  # fmt: skip


def test_keyring_audit_reused_weak_stale_without_printing_secrets() -> None:
    now = 1_800_000_000.0
    shared = new_secret()
    weak = b"\x00" * 32
    rings = {
        "system": Keyring(secrets=[shared, new_secret()], last_rotation=now - 3600),
        "forms": Keyring(secrets=[new_secret(), shared], last_rotation=now - 30 * 86400),
        "anon": Keyring(secrets=[weak, new_secret()], last_rotation=0.0),
        "totp": Keyring(secrets=[new_secret()], last_rotation=0.0),  # never rotates: fine
    }
    findings = audit_keyring(rings, now=now)
    assert sorted(ids(findings)) == ["SW090", "SW091", "SW092", "SW092"]
    reused = next(f for f in findings if f.id == "SW091")
    assert "forms" in reused.message and "system" in reused.message
    assert {f.setting for f in findings if f.id == "SW092"} == {"keyring:forms", "keyring:anon"}
    text = repr(findings)
    for ring in rings.values():
        for secret in ring.secrets:
            for form in secret_forms(secret):
                assert form not in text
    fresh = {"system": Keyring(secrets=[new_secret()], last_rotation=now)}
    assert audit_keyring(fresh, now=now) == []


def test_store_audit_sqlite_permissions(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"")
    os.chmod(tmp_path, 0o700)
    os.chmod(db, 0o644)
    found = audit_store(f"sqlite:///{db}")
    assert ids(found) == ["SW100"] and found[0].severity == "high"
    os.chmod(db, 0o640)
    assert [f.severity for f in audit_store(f"sqlite:///{db}")] == ["medium"]
    os.chmod(db, 0o600)
    assert audit_store(f"sqlite:///{db}") == []
    os.chmod(tmp_path, 0o777)
    assert ids(audit_store(f"sqlite:///{db}")) == ["SW100"]
    os.chmod(tmp_path, 0o700)


def test_store_audit_redis_and_memory() -> None:
    assert ids(audit_store("redis://10.0.0.5:6379/0")) == ["SW101", "SW102"]
    assert ids(audit_store("rediss://:pw@10.0.0.5:6380/0")) == []
    assert ids(audit_store("redis://:pw@10.0.0.5:6379/0")) == ["SW102"]
    assert audit_store("redis://127.0.0.1:6379/0") == []
    assert ids(audit_store("memory://")) == ["SW103"]
    assert audit_store("memory://", deploy=False) == []
    text = repr(audit_store("redis://:hunter2secret@10.0.0.5:6379/0"))
    assert "hunter2secret" not in text


# -- Django: the same checks in `manage.py check --deploy` -----------------------------


def test_django_check_deploy() -> None:
    from django.core import checks
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError
    from django.test import override_settings

    from tests import test_adapter_django  # noqa: F401  (configures Django)

    weak = {"store": "memory://", "allowed_hosts": ["*"], "csrf": "off", "preset": "balanced"}
    with override_settings(SITEWARDEN=weak):
        messages = checks.run_checks(include_deployment_checks=True, tags=["sitewarden"])
        found = {m.id: m for m in messages}
        assert {"sitewarden.SW001", "sitewarden.SW040", "sitewarden.SW103"} <= set(found)
        assert found["sitewarden.SW040"].level == checks.CRITICAL  # CSRF off
        assert found["sitewarden.SW103"].level == checks.WARNING
        levels = {
            "critical": checks.CRITICAL,
            "high": checks.ERROR,
            "medium": checks.WARNING,
            "low": checks.WARNING,
            "info": checks.INFO,
        }
        for message in messages:  # "... [severity, setting ...]"
            severity = message.msg.rsplit("[", 1)[1].split(",")[0]
            assert message.level == levels[severity], message.id
        assert {m.level for m in messages} >= {checks.CRITICAL, checks.ERROR, checks.WARNING}
        assert found["sitewarden.SW040"].hint
        assert checks.run_checks(include_deployment_checks=False, tags=["sitewarden"]) == []
        with pytest.raises(SystemCheckError, match=r"sitewarden\.SW040"):
            call_command("check", "--deploy", "--tag", "sitewarden")
    clean = {"preset": "strict", "store": "sqlite:////nonexistent/state.db", **SITE}
    with override_settings(SITEWARDEN=clean):
        assert checks.run_checks(include_deployment_checks=True, tags=["sitewarden"]) == []
    with override_settings(SITEWARDEN={"csrf": "bogus"}):
        (message,) = checks.run_checks(include_deployment_checks=True, tags=["sitewarden"])
        assert message.id == "sitewarden.E002" and message.level == checks.ERROR


def test_every_finding_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "check.md").read_text(encoding="utf-8")
    for check in CHECKS.values():
        assert f"| `{check.id}` | {check.severity} |" in doc, check.id
    assert "`SW099`" in doc
