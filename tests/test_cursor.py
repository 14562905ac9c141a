"""Cursors: round trip, tampering, binding to the query."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openusage.server.cursor import Cursor, CursorSigner
from openusage.server.errors import ApiError

SIGNER = CursorSigner(b"k" * 32)


@given(end=st.integers(0, 2**62), start=st.integers(0, 2**62), query=st.text(max_size=50))
def test_round_trip(end: int, start: int, query: str) -> None:
    token = SIGNER.encode(Cursor(end, start), query)
    assert token.startswith("page_")
    assert SIGNER.decode(token, query) == Cursor(end, start)


def test_every_changed_character_is_refused() -> None:
    """Every position, every other base64 character: none may decode (spare bits included)."""
    alphabet = string.ascii_letters + string.digits + "-_="
    for end in (1_795_000_000, 1_795_000_123, 7):
        token = SIGNER.encode(Cursor(end, end - 86_400), "q")
        for index in range(len("page_"), len(token)):
            for char in alphabet:
                if char != token[index]:
                    with pytest.raises(ApiError):
                        SIGNER.decode(token[:index] + char + token[index + 1 :], "q")


def test_other_query_other_secret_and_tampering_are_refused() -> None:
    token = SIGNER.encode(Cursor(100, 50), "q")
    with pytest.raises(ApiError, match="another query") as other:
        SIGNER.decode(token, "q2")
    assert other.value.param == "page" and other.value.status == 400
    with pytest.raises(ApiError):
        CursorSigner(b"x" * 32).decode(token, "q")
    for bad in ("", "page_", "page_!!!!", token[:-2], token + "AA", "x" + token, "page_" + "A" * 500):
        with pytest.raises(ApiError) as refused:
            SIGNER.decode(bad, "q")
        assert refused.value.param == "page"
