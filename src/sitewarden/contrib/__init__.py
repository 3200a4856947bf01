"""Integrations that a framework loads by module path (Django apps and the like)."""
