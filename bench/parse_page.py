"""Parse one large completions page (31 buckets x 500 results) with our models and with the
official ``openai`` client's, in the same run, and print the times and their ratio.

    .venv/bin/python bench/parse_page.py [--buckets 31] [--results 500] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import random
import timeit
from typing import Any

import httpx
from openai._models import construct_type
from openai.types.admin.organization.usage_completions_response import UsageCompletionsResponse

from openusage.catalogue import USAGE_KINDS
from openusage.client.core import parse_page
from openusage.client.pages import UsagePage

COMPLETIONS = USAGE_KINDS["completions"]


def large_page(buckets: int, results: int) -> bytes:
    rng = random.Random(1)
    data: list[dict[str, Any]] = []
    for b in range(buckets):
        rows = []
        for r in range(results):
            row: dict[str, Any] = {"object": COMPLETIONS.result_object}
            row.update({m: rng.randrange(10**6) for m in COMPLETIONS.metric_names})
            row.update(project_id=f"proj_{r % 50}", user_id=f"user-{r}", api_key_id=f"key_{r % 20}")
            row.update(model=f"model-{r % 10}", batch=r % 2 == 0, service_tier="default")
            rows.append(row)
        data.append(
            {"object": "bucket", "start_time": b * 86400, "end_time": (b + 1) * 86400, "results": rows}
        )
    return json.dumps({"object": "page", "data": data, "has_more": False, "next_page": None}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--buckets", type=int, default=31)
    parser.add_argument("--results", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    body = large_page(args.buckets, args.results)
    response = httpx.Response(200, content=body, headers={"content-type": "application/json"})
    candidates = {
        "openusage (validated)": lambda: parse_page(UsagePage, COMPLETIONS, response),
        "openai default (constructed, unvalidated)": lambda: construct_type(
            value=json.loads(body), type_=UsageCompletionsResponse
        ),
        "openai strict (validated)": lambda: UsageCompletionsResponse.model_validate(json.loads(body)),
    }
    print(f"page: {args.buckets} buckets x {args.results} results, {len(body) / 1e6:.1f} MB")
    times = {}
    for name, parse in candidates.items():
        parse()  # warm up caches and lazily built validators
        times[name] = min(timeit.repeat(parse, number=1, repeat=args.repeat))
        print(f"{name:45s} {times[name] * 1000:8.1f} ms")
    ours = times["openusage (validated)"]
    for name, seconds in times.items():
        if name != "openusage (validated)":
            print(f"ratio {name} / openusage: {seconds / ours:.2f}x")


if __name__ == "__main__":
    main()
