"""What a proxied call used: usage events made from the upstream's answer.

Each function takes the request as the caller sent it and the upstream's successful answer,
and gives the usage events in the ingestion format (``server/events.py``). The event ids are
derived from the upstream's response id (or the request id), so a record replayed after a
crash is counted once. Field meanings follow the official clients' types:
``CompletionUsage`` (chat and legacy completions), ``ResponseUsage`` (Responses),
``CreateEmbeddingResponse``, ``ImagesResponse`` and the transcription types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..catalogue import IMAGE_SIZES, USAGE_KINDS

Event = dict[str, Any]


@dataclass(frozen=True)
class Caller:
    """Who made a proxied call: the proxy key's id, its project and its user."""

    api_key_id: str
    project_id: str
    user_id: str | None = None


@dataclass(frozen=True)
class Call:
    """One successful proxied call: what was asked and what the upstream answered."""

    caller: Caller
    #: the request's JSON body, or its form fields for a multipart upload
    request: dict[str, Any]
    response: dict[str, Any]
    #: the upstream's request id, or ours, where the answer carries no id
    request_id: str
    timestamp: int


def _event(kind: str, event_id: str, call: Call, **fields: Any) -> Event:
    """An event of ``kind`` with the caller's dimensions that this kind has."""
    names = {d.name for d in USAGE_KINDS[kind].dimensions}
    caller = call.caller
    event: Event = {"id": event_id, "type": kind, "timestamp": call.timestamp}
    given = {"project_id": caller.project_id, "user_id": caller.user_id, "api_key_id": caller.api_key_id}
    event.update({k: v for k, v in given.items() if k in names and v is not None})
    event.update({k: v for k, v in fields.items() if v is not None})
    return event


def _count(value: Any) -> int | None:
    """A token count from the answer: a non-negative integer, or None for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _model(call: Call) -> str | None:
    model = call.response.get("model") or call.request.get("model")
    return model if isinstance(model, str) and model else None


def _tier(call: Call) -> str | None:
    tier = call.response.get("service_tier")
    return tier if isinstance(tier, str) and tier else None


def _details(usage: dict[str, Any], name: str) -> dict[str, Any]:
    details = usage.get(name)
    return details if isinstance(details, dict) else {}


def _call_id(call: Call) -> str:
    response_id = call.response.get("id")
    return response_id if isinstance(response_id, str) and response_id else call.request_id


def chat_completion(call: Call) -> list[Event]:
    """A chat or legacy completion: ``usage`` as ``CompletionUsage``."""
    usage = call.response.get("usage")
    usage = usage if isinstance(usage, dict) else {}  # no usage reported: the request still counts
    prompt, output = _details(usage, "prompt_tokens_details"), _details(usage, "completion_tokens_details")
    tokens = {
        "input_tokens": _count(usage.get("prompt_tokens")),
        "output_tokens": _count(usage.get("completion_tokens")),
        "input_cached_tokens": _count(prompt.get("cached_tokens")),
        "input_cache_write_tokens": _count(prompt.get("cache_write_tokens")),
        "output_audio_tokens": _count(output.get("audio_tokens")),
        "output_text_tokens": _count(output.get("text_tokens")),
    }
    # The prompt's modalities count cached tokens too, while an event's input_text/audio/
    # image tokens are the uncached part of each: they are the same when nothing is cached.
    if not tokens["input_cached_tokens"] and not tokens["input_cache_write_tokens"]:
        tokens |= {
            "input_text_tokens": _count(prompt.get("text_tokens")),
            "input_audio_tokens": _count(prompt.get("audio_tokens")),
            "input_image_tokens": _count(prompt.get("image_tokens")),
        }
    return [
        _event(
            "completions",
            f"gw-{_call_id(call)}",
            call,
            model=_model(call),
            batch=False,  # a call answered now (the Batch API passes through unrecorded)
            service_tier=_tier(call),
            **tokens,
        )
    ]


def response(call: Call) -> list[Event]:
    """A Responses answer: ``usage`` as ``ResponseUsage``, and the tool calls in its output."""
    events = []
    usage = call.response.get("usage")
    call_id = _call_id(call)
    model = _model(call)
    if isinstance(usage, dict):
        given = _details(usage, "input_tokens_details")
        writes = _details(given, "cache_write_tokens_details")
        events.append(
            _event(
                "completions",
                f"gw-{call_id}",
                call,
                model=model,
                batch=False,
                service_tier=_tier(call),
                input_tokens=_count(usage.get("input_tokens")),
                output_tokens=_count(usage.get("output_tokens")),
                input_cached_tokens=_count(given.get("cached_tokens")),
                input_cache_write_tokens=_count(given.get("cache_write_tokens")),
                input_cache_write_30m_tokens=_count(writes.get("ttl_30m_tokens")),
                input_cache_write_12h_tokens=_count(writes.get("ttl_12h_tokens")),
            )
        )
    output = call.response.get("output")
    items = [item for item in output if isinstance(item, dict)] if isinstance(output, list) else []
    tools = _tools(call.request)
    searches = [item for item in items if item.get("type") == "web_search_call"]
    if searches:
        context = tools.get("web_search", {}).get("search_context_size", "medium")
        events.append(
            _event(
                "web_search_calls",
                f"gw-{call_id}-web_search",
                call,
                model=model,
                context_level=context if context in ("low", "medium", "high") else None,
                num_requests=len(searches),
            )
        )
    stores = tools.get("file_search", {}).get("vector_store_ids")
    store = stores[0] if isinstance(stores, list) and len(stores) == 1 else None
    for index, item in enumerate(i for i in items if i.get("type") == "file_search_call"):
        item_id = item.get("id") if isinstance(item.get("id"), str) else f"{call_id}-{index}"
        events.append(_event("file_search_calls", f"gw-{item_id}", call, vector_store_id=store))
    containers = {i.get("container_id") for i in items if i.get("type") == "code_interpreter_call"}
    for container in sorted(c for c in containers if isinstance(c, str) and c):
        # A session is a container: a container used by many calls is one session.
        events.append(_event("code_interpreter_sessions", f"gw-{container}", call))
    return events


def _tools(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The request's tools by type (the web search tool under one name, whatever its version)."""
    tools = request.get("tools")
    out: dict[str, dict[str, Any]] = {}
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and isinstance(tool.get("type"), str):
            kind = "web_search" if tool["type"].startswith("web_search") else tool["type"]
            out.setdefault(kind, tool)
    return out


