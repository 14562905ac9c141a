"""A full disk: batches are refused with 507 and nothing acknowledged is lost, reads go on,
/health says degraded, and writes resume by themselves once there is room again. The
database lives on a small tmpfs (mounted as root, as the tests run in CI)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import DAY, Server, start_server, stop_server

DAY0 = 1_700_006_400


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def batch(n: int) -> list[dict[str, object]]:
    return [
        {"id": f"b{n}-{i}", "type": "embeddings", "timestamp": DAY0 + n, "input_tokens": 1, "model": "m"}
        for i in range(1000)
    ]


def total(server: Server) -> int:
    page = server.page("/organization/usage/embeddings", {"start_time": DAY0, "end_time": DAY0 + DAY})
    return sum(r["input_tokens"] for b in page["data"] for r in b["results"])


def test_a_full_disk_refuses_writes_keeps_reads_and_recovers(small_disk: Path) -> None:
    server = start_server(small_disk, "--lookback-days", "0")
    filler = small_disk / "filler"
    try:
        acknowledged = 0
        assert server.ingest_ok(batch(0))["inserted"] == 1000
        acknowledged += 1000
        # Leave the disk almost full: a write that met it would invalidate the database.
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        with filler.open("wb") as f:
            f.write(b"\0" * (free - 3 * 2**20))
        refused = server.ingest(batch(1))
        assert refused.status_code == 507, refused.text
        # The message says how much room there is and how much a write needs, in MiB.
        said = re.search(r"has (\d+) MiB free; writes need (\d+) MiB", refused.json()["error"]["message"])
        assert said is not None, refused.text
        left = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize // 2**20
        assert abs(int(said[1]) - left) <= 1
        assert 64 <= int(said[2]) < 128  # 64 MiB spare, the log and the batch: a few MiB here
        health = httpx.get(server.base_url + "/health").json()
        assert health["status"] == "degraded" and "free" in health["reason"]
        assert total(server) == acknowledged  # reads go on, and nothing acknowledged is lost
        filler.unlink()  # room again: no restart needed
        assert server.ingest_ok(batch(1))["inserted"] == 1000
        acknowledged += 1000
        assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
        assert total(server) == acknowledged
    finally:
        stop_server(server)
    again = start_server(small_disk, "--lookback-days", "0")
    try:
        assert total(again) == 2000
    finally:
        stop_server(again)
