"""Access to the reference implementations the ticket tests compare against.

plone.session is installed without its Zope dependencies, so ``import plone.session``
would fail; its ``tktauth.py`` is self-contained, and is loaded here by file path.
Pyramid's ``authentication`` module imports ``pkg_resources``, which warns on import;
the warning is about Pyramid's packaging, not about us, so it is silenced here.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import warnings
from types import ModuleType

__all__ = ["load_pyramid_authentication", "load_tktauth"]


@functools.cache
def load_tktauth() -> ModuleType:
    """Return plone.session's ``tktauth`` module (the reference ticket implementation)."""
    files = importlib.metadata.files("plone.session") or []
    for entry in files:
        if str(entry).replace("\\", "/").endswith("session/tktauth.py"):
            path = entry.locate()
            break
    else:  # pragma: no cover - only when the dev dependency is missing
        raise RuntimeError("plone.session is not installed (needed for the ticket interop tests)")
    spec = importlib.util.spec_from_file_location("_reference_tktauth", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def load_pyramid_authentication() -> ModuleType:
    """Return ``pyramid.authentication`` (AuthTicket, parse_ticket, BadTicket)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import pyramid.authentication

    return pyramid.authentication
