"""The price book: what one unit of each kind of usage cost, per model and per day.

Three layers, the first that knows a price wins:

1. the user's own rules (a TOML file; ``openusage serve --prices FILE``),
2. the genai-prices dataset (pydantic/genai-prices, MIT), bundled with that package and
   read without network access: token prices with their batch and service-tier variants
   and their dates of effect, web and file search calls, TTS characters, audio hours,
3. our supplement (``supplement.toml``): tool units and images by size, which the dataset
   does not carry.

A price is looked up for a UTC day, so a price change takes effect from that day on and
never rewrites the days before it.
"""

from __future__ import annotations

import tomllib
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from genai_prices import data as genai_data
from genai_prices.types import ModelInfo, ModelPrice, Provider, StartDateConstraint

MILLION = Decimal(1_000_000)
THOUSAND = Decimal(1_000)
HOUR = Decimal(3600)

# Line item -> (dataset price field, units the field is priced per, fallback field).
# Image tokens of chat models are billed as text tokens, hence their fallbacks; OpenAI does
# not charge cache writes apart, so they cost what input does unless a price says otherwise.
DATASET_FIELDS: dict[str, tuple[str, Decimal, str | None]] = {
    "input": ("input_mtok", MILLION, None),
    "cached input": ("cache_read_mtok", MILLION, None),
    "cache write": ("cache_write_mtok", MILLION, "input_mtok"),
    # The dataset has one cache-write price; a price file may set 12-hour writes apart.
    "cache write 12h": ("cache_write_mtok", MILLION, "input_mtok"),
    "output": ("output_mtok", MILLION, None),
    "audio input": ("input_audio_mtok", MILLION, None),
    "cached audio input": ("cache_audio_read_mtok", MILLION, None),
    "audio output": ("output_audio_mtok", MILLION, None),
    "image input": ("input_image_mtok", MILLION, "input_mtok"),
    "cached image input": ("cache_image_read_mtok", MILLION, "cache_read_mtok"),
    "image output": ("output_image_mtok", MILLION, None),
    "web search tool calls": ("web_searches_kcount", THOUSAND, None),
    "characters": ("input_mchars", MILLION, None),
    "audio seconds": ("audio_hours", HOUR, None),
}
DISCOUNTED_TIERS = ("flex",)
STANDARD_TIERS = (None, "default", "auto", "scale")


class PriceFileError(ValueError):
    """A price file that cannot be read; the message names the rule and the field."""


@dataclass(frozen=True)
class PriceRule:
    """One price: ``usd`` for one unit of ``item``, for matching usage, from a day on."""

    item: str
    usd: Decimal
    source: str
    model: str | None = None
    variant: str | None = None
    batch: bool | None = None
    service_tier: str | None = None
    start: date | None = None
    until: date | None = None

    def model_match(self, model: str | None) -> int:
        """How closely this rule's model matches: 0 not at all, higher is closer."""
        if self.model is None:
            return 1
        if model is None:
            return 0
        if self.model.endswith("*"):
            prefix = self.model[:-1]
            return 2 + len(prefix) if model.startswith(prefix) else 0
        return 10_000 if model == self.model else 0

    def applies(
        self, model: str | None, item: str, day: date, batch: bool, tier: str | None, variant: str | None
    ) -> int:
        if item != self.item or (self.variant is not None and self.variant != variant):
            return 0
        if self.batch is not None and self.batch != batch:
            return 0
        if self.service_tier is not None and self.service_tier != tier:
            return 0
        if (self.start is not None and day < self.start) or (self.until is not None and day >= self.until):
            return 0
        score = self.model_match(model)
        if score:
            # The more a rule names, the closer it matches: a size's or a search context's
            # own price beats the model's price for any of them.
            score = score * 4 + (self.batch is not None) + (self.service_tier is not None)
            score += self.variant is not None
        return score


@dataclass(frozen=True)
class Quote:
    """The price of one unit, and where it came from."""

    usd: Decimal
    source: str


