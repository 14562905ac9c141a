"""An acknowledged event survives the server being killed the moment after."""

from __future__ import annotations

import signal
from pathlib import Path

from .conftest import DAY, event, start_server, stop_server


def test_acknowledged_events_survive_sigkill_exactly_once(tmp_path: Path) -> None:
    running = start_server(tmp_path, "--lookback-days", "0")
    day0 = running.window(1)
    batches = [
        [event("embeddings", day0 + b * 100 + i, f"dur-{b}-{i}", input_tokens=1) for i in range(500)]
        for b in range(6)
    ]
    for batch in batches:
        assert running.ingest_ok(batch)["inserted"] == 500
    running.process.send_signal(signal.SIGKILL)
    running.process.wait()

    restarted = start_server(tmp_path, "--lookback-days", "0")
    try:
        params = {"start_time": day0, "end_time": day0 + DAY}
        page = restarted.page("/organization/usage/embeddings", params)
        assert page["data"][0]["results"][0]["input_tokens"] == 3000
        # Retrying every batch after the crash adds nothing.
        for batch in batches:
            assert restarted.ingest_ok(batch)["duplicates"] == 500
        assert restarted.page("/organization/usage/embeddings", params) == page
    finally:
        stop_server(restarted)
