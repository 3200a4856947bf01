"""sitewarden: one coherent, secure-by-default security layer for Python web sites."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
