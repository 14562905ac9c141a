"""Realistic synthetic usage for every kind: something to look at on a new server.

A few projects, each with its users, keys and models; traffic that follows the working
day (UTC) and the week; token counts from long-tailed distributions, prompt caching,
batch jobs and service tiers; images, audio, embeddings, moderations, tool calls and
vector stores that grow. Each hour is generated from its own seed and its events have
ids derived from it, so running the demo again adds only the hours that are new.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HOUR = 3600

COMPLETION_MODELS = {
    "gpt-5": 0.18,
    "gpt-5-mini": 0.30,
    "gpt-5-nano": 0.12,
    "gpt-4.1": 0.10,
    "gpt-4.1-mini": 0.12,
    "gpt-4o-mini": 0.10,
    "o4-mini": 0.05,
    "gpt-4o-audio-preview": 0.03,
}
SERVICE_TIERS = {"default": 0.82, "flex": 0.08, "priority": 0.07, "scale": 0.03}
#: models OpenAI offers no priority tier or prompt caching for, so the demo uses neither
NO_PRIORITY = frozenset({"gpt-5-nano", "gpt-4o-audio-preview"})
NO_CACHING = frozenset({"gpt-4o-audio-preview"})
# Events per hour at the daily peak, on a weekday.
PEAK_RATE = {
    "completions": 60.0,
    "decisions": 6.0,
    "embeddings": 12.0,
    "moderations": 8.0,
    "images": 2.0,
    "audio_speeches": 2.0,
    "audio_transcriptions": 2.0,
    "code_interpreter_sessions": 1.0,
    "file_search_calls": 4.0,
    "web_search_calls": 4.0,
}


@dataclass(frozen=True)
class Project:
    id: str
    users: tuple[str, ...]
    keys: tuple[str, ...]
    vector_stores: tuple[str, ...]
    weight: float


def _token(rng: random.Random, n: int) -> str:
    return "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n)
    )


def make_projects(seed: int = 7) -> list[Project]:
    rng = random.Random(seed)
    projects = []
    for weight in (0.5, 0.25, 0.15, 0.1):
        projects.append(
            Project(
                id="proj_" + _token(rng, 24),
                users=tuple("user-" + _token(rng, 24) for _ in range(rng.randint(2, 5))),
                keys=tuple("key_" + _token(rng, 16) for _ in range(rng.randint(1, 3))),
                vector_stores=tuple("vs_" + _token(rng, 24) for _ in range(rng.randint(1, 3))),
                weight=weight,
            )
        )
    return projects


def activity(ts: int) -> float:
    """How busy an hour is, 0..1: a working-day curve peaking at 16:00 UTC, quieter weekends."""
    hour = (ts % 86400) / HOUR
    daily = 0.15 + 0.85 * math.exp(-(((hour - 16) / 4.5) ** 2))
    weekday = (ts // 86400 + 3) % 7  # 0 = Monday
    return daily * (0.35 if weekday >= 5 else 1.0)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method is fine for the small means of one hour.
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _completion(rng: random.Random, model: str) -> dict[str, Any]:
    input_tokens = max(20, int(rng.lognormvariate(math.log(1800), 1.1)))
    output_tokens = max(1, int(rng.lognormvariate(math.log(350), 0.9)))
    cached = 0
    if input_tokens > 1024 and rng.random() < 0.55 and model not in NO_CACHING:
        cached = min(input_tokens - 64, 128 * rng.randint(4, input_tokens // 128))
    event: dict[str, Any] = {
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_cached_tokens": cached,
        "batch": rng.random() < 0.07,
    }
    tier = "default" if event["batch"] else _pick(rng, SERVICE_TIERS)
    event["service_tier"] = "default" if tier == "priority" and model in NO_PRIORITY else tier
    event["api_source"] = "agents_api" if rng.random() < 0.15 else "unlabeled"
    uncached = input_tokens - cached
    if uncached > 2048 and rng.random() < 0.3 and model not in NO_CACHING:
        # Prompt cache writes: most kept 30 minutes, some for 12 hours.
        written = rng.randint(1024, uncached - 512)
        long_kept = written if rng.random() < 0.25 else 0
        event.update(input_cache_write_30m_tokens=written - long_kept, input_cache_write_12h_tokens=long_kept)
        uncached -= written
    if model == "gpt-4o-audio-preview":
        audio_in = rng.randint(0, uncached // 2)
        audio_out = rng.randint(0, output_tokens // 2)
        event.update(input_audio_tokens=audio_in, output_audio_tokens=audio_out)
    elif rng.random() < 0.1:
        event["input_image_tokens"] = rng.randint(0, uncached // 2)
    return event


def _usage_event(rng: random.Random, kind: str, project: Project) -> dict[str, Any]:
    who = {
        "project_id": project.id,
        "user_id": rng.choice(project.users),
        "api_key_id": rng.choice(project.keys),
    }
    if kind == "completions":
        return who | _completion(rng, _pick(rng, COMPLETION_MODELS))
    if kind == "decisions":
        return who | _completion(rng, rng.choice(["gpt-5-mini", "gpt-5-mini", "gpt-5"]))
    if kind == "embeddings":
        model = rng.choice(["text-embedding-3-small", "text-embedding-3-small", "text-embedding-3-large"])
        return who | {"model": model, "input_tokens": int(rng.lognormvariate(math.log(2000), 1.0)) + 1}
    if kind == "moderations":
        return who | {
            "model": "omni-moderation-latest",
            "input_tokens": int(rng.lognormvariate(math.log(300), 0.8)) + 1,
        }
    if kind == "images":
        model = rng.choice(["gpt-image-1", "gpt-image-1", "dall-e-3"])
        sizes = (
            ["1024x1024", "1024x1536", "1536x1024"]
            if model == "gpt-image-1"
            else ["1024x1024", "1024x1792", "1792x1024"]
        )
        source = (
            "image.generation"
            if model == "dall-e-3"
            else rng.choice(["image.generation", "image.generation", "image.edit"])
        )
        return who | {
            "model": model,
            "size": rng.choice(sizes),
            "source": source,
            "images": rng.choice([1, 1, 1, 2, 4]),
        }
    if kind == "audio_speeches":
        return who | {
            "model": rng.choice(["tts-1", "tts-1", "tts-1-hd"]),
            "characters": rng.randint(80, 4000),
        }
    if kind == "audio_transcriptions":
        return who | {"model": rng.choice(["gpt-4o-transcribe", "whisper-1"]), "seconds": rng.randint(3, 900)}
    if kind == "code_interpreter_sessions":
        return {"project_id": project.id, "num_sessions": 1}
    if kind == "file_search_calls":
        return who | {
            "vector_store_id": rng.choice(project.vector_stores),
            "num_requests": rng.choice([1, 1, 2]),
        }
    if kind == "web_search_calls":
        return who | {
            "model": rng.choice(["gpt-5", "gpt-5-mini", "gpt-4.1"]),
            "context_level": rng.choice(["low", "medium", "medium", "high"]),
            "num_requests": rng.choice([1, 1, 2, 3]),
            "api_source": "agents_api" if rng.random() < 0.3 else "unlabeled",
        }
    raise ValueError(kind)


def demo_events(start: int, end: int, *, seed: int = 7, scale: float = 1.0) -> Iterator[dict[str, Any]]:
    """Events for every usage kind from ``start`` to ``end`` (unix seconds)."""
    projects = make_projects(seed)
    weights = [p.weight for p in projects]
    store_sizes = {vs: 0 for p in projects for vs in p.vector_stores}
    hour = start - start % HOUR
    while hour < end:
        rng = random.Random(f"{seed}:{hour}")
        level = activity(hour)
        for kind, peak in PEAK_RATE.items():
            for n in range(_poisson(rng, peak * level * scale)):
                ts = hour + rng.randrange(HOUR)
                if not start <= ts < end:
                    continue
                project = rng.choices(projects, weights=weights)[0]
                yield {"id": f"demo-{kind}-{hour}-{n}", "type": kind, "timestamp": ts} | _usage_event(
                    rng, kind, project
                )
        if hour % (6 * HOUR) == 0:
            # Vector stores report their size every six hours, and grow on the whole.
            for project in projects:
                for vs in project.vector_stores:
                    store_sizes[vs] = max(0, store_sizes[vs] + int(rng.gauss(40e6, 25e6)))
                    yield {
                        "id": f"demo-vector_stores-{hour}-{vs}",
                        "type": "vector_stores",
                        "timestamp": max(start, hour),
                        "project_id": project.id,
                        "vector_store_id": vs,
                        "usage_bytes": store_sizes[vs],
                    }
        hour += HOUR
