# Written by openusage.client.stubgen from the catalogue: do not edit by hand.
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Literal

import httpx

from .models import AudioSpeechesResult, AudioTranscriptionsResult, CodeInterpreterSessionsResult, CompletionsResult, CostsResult, DecisionsResult, EmbeddingsResult, FileSearchCallsResult, ImagesResult, ModerationsResult, VectorStoresResult, WebSearchCallsResult
from .pages import AsyncUsagePage, UsagePage

class UsageApi:
    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None: ...
    @property
    def base_url(self) -> str: ...
    def usage_completions(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        batch: bool | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model', 'batch', 'service_tier', 'api_source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[CompletionsResult]:
        """Get completions usage details for the organization.

        GET /organization/usage/completions. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            batch: Only results whose batch is this.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model, batch, service_tier, api_source.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_decisions(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        batch: bool | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model', 'batch', 'service_tier', 'api_source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[DecisionsResult]:
        """Get Decisions API usage details for the organization.

        GET /organization/usage/decisions. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            batch: Only results whose batch is this.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model, batch, service_tier, api_source.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_embeddings(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[EmbeddingsResult]:
        """Get embeddings usage details for the organization.

        GET /organization/usage/embeddings. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_moderations(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[ModerationsResult]:
        """Get moderations usage details for the organization.

        GET /organization/usage/moderations. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_images(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        sizes: Sequence[Literal['256x256', '512x512', '1024x1024', '1792x1792', '1024x1792', '1792x1024', '1024x1536', '1536x1024']] | None = None,
        sources: Sequence[Literal['image.generation', 'image.edit', 'image.variation']] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model', 'size', 'source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[ImagesResult]:
        """Get images usage details for the organization.

        GET /organization/usage/images. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            sizes: Only results with these size values.
            sources: Only results with these source values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model, size, source.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_audio_speeches(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[AudioSpeechesResult]:
        """Get audio speeches usage details for the organization.

        GET /organization/usage/audio_speeches. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_audio_transcriptions(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[AudioTranscriptionsResult]:
        """Get audio transcriptions usage details for the organization.

        GET /organization/usage/audio_transcriptions. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_vector_stores(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[VectorStoresResult]:
        """Get vector stores usage details for the organization.

        GET /organization/usage/vector_stores. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            group_by: Group the results by these fields: project_id.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_code_interpreter_sessions(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[CodeInterpreterSessionsResult]:
        """Get code interpreter sessions usage details for the organization.

        GET /organization/usage/code_interpreter_sessions. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            group_by: Group the results by these fields: project_id.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_file_search_calls(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        vector_store_ids: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'vector_store_id']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[FileSearchCallsResult]:
        """Get file search calls usage details for the organization.

        GET /organization/usage/file_search_calls. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            vector_store_ids: Only results with these vector_store_id values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, vector_store_id.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_web_search_calls(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        context_levels: Sequence[Literal['low', 'medium', 'high']] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model', 'context_level', 'api_source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[WebSearchCallsResult]:
        """Get web search calls usage details for the organization.

        GET /organization/usage/web_search_calls. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            context_levels: Only results with these context_level values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model, context_level, api_source.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    def usage_costs(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        line_items: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'line_item', 'api_key_id', 'api_source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage[CostsResult]:
        """Get costs details for the organization.

        GET /organization/costs. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1d (default 1d).
            project_ids: Only results with these project_id values.
            line_items: Only results with these line_item values.
            api_key_ids: Only results with these api_key_id values.
            group_by: Group the results by these fields: project_id, user_id, line_item, api_key_id, api_source.
            limit: Buckets per page (1d: default 7, max 180).
            page: The next_page cursor of a previous page (walking pages is done for you)."""

    def close(self) -> None: ...
    def __enter__(self) -> UsageApi: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class AsyncUsageApi:
    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None: ...
    @property
    def base_url(self) -> str: ...
    async def usage_completions(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        batch: bool | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model', 'batch', 'service_tier', 'api_source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[CompletionsResult]:
        """Get completions usage details for the organization.

        GET /organization/usage/completions. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            batch: Only results whose batch is this.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model, batch, service_tier, api_source.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_decisions(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        batch: bool | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model', 'batch', 'service_tier', 'api_source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[DecisionsResult]:
        """Get Decisions API usage details for the organization.

        GET /organization/usage/decisions. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            batch: Only results whose batch is this.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model, batch, service_tier, api_source.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_embeddings(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[EmbeddingsResult]:
        """Get embeddings usage details for the organization.

        GET /organization/usage/embeddings. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_moderations(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[ModerationsResult]:
        """Get moderations usage details for the organization.

        GET /organization/usage/moderations. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_images(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        sizes: Sequence[Literal['256x256', '512x512', '1024x1024', '1792x1792', '1024x1792', '1792x1024', '1024x1536', '1536x1024']] | None = None,
        sources: Sequence[Literal['image.generation', 'image.edit', 'image.variation']] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model', 'size', 'source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[ImagesResult]:
        """Get images usage details for the organization.

        GET /organization/usage/images. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            sizes: Only results with these size values.
            sources: Only results with these source values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model, size, source.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_audio_speeches(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[AudioSpeechesResult]:
        """Get audio speeches usage details for the organization.

        GET /organization/usage/audio_speeches. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_audio_transcriptions(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[AudioTranscriptionsResult]:
        """Get audio transcriptions usage details for the organization.

        GET /organization/usage/audio_transcriptions. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_vector_stores(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[VectorStoresResult]:
        """Get vector stores usage details for the organization.

        GET /organization/usage/vector_stores. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            group_by: Group the results by these fields: project_id.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_code_interpreter_sessions(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[CodeInterpreterSessionsResult]:
        """Get code interpreter sessions usage details for the organization.

        GET /organization/usage/code_interpreter_sessions. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            group_by: Group the results by these fields: project_id.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_file_search_calls(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        vector_store_ids: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'vector_store_id']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[FileSearchCallsResult]:
        """Get file search calls usage details for the organization.

        GET /organization/usage/file_search_calls. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            vector_store_ids: Only results with these vector_store_id values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, vector_store_id.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_web_search_calls(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1m', '1h', '1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        models: Sequence[str] | None = None,
        context_levels: Sequence[Literal['low', 'medium', 'high']] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'api_key_id', 'model', 'context_level', 'api_source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[WebSearchCallsResult]:
        """Get web search calls usage details for the organization.

        GET /organization/usage/web_search_calls. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1m, 1h, 1d (default 1d).
            project_ids: Only results with these project_id values.
            user_ids: Only results with these user_id values.
            api_key_ids: Only results with these api_key_id values.
            models: Only results with these model values.
            context_levels: Only results with these context_level values.
            group_by: Group the results by these fields: project_id, user_id, api_key_id, model, context_level, api_source.
            limit: Buckets per page (1m: default 60, max 1440; 1h: default 24, max 168; 1d: default 7, max 31).
            page: The next_page cursor of a previous page (walking pages is done for you)."""
    async def usage_costs(
        self,
        start_time: int | datetime,
        end_time: int | datetime | None = None,
        *,
        bucket_width: Literal['1d'] | None = None,
        project_ids: Sequence[str] | None = None,
        line_items: Sequence[str] | None = None,
        api_key_ids: Sequence[str] | None = None,
        group_by: Sequence[Literal['project_id', 'user_id', 'line_item', 'api_key_id', 'api_source']] | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> AsyncUsagePage[CostsResult]:
        """Get costs details for the organization.

        GET /organization/costs. Iterate the page to walk every later page.

        Args:
            start_time: Start of the range, inclusive: unix seconds or an aware datetime.
            end_time: End of the range, exclusive (default: now): unix seconds or an aware datetime.
            bucket_width: Width of each bucket: 1d (default 1d).
            project_ids: Only results with these project_id values.
            line_items: Only results with these line_item values.
            api_key_ids: Only results with these api_key_id values.
            group_by: Group the results by these fields: project_id, user_id, line_item, api_key_id, api_source.
            limit: Buckets per page (1d: default 7, max 180).
            page: The next_page cursor of a previous page (walking pages is done for you)."""

    async def close(self) -> None: ...
    async def __aenter__(self) -> AsyncUsageApi: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
