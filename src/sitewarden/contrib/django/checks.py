"""``manage.py check --deploy``: sitewarden's audit as Django system checks.

Registered by :class:`~sitewarden.contrib.django.apps.SitewardenConfig` with the tags
``security`` and ``sitewarden``, as a deployment check (it runs only with ``--deploy``).
The policy is built from ``settings.SITEWARDEN`` as the middleware builds it; each finding
becomes a Django message with the id ``sitewarden.SW0xx`` and the level of its severity:
``critical`` a ``Critical``, ``high`` an ``Error``, ``medium``/``low`` a ``Warning``,
``info`` an ``Info``.

Why not Warnings only, as Django's own deploy checks are: those cannot tell a fatal hole
from a matter of taste, ours can. With these levels ``manage.py check --deploy`` fails
exactly when ``sitewarden check`` fails at its default ``--fail-level high``, so the two
entry points gate a deployment alike; ``--fail-level WARNING`` makes Django's stricter.
"""

from __future__ import annotations

from typing import Any

from django.core import checks  # type: ignore[import-untyped]

from sitewarden.audit import Finding, audit_policy, audit_store
from sitewarden.errors import ConfigError
from sitewarden.policy import load_policy

__all__ = ["sitewarden_deploy_check", "to_message"]


#: Django's message class for each severity (``medium`` and ``low`` are Warnings).
_LEVELS: dict[str, Any] = {
    "critical": checks.Critical,
    "high": checks.Error,
    "info": checks.Info,
}


def to_message(finding: Finding) -> Any:
    """Return the Django check message for *finding*."""
    kind = _LEVELS.get(finding.severity, checks.Warning)
    return kind(
        f"{finding.message} [{finding.severity}, setting {finding.setting}]",
        hint=finding.fix,
        obj="SITEWARDEN",
        id=f"sitewarden.{finding.id}",
    )


def sitewarden_deploy_check(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Audit the policy of ``settings.SITEWARDEN`` (and its store's URL and file)."""
    from django.conf import settings  # type: ignore[import-untyped]

    conf = getattr(settings, "SITEWARDEN", None)
    if not isinstance(conf, dict):
        return [
            checks.Error(
                "SITEWARDEN is not set: sitewarden's middleware cannot start",
                hint="set SITEWARDEN = {'allowed_hosts': [...], 'store': ...} in settings",
                id="sitewarden.E001",
            )
        ]
    options = dict(conf)
    preset = options.pop("preset", "balanced")
    config = options.pop("config", None)
    options.pop("keys", None)  # a KeyManager for the Warden, not a setting
    try:
        policy = load_policy(preset, config, **options)
    except ConfigError as exc:
        return [checks.Error(f"SITEWARDEN: {exc}", id="sitewarden.E002")]
    findings = audit_policy(policy, deploy=True)
    if policy.store:
        try:
            findings += audit_store(policy.store, deploy=True)
        except ConfigError as exc:
            return [checks.Error(f"SITEWARDEN: {exc}", id="sitewarden.E002")]
    return [to_message(f) for f in findings]
