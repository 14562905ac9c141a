"""A stand-in for OpenAI's model endpoints, for demos and tests: no key, no network.

It answers in OpenAI's formats (JSON and server-sent events) with made-up content and
usage that follows from the request, so a test can work out what must be recorded:
a prompt costs one token per word plus three, an answer is ``ANSWER`` (five tokens, one
word a chunk when streamed). The model name steers the failures a gateway must survive:

- ``error-429`` (any status): that status in OpenAI's error envelope, with ``retry-after``;
- ``slow-2.5``: the answer (or a stream's first chunk) comes after 2.5 seconds;
- ``drop``: the connection is cut halfway through the answer; ``drop-stream``: a stream's
  after two chunks;
- ``trickle-0.2``: a stream's chunks come 0.2 seconds apart.

``GET /v1/models`` says in ``x-fake-authorization`` which key it was sent (to check that a
gateway sends its own).

    openusage fake-upstream --port 9000
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

ANSWER = "Hello from the fake upstream."
ANSWER_WORDS = ANSWER.split(" ")
ANSWER_TOKENS = 5


class Dropped(Exception):
    """Raised to cut a connection, as a crashed upstream would."""


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json", headers=_ids(headers))


def _ids(headers: dict[str, str] | None = None) -> dict[str, str]:
    return {"x-request-id": "req_" + uuid.uuid4().hex, **(headers or {})}


def _words(value: Any) -> int:
    """Words in every string of a request's messages or input."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):
        return sum(_words(v) for k, v in value.items() if k in ("content", "text", "input"))
    return 0


async def _misbehave(model: str) -> Response | None:
    """The failure a model name asks for, before any answer."""
    if model.startswith("error-"):
        status = int(model.removeprefix("error-"))
        error = {"message": f"The fake upstream fails with {status}.", "type": "fake_error", "param": None}
        return _json({"error": {**error, "code": "fake"}}, status, {"retry-after": "7"})
    if model.startswith("slow-"):
        await asyncio.sleep(float(model.removeprefix("slow-")))
    if model == "drop":
        return StreamingResponse(
            _streamed([b'{"id": "cut', b""], "drop-stream"), media_type="application/json"
        )
    return None


def _usage(prompt: int, body: dict[str, Any]) -> tuple[int, int]:
    """Prompt tokens, and how many of them were cached (half, when a cache key is given)."""
    return prompt, prompt // 2 if body.get("prompt_cache_key") else 0


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + (data if isinstance(data, bytes) else orjson.dumps(data)) + b"\n\n"


async def _streamed(chunks: list[bytes], model: str) -> AsyncIterator[bytes]:
    pause = float(model.removeprefix("trickle-")) if model.startswith("trickle-") else 0.0
    for number, chunk in enumerate(chunks):
        if model == "drop-stream" and number == min(2, len(chunks) - 1):
            # A moment first, for the chunks sent to be read: aiohttp drops what it holds
            # unread once the connection breaks.
            await asyncio.sleep(0.5)
            raise Dropped("the fake upstream cuts the stream")
        yield chunk
        await asyncio.sleep(pause)


