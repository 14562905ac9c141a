"""Typed results of every endpoint. Unknown fields are kept, not refused: the API grows.

The field lists mirror the catalogue; ``tests/client/test_models.py`` checks that they agree.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class UsageResult(_Model):
    """Any result row; every endpoint's row is one of these."""

    object: str


class _ByKeyAndUser(UsageResult):
    project_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None


class _ByModel(_ByKeyAndUser):
    model: str | None = None


class CompletionsResult(_ByModel):
    input_tokens: int = 0
    output_tokens: int = 0
    num_model_requests: int = 0
    input_cached_tokens: int = 0
    input_cache_write_tokens: int = 0
    input_cache_write_30m_tokens: int = 0
    input_cache_write_12h_tokens: int = 0
    input_uncached_tokens: int = 0
    input_text_tokens: int = 0
    output_text_tokens: int = 0
    input_cached_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_cached_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_image_tokens: int = 0
    input_cached_image_tokens: int = 0
    output_image_tokens: int = 0
    batch: bool | None = None
    service_tier: str | None = None
    api_source: str | None = None


class DecisionsResult(CompletionsResult):
    """Decisions API usage: the fields of completions."""


class EmbeddingsResult(_ByModel):
    input_tokens: int = 0
    num_model_requests: int = 0


class ModerationsResult(_ByModel):
    input_tokens: int = 0
    num_model_requests: int = 0


class ImagesResult(_ByModel):
    images: int = 0
    num_model_requests: int = 0
    size: str | None = None
    source: str | None = None


class AudioSpeechesResult(_ByModel):
    characters: int = 0
    num_model_requests: int = 0


class AudioTranscriptionsResult(_ByModel):
    seconds: int = 0
    num_model_requests: int = 0


class VectorStoresResult(UsageResult):
    usage_bytes: int = 0
    project_id: str | None = None


class CodeInterpreterSessionsResult(UsageResult):
    num_sessions: int = 0
    project_id: str | None = None


class FileSearchCallsResult(_ByKeyAndUser):
    num_requests: int = 0
    vector_store_id: str | None = None


class WebSearchCallsResult(_ByModel):
    num_model_requests: int = 0
    num_requests: int = 0
    context_level: str | None = None
    api_source: str | None = None


class CostAmount(_Model):
    value: float = 0.0
    currency: str = "usd"


class CostsResult(UsageResult):
    amount: CostAmount = CostAmount()
    line_item: str | None = None
    project_id: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None
    api_source: str | None = None
    quantity: float | None = None
    quantity_unit: str | None = None


R = TypeVar("R", bound=UsageResult)


class Bucket(_Model, Generic[R]):
    """One time bucket, ``[start_time, end_time)`` in unix seconds."""

    object: str = "bucket"
    start_time: int
    end_time: int
    results: list[R]


class UsageResponse(_Model, Generic[R]):
    """One page of buckets as the API sends it."""

    object: str = "page"
    data: list[Bucket[R]]
    has_more: bool = False
    next_page: str | None = None


#: endpoint name (catalogue) -> its result model
RESULT_MODELS: dict[str, type[UsageResult]] = {
    "completions": CompletionsResult,
    "decisions": DecisionsResult,
    "embeddings": EmbeddingsResult,
    "moderations": ModerationsResult,
    "images": ImagesResult,
    "audio_speeches": AudioSpeechesResult,
    "audio_transcriptions": AudioTranscriptionsResult,
    "vector_stores": VectorStoresResult,
    "code_interpreter_sessions": CodeInterpreterSessionsResult,
    "file_search_calls": FileSearchCallsResult,
    "web_search_calls": WebSearchCallsResult,
    "costs": CostsResult,
}
