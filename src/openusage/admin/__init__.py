"""The admin plane: projects, their API keys, spend limits and spend alerts."""

from .plane import AdminPlane

__all__ = ["AdminPlane"]
