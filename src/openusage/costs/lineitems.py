"""Line items: what one aggregated usage row costs, item by item, as OpenAI's read.

Every token is charged once: cached tokens as cached input only, cache writes apart (by
retention), audio and image tokens at their own prices, and uncached text at the input price.
Amounts are exact decimals, never rounded, so any grouping of the lines sums to the same
total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Context, Decimal
from typing import Any

from ..store.base import LinearItem
from .pricebook import PriceBook

GIB = Decimal(2**30)
HOURS_PER_DAY = Decimal(24)
#: wide enough that a product of any 128-bit sum and a price, any sum of those, and a byte
#: count over 2**30 (at most 30 decimal places) are exact
EXACT = Context(prec=100)

#: the usage dimensions that decide a price, per kind, besides project and key
PRICING_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "completions": ("model", "batch", "service_tier"),
    "decisions": ("model", "batch", "service_tier"),
    "embeddings": ("model",),
    "moderations": ("model",),
    "images": ("model", "size"),
    "audio_speeches": ("model",),
    "audio_transcriptions": ("model",),
    "vector_stores": (),
    "code_interpreter_sessions": (),
    "file_search_calls": (),
    "web_search_calls": ("model", "context_level"),
}


@dataclass(frozen=True)
class LineItem:
    name: str
    quantity: Decimal
    unit: str
    amount: Decimal
    priced: bool


# Every line item but vector storage is a whole number of units: a sum of metrics. Under
# the official definitions each input modality count is its uncached part and the cached
# parts are counted apart, so each token lands in exactly one line.
TOKEN_ITEMS = (
    LinearItem("input", "tokens", (("input_text_tokens", 1),)),
    LinearItem("cached input", "tokens", (("input_cached_text_tokens", 1),)),
    LinearItem("cache write", "tokens", (("input_cache_write_30m_tokens", 1),)),
    LinearItem("cache write 12h", "tokens", (("input_cache_write_12h_tokens", 1),)),
    LinearItem("audio input", "tokens", (("input_audio_tokens", 1),)),
    LinearItem("cached audio input", "tokens", (("input_cached_audio_tokens", 1),)),
    LinearItem("image input", "tokens", (("input_image_tokens", 1),)),
    LinearItem("cached image input", "tokens", (("input_cached_image_tokens", 1),)),
    LinearItem("output", "tokens", (("output_text_tokens", 1),)),
    LinearItem("audio output", "tokens", (("output_audio_tokens", 1),)),
    LinearItem("image output", "tokens", (("output_image_tokens", 1),)),
)
LINEAR_ITEMS: dict[str, tuple[LinearItem, ...]] = {
    "completions": TOKEN_ITEMS,
    "decisions": TOKEN_ITEMS,
    "embeddings": (LinearItem("input", "tokens", (("input_tokens", 1),)),),
    "moderations": (LinearItem("input", "tokens", (("input_tokens", 1),)),),
    "images": (LinearItem("images", "images", (("images", 1),)),),
    "audio_speeches": (LinearItem("characters", "characters", (("characters", 1),)),),
    "audio_transcriptions": (LinearItem("audio seconds", "duration_seconds", (("seconds", 1),)),),
    "code_interpreter_sessions": (
        LinearItem("code interpreter sessions", "sessions", (("num_sessions", 1),)),
    ),
    "file_search_calls": (LinearItem("file search tool calls", "calls", (("num_requests", 1),)),),
    "web_search_calls": (LinearItem("web search tool calls", "calls", (("num_requests", 1),)),),
}
#: line items named without a model: tool units
TOOL_ITEMS = frozenset(
    {"code interpreter sessions", "file search tool calls", "web search tool calls", "vector store storage"}
)


def variant_of(kind: str, row: Mapping[str, Any]) -> str | None:
    """What else than the model decides a unit's price: an image's size, a search's context."""
    if kind == "images":
        return row.get("size")
    if kind == "web_search_calls":
        return row.get("context_level")
    return None


def line_name(item: str, model: str | None, batch: bool, tier: str | None, variant: str | None) -> str:
    if item in TOOL_ITEMS:
        return item
    model_name = model or "unknown model"
    if item == "images":
        return f"{model_name}, images ({variant or 'unknown size'})"
    return f"{model_name}, {item}{_suffix(batch, tier)}"


def _suffix(batch: bool, tier: str | None) -> str:
    if batch:
        return " (batch)"
    if tier in ("flex", "priority"):
        return f" ({tier})"
    return ""


def storage_line_items(row: Mapping[str, Any], day: date, book: PriceBook) -> list[LineItem]:
    """The line of one day's vector storage (a gauge, so not priced in the store as the
    sums of units are): priced per GiB-day, reported in GiB-hours as OpenAI's are."""
    if row["usage_bytes"] <= 0:
        return []
    gib_days = EXACT.divide(Decimal(row["usage_bytes"]), GIB)
    quantity = EXACT.multiply(gib_days, HOURS_PER_DAY)
    name = "vector store storage"
    quote = book.quote(None, name, day, batch=False, service_tier=None, variant=None)
    if quote is None:
        return [LineItem(f"{name} (unpriced)", quantity, "gibibyte_hours", Decimal(0), priced=False)]
    amount = EXACT.multiply(gib_days, quote.usd)
    return [LineItem(name, quantity, "gibibyte_hours", amount, priced=True)]
