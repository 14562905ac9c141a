"""The HTTP server of the usage API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ApiError

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["ApiError", "create_app"]


def __getattr__(name: str) -> Any:
    # The app is imported when asked for: it uses the gateway and the admin plane, which use
    # this package's errors and event rules, and an eager import would go round in a circle.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
