"""Line items: what one aggregated usage row costs, item by item, as OpenAI's read.

Every token is charged once: cached tokens as cached input only, cache writes apart,
audio and image tokens at their own prices, and the text that is left at the input price.
Amounts are exact decimals, rounded once per line to a billionth of a dollar, so any
grouping of the lines sums to the same total.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from .pricebook import PriceBook

NANO = Decimal("0.000000001")
GIB = Decimal(2**30)
HOURS_PER_DAY = Decimal(24)

#: the usage dimensions that decide a price, per kind, besides project and key
PRICING_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "completions": ("model", "batch", "service_tier"),
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


def _tokens(row: Mapping[str, Any]) -> dict[str, int]:
    uncached_audio = row["input_audio_tokens"] - row["input_cached_audio_tokens"]
    uncached_image = row["input_image_tokens"] - row["input_cached_image_tokens"]
    return {
        "input": row["input_uncached_tokens"] - uncached_audio - uncached_image,
        "cached input": row["input_cached_text_tokens"],
        "cache write": row["input_cache_write_tokens"],
        "audio input": uncached_audio,
        "cached audio input": row["input_cached_audio_tokens"],
        "image input": uncached_image,
        "cached image input": row["input_cached_image_tokens"],
        "output": row["output_text_tokens"],
        "audio output": row["output_audio_tokens"],
        "image output": row["output_image_tokens"],
    }


def _suffix(batch: bool, tier: str | None) -> str:
    if batch:
        return " (batch)"
    if tier in ("flex", "priority"):
        return f" ({tier})"
    return ""


def _wanted(
    kind: str, row: Mapping[str, Any], model_name: str
) -> list[tuple[str, Any, str, str | None, str | None]]:
    """(item, quantity, unit, line item name or None for the usual one, price variant)."""
    if kind == "completions":
        return [(item, count, "tokens", None, None) for item, count in _tokens(row).items() if count > 0]
    if kind in ("embeddings", "moderations"):
        return [("input", row["input_tokens"], "tokens", None, None)]
    if kind == "images":
        size = row.get("size")
        return [("images", row["images"], "images", f"{model_name}, images ({size or 'unknown size'})", size)]
    if kind == "audio_speeches":
        return [("characters", row["characters"], "characters", None, None)]
    if kind == "audio_transcriptions":
        return [("audio seconds", row["seconds"], "duration_seconds", None, None)]
    if kind == "vector_stores":
        # Priced per GiB-day; reported in GiB-hours, as OpenAI's line items are.
        gib_hours = Decimal(row["usage_bytes"]) / GIB * HOURS_PER_DAY
        return [("vector store storage", gib_hours, "gibibyte_hours", "vector store storage", None)]
    if kind == "code_interpreter_sessions":
        return [
            ("code interpreter sessions", row["num_sessions"], "sessions", "code interpreter sessions", None)
        ]
    if kind == "file_search_calls":
        return [("file search tool calls", row["num_requests"], "calls", "file search tool calls", None)]
    if kind == "web_search_calls":
        return [
            (
                "web search tool calls",
                row["num_requests"],
                "calls",
                "web search tool calls",
                row.get("context_level"),
            )
        ]
    raise ValueError(f"no line items for usage kind {kind!r}")  # pragma: no cover - grows with the catalogue


def line_items(kind: str, row: Mapping[str, Any], day: date, book: PriceBook) -> list[LineItem]:
    """The line items of one usage row of ``kind`` on ``day`` (zero quantities left out)."""
    model = row.get("model")
    batch = bool(row.get("batch"))
    tier = row.get("service_tier")
    model_name = model or "unknown model"
    suffix = _suffix(batch, tier)
    items: list[LineItem] = []
    for item, count, unit, named, variant in _wanted(kind, row, model_name):
        if count <= 0:
            continue
        quantity = Decimal(count)
        name = named or f"{model_name}, {item}{suffix}"
        quote = book.quote(model, item, day, batch=batch, service_tier=tier, variant=variant)
        if quote is None:
            items.append(LineItem(f"{name} (unpriced)", quantity, unit, Decimal(0), priced=False))
            continue
        per_priced_unit = HOURS_PER_DAY if unit == "gibibyte_hours" else 1
        amount = (quantity / per_priced_unit * quote.usd).quantize(NANO, rounding=ROUND_HALF_EVEN)
        items.append(LineItem(name, quantity, unit, amount, priced=True))
    return items
