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


def line_items(kind: str, row: Mapping[str, Any], day: date, book: PriceBook) -> list[LineItem]:
    """The line items of one usage row of ``kind`` on ``day`` (zero quantities left out)."""
    model = row.get("model")
    batch = bool(row.get("batch"))
    tier = row.get("service_tier")
    items: list[LineItem] = []

    def add(
        item: str,
        quantity: Decimal | int,
        unit: str,
        *,
        named: str | None = None,
        variant: str | None = None,
        per_priced_unit: Decimal = Decimal(1),
        model_bound: bool = True,
    ) -> None:
        quantity = Decimal(quantity)
        if quantity <= 0:
            return
        name = named or (f"{model or 'unknown model'}, {item}{_suffix(batch, tier)}" if model_bound else item)
        quote = book.quote(model, item, day, batch=batch, service_tier=tier, variant=variant)
        if quote is None:
            items.append(LineItem(f"{name} (unpriced)", quantity, unit, Decimal(0), priced=False))
            return
        amount = (quantity / per_priced_unit * quote.usd).quantize(NANO, rounding=ROUND_HALF_EVEN)
        items.append(LineItem(name, quantity, unit, amount, priced=True))

    if kind == "completions":
        for item, count in _tokens(row).items():
            add(item, count, "tokens")
    elif kind in ("embeddings", "moderations"):
        add("input", row["input_tokens"], "tokens")
    elif kind == "images":
        size = row.get("size")
        add(
            "images",
            row["images"],
            "images",
            named=f"{model or 'unknown model'}, images ({size or 'unknown size'})",
            variant=size,
        )
    elif kind == "audio_speeches":
        add("characters", row["characters"], "characters")
    elif kind == "audio_transcriptions":
        add("audio seconds", row["seconds"], "duration_seconds")
    elif kind == "vector_stores":
        # Priced per GiB-day; reported in GiB-hours, as OpenAI's line items are.
        gib_hours = Decimal(row["usage_bytes"]) / GIB * HOURS_PER_DAY
        add(
            "vector store storage",
            gib_hours,
            "gibibyte_hours",
            per_priced_unit=HOURS_PER_DAY,
            model_bound=False,
        )
    elif kind == "code_interpreter_sessions":
        add("code interpreter sessions", row["num_sessions"], "sessions", model_bound=False)
    elif kind == "file_search_calls":
        add("file search tool calls", row["num_requests"], "calls", model_bound=False)
    elif kind == "web_search_calls":
        add(
            "web search tool calls",
            row["num_requests"],
            "calls",
            variant=row.get("context_level"),
            model_bound=False,
        )
    else:  # pragma: no cover - the catalogue and this table grow together
        raise ValueError(f"no line items for usage kind {kind!r}")
    return items