def embedding(call: Call) -> list[Event]:
    usage = call.response.get("usage")
    tokens = _count(usage.get("prompt_tokens")) if isinstance(usage, dict) else None
    return [_event("embeddings", f"gw-{call.request_id}", call, model=_model(call), input_tokens=tokens)]


def moderation(call: Call) -> list[Event]:
    # A moderation answer reports no tokens: the request is counted, its tokens are not known.
    return [_event("moderations", f"gw-{_call_id(call)}", call, model=_model(call))]


def images(source: str) -> Any:
    """Images made by generation, edit or variation: how many, at what size."""

    def record(call: Call) -> list[Event]:
        data = call.response.get("data")
        size = call.request.get("size") or call.response.get("size")
        return [
            _event(
                "images",
                f"gw-{call.request_id}",
                call,
                model=_model(call),
                source=source,
                size=size if size in IMAGE_SIZES else None,
                images=len(data) if isinstance(data, list) else None,
            )
        ]

    return record


def speech(call: Call) -> list[Event]:
    text = call.request.get("input")
    characters = len(text) if isinstance(text, str) else None
    return [
        _event("audio_speeches", f"gw-{call.request_id}", call, model=_model(call), characters=characters)
    ]


def transcription(call: Call) -> list[Event]:
    """A transcription or translation: its seconds of audio, billed by the started second."""
    usage = call.response.get("usage")
    seconds = usage.get("seconds") if isinstance(usage, dict) and usage.get("type") == "duration" else None
    if seconds is None:
        seconds = call.response.get("duration")  # verbose_json
    whole = (
        math.ceil(seconds)
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and math.isfinite(seconds)
        else None
    )
    return [
        _event(
            "audio_transcriptions",
            f"gw-{call.request_id}",
            call,
            model=_model(call),
            seconds=whole if whole is not None and whole >= 0 else None,
        )
    ]
