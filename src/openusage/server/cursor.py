"""Page cursors: opaque to clients, signed by the server, bound to the query.

A cursor pins the effective end of the first request (so "now" does not move between
pages), names the start of the next bucket, and carries a digest of the query's
parameters. The whole is signed with HMAC-SHA256, so an altered cursor, or one sent with
other parameters, is refused rather than answered with wrong data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

from .errors import bad_request

_PREFIX = "page_"
_LAYOUT = struct.Struct(">qq8s")
_MAC_BYTES = 16


@dataclass(frozen=True)
class Cursor:
    effective_end: int
    next_start: int


def query_digest(canonical: str) -> bytes:
    return hashlib.sha256(canonical.encode()).digest()[:8]


class CursorSigner:
    """Makes and checks cursors with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, cursor: Cursor, canonical_query: str) -> str:
        payload = _LAYOUT.pack(cursor.effective_end, cursor.next_start, query_digest(canonical_query))
        return _PREFIX + base64.urlsafe_b64encode(payload + self._mac(payload)).decode()

    def decode(self, token: str, canonical_query: str) -> Cursor:
        """The cursor in ``token``, or a 400 naming the ``page`` parameter."""
        invalid = bad_request(
            "Invalid 'page' cursor: pass the 'next_page' value of the previous response unchanged.",
            param="page",
        )
        if not token.startswith(_PREFIX) or len(token) > 200:
            raise invalid
        try:
            raw = base64.b64decode(token[len(_PREFIX) :].encode(), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise invalid from None
        # Only the canonical spelling: base64 leaves spare bits in its last character, and
        # a cursor with any character changed must be refused.
        if (
            len(raw) != _LAYOUT.size + _MAC_BYTES
            or base64.urlsafe_b64encode(raw).decode() != token[len(_PREFIX) :]
        ):
            raise invalid
        payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise invalid
        effective_end, next_start, digest = _LAYOUT.unpack(payload)
        if not hmac.compare_digest(digest, query_digest(canonical_query)):
            raise bad_request(
                "The 'page' cursor belongs to another query: send the same parameters "
                "as the request that returned it.",
                param="page",
            )
        return Cursor(effective_end=effective_end, next_start=next_start)
