"""The event checker's exact limits, at a fixed clock (the server's clock moves, so its
own tests keep clear of the edges). Found by mutation testing of server/events.py: each
limit is tested on both sides of its edge."""

from __future__ import annotations

from typing import Any

import pytest

from openusage.catalogue import USAGE_KINDS
from openusage.server.errors import ApiError
from openusage.server.events import (
    EARLIEST_TIMESTAMP,
    MAX_STRING_LENGTH,
    EventRules,
    check_batch_size,
    parse_events,
)
from openusage.store.base import COLUMNS

NOW = 1_800_000_000
RULES = EventRules(now=NOW)


def stored(**fields: Any) -> dict[str, Any]:
    """The event as the store gets it, by column name."""
    event = {"id": "e1", "type": "completions", "timestamp": NOW, **fields}
    (row,) = parse_events([event], RULES)
    return dict(zip(COLUMNS, row, strict=True))


def refused(**fields: Any) -> str:
    with pytest.raises(ApiError) as caught:
        stored(**fields)
    assert caught.value.status == 400
    return str(caught.value.param)


def test_timestamps_from_2000_to_a_day_ahead() -> None:
    assert stored(timestamp=EARLIEST_TIMESTAMP)["ts"] == EARLIEST_TIMESTAMP
    assert refused(timestamp=EARLIEST_TIMESTAMP - 1) == "events[0].timestamp"
    assert stored(timestamp=NOW + 86_400)["ts"] == NOW + 86_400
    assert refused(timestamp=NOW + 86_401) == "events[0].timestamp"


def test_a_fractional_timestamp_is_rounded_down_and_infinity_refused() -> None:
    assert stored(timestamp=NOW - 0.5)["ts"] == NOW - 1
    assert refused(timestamp=float("inf")) == "events[0].timestamp"
    assert refused(timestamp=float("nan")) == "events[0].timestamp"


def test_strings_hold_up_to_256_characters() -> None:
    longest = "x" * MAX_STRING_LENGTH
    assert stored(id=longest, model=longest)["model"] == longest
    assert refused(model="x" * (MAX_STRING_LENGTH + 1)) == "events[0].model"
    assert refused(id="x" * (MAX_STRING_LENGTH + 1)) == "events[0].id"


def test_a_metric_may_reach_its_maximum_and_no_further() -> None:
    (maximum,) = {m.maximum for m in USAGE_KINDS["completions"].metrics if m.name == "output_tokens"}
    assert stored(output_tokens=maximum)["output_tokens"] == maximum
    assert refused(output_tokens=maximum + 1) == "events[0].output_tokens"


def test_dimensions_after_a_boolean_one_are_kept() -> None:
    row = stored(batch=True, service_tier="flex", model="m", project_id="p")
    assert (row["batch"], row["service_tier"], row["model"], row["project_id"]) == (True, "flex", "m", "p")


def test_a_part_of_one_token_over_its_total_is_named() -> None:
    assert refused(input_tokens=0, input_cached_tokens=1) == "events[0].input_cached_tokens"


def test_a_batch_holds_one_to_the_limit_of_events() -> None:
    check_batch_size(1, 10)
    check_batch_size(10, 10)
    with pytest.raises(ApiError) as empty:
        check_batch_size(0, 10)
    with pytest.raises(ApiError) as over:
        check_batch_size(11, 10)
    assert (empty.value.status, over.value.status) == (400, 413)
