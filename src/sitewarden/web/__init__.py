"""Adapters between web servers/frameworks and sitewarden's sans-I/O core."""
