"""openusage: an OpenAI-compatible organization Usage & Costs API, server and client."""

__version__ = "0.1.0"

from .catalogue import ENDPOINTS, USAGE_ENDPOINTS, Dimension, Endpoint, Metric
from .client import (
    AdminApi,
    APIStatusError,
    AsyncUsageApi,
    AsyncUsagePage,
    UsageApi,
    UsageApiError,
    UsagePage,
    UsageResponse,
)
from .settings import Settings

__all__ = [
    "APIStatusError",
    "AdminApi",
    "AsyncUsageApi",
    "AsyncUsagePage",
    "Dimension",
    "ENDPOINTS",
    "Endpoint",
    "Metric",
    "Settings",
    "USAGE_ENDPOINTS",
    "UsageApi",
    "UsageApiError",
    "UsagePage",
    "UsageResponse",
    "__version__",
]
