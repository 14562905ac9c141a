"""The HTTP server of the usage API."""

from .app import create_app
from .errors import ApiError

__all__ = ["ApiError", "create_app"]
