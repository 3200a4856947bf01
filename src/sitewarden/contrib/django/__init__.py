"""The Django app ``sitewarden.contrib.django``: template tags (``{% load sitewarden %}``).

Add it to ``INSTALLED_APPS``; the middleware itself is
:class:`sitewarden.web.django.SitewardenMiddleware`.
"""
