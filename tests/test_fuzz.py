"""Schemathesis fuzzes every operation of the server's own OpenAPI document: whatever it
sends, valid or not, the server never fails with a 5xx and every answer matches the
document (status codes, content type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from openusage.server.openapi import openapi_document

from .conftest import ADMIN_KEY, Server, start_server, stop_server

schema = schemathesis.openapi.from_dict(openapi_document())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> Iterator[Server]:
    """A server of its own on each store: the fuzzer's events land anywhere in time."""
    running = start_server(tmp_path_factory.mktemp("fuzz"), "--lookback-days", "0", store=store_kind)
    yield running
    stop_server(running)


@schema.parametrize()
# A module-scoped server is shared by the examples on purpose; a server round trip is slow.
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_server_errors_and_answers_match_the_document(
    case: schemathesis.Case, fuzzed_server: Server
) -> None:
    case.call_and_validate(
        base_url=fuzzed_server.api, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, checks=CHECKS
    )
