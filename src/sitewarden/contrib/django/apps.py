"""The Django application configuration of ``sitewarden.contrib.django``."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]


class SitewardenConfig(AppConfig):  # type: ignore[misc]
    """Registers the ``sitewarden`` template tag library."""

    name = "sitewarden.contrib.django"
    label = "sitewarden"
    verbose_name = "sitewarden"
