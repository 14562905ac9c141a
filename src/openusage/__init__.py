"""openusage: an OpenAI-compatible organization Usage & Costs API, server and client."""

__version__ = "0.1.0"

from .catalogue import ENDPOINTS, USAGE_ENDPOINTS, Dimension, Endpoint, Metric
from .settings import Settings

__all__ = ["Dimension", "ENDPOINTS", "Endpoint", "Metric", "Settings", "USAGE_ENDPOINTS", "__version__"]
