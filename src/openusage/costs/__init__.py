"""Costs derived from usage and a price book, with OpenAI-style line items."""

from .lineitems import LineItem
from .pricebook import PriceBook, PriceFileError, PriceRule, Quote
from .report import cost_results

__all__ = ["LineItem", "PriceBook", "PriceFileError", "PriceRule", "Quote", "cost_results"]
