"""The deploy audit behind ``sitewarden check`` (sans-I/O rules; see :mod:`.check`)."""

from sitewarden.audit.check import (
    CHECKS,
    DEPLOY_ONLY,
    SEVERITIES,
    UPSTREAM_KEYWORDS,
    Finding,
    at_or_above,
    audit_keyring,
    audit_policy,
    audit_store,
    counts,
)

__all__ = [
    "CHECKS",
    "DEPLOY_ONLY",
    "SEVERITIES",
    "UPSTREAM_KEYWORDS",
    "Finding",
    "at_or_above",
    "audit_keyring",
    "audit_policy",
    "audit_store",
    "counts",
]
