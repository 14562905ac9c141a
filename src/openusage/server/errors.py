"""The server's one error type and its JSON envelope, shaped like OpenAI's.

Every error the API answers with is ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"


class ApiError(Exception):
    """An error answered to the caller; nothing else leaves the server."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def shown(value: object, limit: int = 64) -> str:
    """A caller's value quoted in a message, cut short so hostile input stays small."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")
