"""The endpoint catalogue: every fact that tells one endpoint from another.

Routes, parameter validation, the event store's columns, the ingestion rules, the
OpenAPI document, the client's methods and the CLI all read this table. Adding an
endpoint or a field is a change here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

Width = Literal["1m", "1h", "1d"]
WIDTH_SECONDS: dict[str, int] = {"1m": 60, "1h": 3600, "1d": 86400}

DimensionType = Literal["string", "boolean"]


@dataclass(frozen=True)
class Dimension:
    """A field results can be grouped by (and events carry).

    ``filter`` is the query parameter that restricts it (``project_ids``), or ``None``.
    ``values`` lists the allowed values where the API fixes them.
    ``groupable`` is false for a field events carry but results do not show.
    """

    name: str
    filter: str | None = None
    type: DimensionType = "string"
    values: tuple[str, ...] | None = None
    groupable: bool = True
    required: bool = False
    #: what an event that does not say stores (and results group under)
    default: str | None = None
    #: false where every value holds a comma (line items): never split comma-joined
    joinable: bool = True


@dataclass(frozen=True)
class Metric:
    """A numeric result field; a sum over the bucket unless it is a gauge."""

    name: str
    default: int = 0
    gauge: bool = False
    maximum: int = 10**12


@dataclass(frozen=True)
class WidthLimit:
    default: int
    maximum: int


@dataclass(frozen=True)
class Endpoint:
    """One GET endpoint of the organization usage API."""

    name: str
    path: str
    result_object: str
    schema_name: str
    summary: str
    dimensions: tuple[Dimension, ...]
    metrics: tuple[Metric, ...] = ()
    limits: dict[str, WidthLimit] = field(default_factory=dict)
    default_width: str = "1d"
    #: the method name of the starting document's client (``usage_completions``)
    method: str = ""
    #: costs are computed from usage; every other endpoint is a kind of usage event
    is_costs: bool = False

    @cached_property
    def widths(self) -> tuple[str, ...]:
        return tuple(self.limits)

    @cached_property
    def group_fields(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions if d.groupable)

    @cached_property
    def result_dimensions(self) -> tuple[Dimension, ...]:
        return tuple(d for d in self.dimensions if d.groupable)

    @property
    def filters(self) -> dict[str, Dimension]:
        return {d.filter: d for d in self.dimensions if d.filter}

    @cached_property  # asked for per result row
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    @cached_property
    def has_gauge(self) -> bool:
        return any(m.gauge for m in self.metrics)


USAGE_LIMITS = {
    "1m": WidthLimit(default=60, maximum=1440),
    "1h": WidthLimit(default=24, maximum=168),
    "1d": WidthLimit(default=7, maximum=31),
}
COSTS_LIMITS = {"1d": WidthLimit(default=7, maximum=180)}

PROJECT = Dimension("project_id", "project_ids")
USER = Dimension("user_id", "user_ids")
API_KEY = Dimension("api_key_id", "api_key_ids")
MODEL = Dimension("model", "models")
MODEL_DIMENSIONS = (PROJECT, USER, API_KEY, MODEL)

IMAGE_SOURCES = ("image.generation", "image.edit", "image.variation")
# The official enum, plus the sizes of the gpt-image models *(ours)*.
IMAGE_SIZES = (
    "256x256",
    "512x512",
    "1024x1024",
    "1792x1792",
    "1024x1792",
    "1792x1024",
    "1024x1536",
    "1536x1024",
)
CONTEXT_LEVELS = ("low", "medium", "high")
#: usage without source attribution is ``unlabeled``; only grouping shows the field
API_SOURCES = ("agents_api", "unlabeled")
API_SOURCE = Dimension("api_source", values=API_SOURCES, default="unlabeled")

NUM_MODEL_REQUESTS = Metric("num_model_requests", default=1)

COMPLETIONS_METRICS = (
    Metric("input_tokens"),
    Metric("output_tokens"),
    NUM_MODEL_REQUESTS,
    Metric("input_cached_tokens"),
    Metric("input_cache_write_tokens"),
    Metric("input_cache_write_30m_tokens"),
    Metric("input_cache_write_12h_tokens"),
    Metric("input_uncached_tokens"),
    Metric("input_text_tokens"),
    Metric("output_text_tokens"),
    Metric("input_cached_text_tokens"),
    Metric("input_audio_tokens"),
    Metric("input_cached_audio_tokens"),
    Metric("output_audio_tokens"),
    Metric("input_image_tokens"),
    Metric("input_cached_image_tokens"),
    Metric("output_image_tokens"),
)


def _usage(
    name: str,
    summary: str,
    dimensions: tuple[Dimension, ...],
    metrics: tuple[Metric, ...],
    *,
    result: str | None = None,
    schema: str,
) -> Endpoint:
    return Endpoint(
        name=name,
        path=f"/organization/usage/{name}",
        result_object=f"organization.usage.{result or name}.result",
        schema_name=schema,
        summary=summary,
        dimensions=dimensions,
        metrics=metrics,
        limits=USAGE_LIMITS,
        method=f"usage_{name}",
    )


COMPLETIONS_DIMENSIONS = (
    *MODEL_DIMENSIONS,
    Dimension("batch", "batch", type="boolean"),
    Dimension("service_tier"),
    API_SOURCE,
)

USAGE_ENDPOINTS: tuple[Endpoint, ...] = (
    _usage(
        "completions",
        "Get completions usage details for the organization.",
        COMPLETIONS_DIMENSIONS,
        COMPLETIONS_METRICS,
        schema="UsageCompletionsResult",
    ),
    _usage(
        "decisions",
        "Get Decisions API usage details for the organization.",
        COMPLETIONS_DIMENSIONS,
        COMPLETIONS_METRICS,
        schema="UsageDecisionsResult",
    ),
    _usage(
        "embeddings",
        "Get embeddings usage details for the organization.",
        MODEL_DIMENSIONS,
        (Metric("input_tokens"), NUM_MODEL_REQUESTS),
        schema="UsageEmbeddingsResult",
    ),
    _usage(
        "moderations",
        "Get moderations usage details for the organization.",
        MODEL_DIMENSIONS,
        (Metric("input_tokens"), NUM_MODEL_REQUESTS),
        schema="UsageModerationsResult",
    ),
    _usage(
        "images",
        "Get images usage details for the organization.",
        (
            *MODEL_DIMENSIONS,
            Dimension("size", "sizes", values=IMAGE_SIZES),
            Dimension("source", "sources", values=IMAGE_SOURCES),
        ),
        (Metric("images"), NUM_MODEL_REQUESTS),
        schema="UsageImagesResult",
    ),
    _usage(
        "audio_speeches",
        "Get audio speeches usage details for the organization.",
        MODEL_DIMENSIONS,
        (Metric("characters"), NUM_MODEL_REQUESTS),
        schema="UsageAudioSpeechesResult",
    ),
    _usage(
        "audio_transcriptions",
        "Get audio transcriptions usage details for the organization.",
        MODEL_DIMENSIONS,
        (Metric("seconds"), NUM_MODEL_REQUESTS),
        schema="UsageAudioTranscriptionsResult",
    ),
    _usage(
        "vector_stores",
        "Get vector stores usage details for the organization.",
        # A vector-store event reports the size of one store, so it names the store.
        (PROJECT, Dimension("vector_store_id", groupable=False, required=True)),
        (Metric("usage_bytes", gauge=True, maximum=2**50),),
        schema="UsageVectorStoresResult",
    ),
    _usage(
        "code_interpreter_sessions",
        "Get code interpreter sessions usage details for the organization.",
        (PROJECT,),
        (Metric("num_sessions", default=1),),
        schema="UsageCodeInterpreterSessionsResult",
    ),
    _usage(
        "file_search_calls",
        "Get file search calls usage details for the organization.",
        (PROJECT, USER, API_KEY, Dimension("vector_store_id", "vector_store_ids")),
        (Metric("num_requests", default=1),),
        result="file_searches",
        schema="UsageFileSearchCallsResult",
    ),
    _usage(
        "web_search_calls",
        "Get web search calls usage details for the organization.",
        (
            *MODEL_DIMENSIONS,
            Dimension("context_level", "context_levels", values=CONTEXT_LEVELS),
            API_SOURCE,
        ),
        (NUM_MODEL_REQUESTS, Metric("num_requests", default=1)),
        result="web_searches",
        schema="UsageWebSearchCallsResult",
    ),
)

#: costs group by user but, as at OpenAI, take no ``user_ids`` filter
USER_OF_COSTS = Dimension("user_id")

COSTS = Endpoint(
    name="costs",
    path="/organization/costs",
    result_object="organization.costs.result",
    schema_name="CostsResult",
    summary="Get costs details for the organization.",
    dimensions=(
        PROJECT,
        USER_OF_COSTS,
        Dimension("line_item", "line_items", joinable=False),
        API_KEY,
        API_SOURCE,
    ),
    limits=COSTS_LIMITS,
    method="usage_costs",
    is_costs=True,
)

ENDPOINTS: tuple[Endpoint, ...] = (*USAGE_ENDPOINTS, COSTS)
USAGE_KINDS: dict[str, Endpoint] = {e.name: e for e in USAGE_ENDPOINTS}
BY_PATH: dict[str, Endpoint] = {e.path: e for e in ENDPOINTS}


def all_dimensions() -> dict[str, DimensionType]:
    """Every dimension any usage kind carries, in first-seen order: the store's columns."""
    out: dict[str, DimensionType] = {}
    for endpoint in USAGE_ENDPOINTS:
        for d in endpoint.dimensions:
            out.setdefault(d.name, d.type)
    return out


def all_metrics() -> tuple[str, ...]:
    """Every metric any usage kind has, in first-seen order: the store's columns."""
    out: dict[str, None] = {}
    for endpoint in USAGE_ENDPOINTS:
        for m in endpoint.metrics:
            out.setdefault(m.name, None)
    return tuple(out)
