"""The Django application configuration of ``sitewarden.contrib.django``."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]


class SitewardenConfig(AppConfig):  # type: ignore[misc]
    """Registers the ``sitewarden`` template tag library and the deploy checks."""

    name = "sitewarden.contrib.django"
    label = "sitewarden"
    verbose_name = "sitewarden"

    def ready(self) -> None:
        """Register sitewarden's audit as a ``check --deploy`` system check."""
        from django.core import checks  # type: ignore[import-untyped]

        from sitewarden.contrib.django.checks import sitewarden_deploy_check

        checks.register(sitewarden_deploy_check, checks.Tags.security, "sitewarden", deploy=True)
