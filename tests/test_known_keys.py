"""A key used again is checked without reading the key file, until the file changes: a
revoked key still stops at once, whoever revokes it, and a read that a revocation
overtook is not kept."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from openusage.keyring import ApiKey, Keyring
from openusage.server import create_app
from openusage.settings import Settings

DAY0 = 1_709_251_200


class CountingKeyring(Keyring):
    """The real key file, counting the lookups that read it."""

    reads = 0

    def find(self, secret: str) -> ApiKey | None:
        self.reads += 1
        return super().find(secret)


@pytest.fixture
def keyring(tmp_path: Path) -> CountingKeyring:
    return CountingKeyring(tmp_path / "keys.sqlite")


@pytest.fixture
def http(tmp_path: Path, keyring: CountingKeyring) -> Iterator[TestClient]:
    app = create_app(Settings(db_path=tmp_path / "known.duckdb", lookback_days=None), keyring=keyring)
    with TestClient(app, base_url="http://test/v1") as client:
        yield client


def send(http: TestClient, secret: str, number: int) -> httpx.Response:
    event = {"id": f"e-{number}", "type": "embeddings", "timestamp": DAY0 + number, "input_tokens": 1}
    return http.post(
        "/organization/usage/events", json={"events": [event]}, headers={"Authorization": f"Bearer {secret}"}
    )


def test_a_key_used_again_is_read_from_the_file_only_after_the_file_changes(
    tmp_path: Path, keyring: CountingKeyring, http: TestClient
) -> None:
    key, secret = keyring.create("ingest")
    assert [send(http, secret, n).status_code for n in range(5)] == [200] * 5
    assert keyring.reads == 1
    # Another process's connection, as `openusage keys` has.
    other = Keyring(tmp_path / "keys.sqlite")
    _, second = other.create("ingest")
    assert send(http, second, 5).status_code == 200, "a new key works at once"
    assert send(http, secret, 6).status_code == 200
    assert keyring.reads == 3, "the file changed: each key read once again"
    assert other.revoke(key.id)
    assert send(http, secret, 7).status_code == 401, "a revoked key stops at once"
    assert send(http, second, 8).status_code == 200


def test_a_read_a_revocation_overtook_is_not_kept(
    tmp_path: Path, keyring: CountingKeyring, http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request reads the key; before it is answered the key is revoked and a second
    request learns so. The first request's read is not kept: a third is refused."""
    key, secret = keyring.create("ingest")
    read, go = threading.Event(), threading.Event()
    original = keyring.find

    def first_held(token: str) -> ApiKey | None:
        found = original(token)
        if not read.is_set():
            read.set()
            go.wait(30)
        return found

    monkeypatch.setattr(keyring, "find", first_held)
    answers: dict[str, Any] = {}
    first = threading.Thread(target=lambda: answers.setdefault("first", send(http, secret, 0)))
    first.start()
    assert read.wait(30)
    assert Keyring(tmp_path / "keys.sqlite").revoke(key.id)
    assert send(http, secret, 1).status_code == 401
    go.set()
    first.join(30)
    assert answers["first"].status_code == 200  # it was read before the revocation
    assert send(http, secret, 2).status_code == 401