def _decimal(value: Any, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PriceFileError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise PriceFileError(f"{where}: a price must be a non-negative number, got {value!r}")
    return number


def _date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise PriceFileError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def rules_from_toml(text: str, default_source: str) -> tuple[list[PriceRule], dict[str, Any]]:
    """The ``[[price]]`` rules of a price file, checked, and its top-level settings."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PriceFileError(f"not valid TOML: {exc}") from None
    source = str(document.get("source", default_source))
    rules = []
    known = {"model", "item", "usd", "usd_per_million", "variant", "batch", "service_tier", "from", "until"}
    for index, raw in enumerate(document.get("price", [])):
        where = f"price #{index + 1}"
        unknown = set(raw) - known
        if unknown:
            raise PriceFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if "item" not in raw:
            raise PriceFileError(f'{where}: \'item\' is required (e.g. "input", "output", "images")')
        if ("usd" in raw) == ("usd_per_million" in raw):
            raise PriceFileError(f"{where}: give exactly one of 'usd' (per unit) or 'usd_per_million'")
        usd = (
            _decimal(raw["usd"], where) if "usd" in raw else _decimal(raw["usd_per_million"], where) / MILLION
        )
        batch = raw.get("batch")
        if batch is not None and not isinstance(batch, bool):
            raise PriceFileError(f"{where}: 'batch' must be true or false")
        rules.append(
            PriceRule(
                item=str(raw["item"]),
                usd=usd,
                source=source,
                model=raw.get("model"),
                variant=raw.get("variant"),
                batch=batch,
                service_tier=raw.get("service_tier"),
                start=_date(raw.get("from"), where),
                until=_date(raw.get("until"), where),
            )
        )
    return rules, document


def _best(rules: Iterable[PriceRule], *args: Any) -> PriceRule | None:
    best, best_key = None, (0, date.min)
    for rule in rules:
        score = rule.applies(*args)
        # The closest match wins; among equals, the rule that took effect last.
        key = (score, rule.start or date.min)
        if score and key > best_key:
            best, best_key = rule, key
    return best


@cache
def _openai() -> Provider:
    return next(p for p in genai_data.providers if p.id == "openai")


@cache
def _dataset_changes() -> frozenset[date]:
    """The days on which a price of an OpenAI model in the dataset changes. (Its other
    constraints are times of day, the same every day at the midnight a day is priced at.)"""
    constraints = []
    for model in _openai().models:
        if not isinstance(model.prices, ModelPrice):
            constraints += [price.constraint for price in model.prices]
        constraints += [variant.constraint for variant in model.price_variants or ()]
    return frozenset(c.start_date for c in constraints if isinstance(c, StartDateConstraint))


@lru_cache(maxsize=4096)
def _model(name: str) -> ModelInfo | None:
    found: ModelInfo | None = _openai().find_model(name)
    return found


@lru_cache(maxsize=65_536)
def _prices(name: str, day: date, context: tuple[tuple[str, str], ...]) -> ModelPrice:
    """The dataset's prices of a model on a UTC day, for a batch or tier context."""
    info = _model(name)
    assert info is not None, "asked only for models the dataset knows"
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return info.get_prices(moment, dict(context)) if context else info.get_prices(moment)


def _dataset_version() -> str:
    try:
        return metadata.version("genai-prices")
    except metadata.PackageNotFoundError:  # pragma: no cover - it is a dependency
        return "unknown"


class PriceBook:
    """Looks up the price of one unit of usage; see the module docstring for the layers."""

    def __init__(self, overrides: Iterable[PriceRule] = ()) -> None:
        self._overrides = list(overrides)
        text = resources.files("openusage.costs").joinpath("supplement.toml").read_text()
        self._supplement, settings = rules_from_toml(text, "openusage supplement")
        self._batch_share = Decimal(str(settings["batch_share"]))
        self._dataset = f"genai-prices {_dataset_version()}"
        # Costs look up the same few prices for many rows: remember them.
        self._lookup = lru_cache(maxsize=65_536)(self._find)
        rules = (*self._overrides, *self._supplement)
        dates = {d for rule in rules for d in (rule.start, rule.until) if d is not None}
        self._changes = sorted({date.min, *dates, *_dataset_changes()})

    @classmethod
    def from_file(cls, path: Path | None) -> PriceBook:
        if path is None:
            return cls()
        rules, _ = rules_from_toml(path.read_text(), f"price file {path.name}")
        return cls(rules)

    def quote(
        self,
        model: str | None,
        item: str,
        day: date,
        *,
        batch: bool = False,
        service_tier: str | None = None,
        variant: str | None = None,
    ) -> Quote | None:
        """The price of one unit of ``item`` on ``day``, or None: unpriced."""
        return self._lookup((model, item, day, batch, service_tier, variant))

    def period_start(self, day: date) -> date:
        """The first day of the run of days around ``day`` in which no price changes: every
        quote for a day of the run is the quote for this one (date.min: before any change)."""
        return self._changes[bisect_right(self._changes, day) - 1]

    def _find(self, args: tuple[str | None, str, date, bool, str | None, str | None]) -> Quote | None:
        model, item, day, batch, service_tier, _ = args
        rule = _best(self._overrides, *args)
        if rule is not None:
            return Quote(rule.usd, rule.source)
        found = self._from_dataset(model, item, day, batch, service_tier)
        if found is not None:
            return found
        rule = _best(self._supplement, *args)
        return Quote(rule.usd, rule.source) if rule is not None else None

    def rules_for(self, model: str) -> list[PriceRule]:
        """The rules of the price file and of the supplement that name this model."""
        return [
            r for r in (*self._overrides, *self._supplement) if r.model is not None and r.model_match(model)
        ]

    def _from_dataset(
        self, model: str | None, item: str, day: date, batch: bool, tier: str | None
    ) -> Quote | None:
        if model is None or item not in DATASET_FIELDS:
            return None
        info = _model(model)
        if info is None:
            return None
        standard = _prices(model, day, ())
        field, per, fallback = DATASET_FIELDS[item]
        context: dict[str, str] = {}
        # Batch and service tiers change token prices only, not those of tool calls.
        if batch and per == MILLION:
            context["processing"] = "batch"
        if tier not in STANDARD_TIERS and per == MILLION:
            context["service_tier"] = str(tier)
        prices = _prices(model, day, tuple(sorted(context.items()))) if context else standard
        share = Decimal(1)
        if context and prices == standard:
            # No variant in the dataset for this day: batch and flex cost the batch share;
            # any other tier (priority) has no price we know.
            if tier not in STANDARD_TIERS and tier not in DISCOUNTED_TIERS:
                return None
            share = self._batch_share
        price = _field(prices, field)
        if price is None and fallback is not None:
            price = _field(prices, fallback)
        if price is None:
            return None
        return Quote(price / per * share, f"{self._dataset} ({info.id})")


def _field(prices: ModelPrice, name: str) -> Decimal | None:
    value = getattr(prices, name, None)
    if value is None:
        return None
    # Tiered prices depend on each request's context size, which buckets do not keep:
    # the base price is used.
    base = getattr(value, "base", value)
    return base if isinstance(base, Decimal) else Decimal(str(base))