async def chat_completions(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model", ""))
    if (failure := await _misbehave(model)) is not None:
        return failure
    prompt, cached = _usage(_words(body.get("messages")) + 3, body)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": ANSWER_TOKENS,
        "total_tokens": prompt + ANSWER_TOKENS,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    head = {"id": "chatcmpl-" + uuid.uuid4().hex, "created": int(time.time()), "model": model}
    tier = {"service_tier": body.get("service_tier", "default")}
    if not body.get("stream"):
        message = {"role": "assistant", "content": ANSWER, "refusal": None}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return _json({**head, "object": "chat.completion", "choices": [choice], **tier, "usage": usage})
    with_usage = (body.get("stream_options") or {}).get("include_usage") is True
    chunk = {**head, "object": "chat.completion.chunk", **tier}
    deltas = [{"role": "assistant", "content": ""}, *({"content": w + " "} for w in ANSWER_WORDS), {}]
    chunks = []
    for number, delta in enumerate(deltas):
        finish = "stop" if number == len(deltas) - 1 else None
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        chunks.append(_sse({**chunk, "choices": [choice], **({"usage": None} if with_usage else {})}))
    if with_usage:
        chunks.append(_sse({**chunk, "choices": [], "usage": usage}))
    chunks.append(_sse(b"[DONE]"))
    return StreamingResponse(_streamed(chunks, model), media_type="text/event-stream", headers=_ids())


async def completions(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model", ""))
    if (failure := await _misbehave(model)) is not None:
        return failure
    prompt = _words(body.get("prompt")) + 3
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": ANSWER_TOKENS,
        "total_tokens": prompt + ANSWER_TOKENS,
    }
    choice = {"index": 0, "text": ANSWER, "finish_reason": "stop", "logprobs": None}
    answer = {"id": "cmpl-" + uuid.uuid4().hex, "object": "text_completion", "created": int(time.time())}
    return _json({**answer, "model": model, "choices": [choice], "usage": usage})


def _response_output(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The answer's message and one call of each tool the request offers."""
    output: list[dict[str, Any]] = []
    for tool in body.get("tools") or []:
        kind = tool.get("type", "")
        if kind.startswith("web_search"):
            action = {"type": "search", "query": "fake"}
            output.append(
                {
                    "type": "web_search_call",
                    "id": "ws_" + uuid.uuid4().hex,
                    "status": "completed",
                    "action": action,
                }
            )
        elif kind == "file_search":
            output.append(
                {
                    "type": "file_search_call",
                    "id": "fs_" + uuid.uuid4().hex,
                    "status": "completed",
                    "queries": ["fake"],
                    "results": None,
                }
            )
        elif kind == "code_interpreter":
            container = tool.get("container")
            output.append(
                {
                    "type": "code_interpreter_call",
                    "id": "ci_" + uuid.uuid4().hex,
                    "status": "completed",
                    "code": "print(1)",
                    "container_id": container if isinstance(container, str) else "cntr_" + uuid.uuid4().hex,
                    "outputs": None,
                }
            )
    text = {"type": "output_text", "text": ANSWER, "annotations": []}
    message = {"type": "message", "id": "msg_" + uuid.uuid4().hex, "status": "completed", "role": "assistant"}
    output.append({**message, "content": [text]})
    return output


async def responses(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model", ""))
    if (failure := await _misbehave(model)) is not None:
        return failure
    prompt, cached = _usage(_words(body.get("input")) + _words(body.get("instructions")) + 3, body)
    answer: dict[str, Any] = {
        "id": "resp_" + uuid.uuid4().hex,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": _response_output(body),
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "service_tier": body.get("service_tier", "default"),
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": ANSWER_TOKENS,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + ANSWER_TOKENS,
        },
    }
    if not body.get("stream"):
        return _json(answer)
    started = {**answer, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": started}]
    output: list[dict[str, Any]] = answer["output"]
    for index, item in enumerate(output):
        place: dict[str, Any] = {"output_index": index}
        if item["type"] != "message":
            events += [{"type": "response.output_item.added", **place, "item": item}]
            events += [{"type": "response.output_item.done", **place, "item": item}]
            continue
        part = {**place, "item_id": item["id"], "content_index": 0}
        events.append({"type": "response.output_item.added", **place, "item": {**item, "content": []}})
        events.append(
            {"type": "response.content_part.added", **part, "part": {**item["content"][0], "text": ""}}
        )
        for word in ANSWER_WORDS:
            events.append({"type": "response.output_text.delta", **part, "delta": word + " ", "logprobs": []})
        events.append({"type": "response.output_text.done", **part, "text": ANSWER, "logprobs": []})
        events.append({"type": "response.content_part.done", **part, "part": item["content"][0]})
        events.append({"type": "response.output_item.done", **place, "item": item})
    events.append({"type": "response.completed", "response": answer})
    chunks = [_sse({**e, "sequence_number": n}, e["type"]) for n, e in enumerate(events)]
    return StreamingResponse(_streamed(chunks, model), media_type="text/event-stream", headers=_ids())


async def embeddings(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model", ""))
    if (failure := await _misbehave(model)) is not None:
        return failure
    inputs = body.get("input")
    inputs = inputs if isinstance(inputs, list) else [inputs]
    vector = [0.25, -0.5, 0.75]
    data = []
    for index, _ in enumerate(inputs):
        if body.get("encoding_format") == "base64":  # what the official clients ask for
            embedding: Any = base64.b64encode(struct.pack("<3f", *vector)).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    prompt = _words(inputs) or len(inputs)
    return _json(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
    )


async def moderations(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model") or "omni-moderation-latest")
    if (failure := await _misbehave(model)) is not None:
        return failure
    result = {"flagged": False, "categories": {}, "category_scores": {}, "category_applied_input_types": {}}
    return _json({"id": "modr-" + uuid.uuid4().hex, "model": model, "results": [result]})


def images(multipart: bool) -> Any:
    async def answer(request: Request) -> Response:
        if multipart:
            form = await request.form()
            body: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        else:
            body = await request.json()
        model = str(body.get("model") or "dall-e-2")
        if (failure := await _misbehave(model)) is not None:
            return failure
        picture = base64.b64encode(b"fake image").decode()
        count = int(body.get("n") or 1)
        return _json({"created": int(time.time()), "data": [{"b64_json": picture}] * count})

    return answer


async def speech(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model", ""))
    if (failure := await _misbehave(model)) is not None:
        return failure
    sound = b"ID3fake-audio:" + str(body.get("input", "")).encode()
    return StreamingResponse(
        _streamed([sound[:8], sound[8:]], model), media_type="audio/mpeg", headers=_ids()
    )


async def transcriptions(request: Request) -> Response:
    """The audio lasts a millisecond per byte of the file sent."""
    form = await request.form()
    model = str(form.get("model") or "")
    if (failure := await _misbehave(model)) is not None:
        return failure
    upload = form.get("file")
    seconds = (upload.size or 0) / 1000 if upload is not None and not isinstance(upload, str) else 0.0
    kind = form.get("response_format") or "json"
    if kind == "text":
        return Response(ANSWER + "\n", media_type="text/plain", headers=_ids())
    if kind == "verbose_json":
        return _json(
            {"task": "transcribe", "language": "english", "duration": seconds, "text": ANSWER, "segments": []}
        )
    return _json({"text": ANSWER, "usage": {"type": "duration", "seconds": seconds}})


async def models(request: Request) -> Response:
    model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "openusage"}
    seen = {"x-fake-authorization": request.headers.get("authorization", "")}
    return _json({"object": "list", "data": [model]}, headers=seen)


def create_fake_upstream() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/moderations", moderations, methods=["POST"]),
            Route("/v1/images/generations", images(False), methods=["POST"]),
            Route("/v1/images/edits", images(True), methods=["POST"]),
            Route("/v1/images/variations", images(True), methods=["POST"]),
            Route("/v1/audio/speech", speech, methods=["POST"]),
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
            Route("/v1/audio/translations", transcriptions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
