"""The client's one error hierarchy.

    UsageApiError
    ├── APIConnectionError          the request did not get an answer
    │   └── APITimeoutError
    └── APIStatusError              the server answered with an error status
        ├── BadRequestError            400
        ├── AuthenticationError        401
        ├── PermissionDeniedError      403
        ├── NotFoundError              404
        ├── ConflictError              409
        ├── UnprocessableEntityError   422
        ├── RateLimitError             429
        └── InternalServerError        5xx

Each status error carries the status, the envelope's ``message``, ``type``, ``param`` and
``code``, the request id and the raw body.
"""

from __future__ import annotations

from typing import Any

import httpx


class UsageApiError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(UsageApiError):
    """No answer: the connection failed or broke."""


class APITimeoutError(APIConnectionError):
    """No answer in time."""


class APIStatusError(UsageApiError):
    """The server answered with a status of 400 or more."""

    status_code: int

    def __init__(self, response: httpx.Response, body: Any) -> None:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
            self.type: str | None = error.get("type")
            self.param: str | None = error.get("param")
            self.code: str | None = error.get("code")
        else:
            # OpenAI has been seen to send {"error": "..."} on 403: keep the text.
            message = str(error) if isinstance(error, str) else response.text[:500]
            self.type = self.param = self.code = None
        self.status_code = response.status_code
        self.response = response
        self.body = body
        self.request_id: str | None = response.headers.get("x-request-id")
        super().__init__(f"{response.status_code} {message}".strip())


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for(response: httpx.Response) -> APIStatusError:
    """The error that an error response stands for."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 500:
        return InternalServerError(response, body)
    return _BY_STATUS.get(response.status_code, APIStatusError)(response, body)
