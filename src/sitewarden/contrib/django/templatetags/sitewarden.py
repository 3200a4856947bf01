"""``{% load sitewarden %}``: ``{% csp_nonce %}``, ``{% csrf_input %}`` and ``{% sri "path" %}``.

::

    {% load sitewarden %}
    <script nonce="{% csp_nonce %}">…</script>
    <form method="post">{% csrf_input %} …</form>
    <script src="/static/app.js" {% sri "static/app.js" %}></script>

The tags read the request's exchange (``request.sitewarden``, set by
:class:`sitewarden.web.django.SitewardenMiddleware`) from the template context: render
with ``render(request, ...)`` or enable the ``django.template.context_processors.request``
context processor.
"""

from __future__ import annotations

import importlib
from typing import Any

from django import template  # type: ignore[import-untyped]
from django.utils.html import format_html  # type: ignore[import-untyped]
from django.utils.safestring import mark_safe  # type: ignore[import-untyped]

from sitewarden.warden import Exchange

register = template.Library()


def _exchange(context: Any) -> Exchange:
    request = getattr(context, "request", None) or context.get("request")
    ex = getattr(request, "sitewarden", None)
    if ex is None:
        raise template.TemplateSyntaxError(
            "sitewarden tags need the request (render(request, ...)) and the "
            "sitewarden.web.django.SitewardenMiddleware in MIDDLEWARE"
        )
    return ex  # type: ignore[no-any-return]


@register.simple_tag(takes_context=True)  # type: ignore[untyped-decorator]
def csp_nonce(context: Any) -> str:
    """Return the response's CSP nonce (the CSP header then carries it)."""
    return _exchange(context).csp_nonce


@register.simple_tag(takes_context=True)  # type: ignore[untyped-decorator]
def csrf_input(context: Any, extra: str = "") -> Any:
    """Return a hidden ``<input name="_authenticator">`` with a fresh token for the user."""
    ex = _exchange(context)
    return format_html(
        '<input type="hidden" name="{}" value="{}">', ex.warden.csrf.field, ex.csrf_token(extra)
    )


@register.simple_tag  # type: ignore[untyped-decorator]
def sri(path: str) -> Any:
    """Return ``integrity="…" crossorigin="anonymous"`` for the file at *path*."""
    module = importlib.import_module("sitewarden.sri")
    return mark_safe(module.sri_attributes(path))  # noqa: S308 - sri_attributes escapes
