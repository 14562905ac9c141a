"""The Python client of the Usage & Costs API."""

from .admin import AdminApi
from .api import AsyncUsageApi, UsageApi
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    UsageApiError,
)
from .models import Bucket, CostsResult, UsageResponse, UsageResult
from .pages import AsyncUsagePage, UsagePage

__all__ = [
    "AdminApi",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncUsageApi",
    "AsyncUsagePage",
    "AuthenticationError",
    "BadRequestError",
    "Bucket",
    "ConflictError",
    "CostsResult",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
    "UsageApi",
    "UsageApiError",
    "UsagePage",
    "UsageResponse",
    "UsageResult",
]
