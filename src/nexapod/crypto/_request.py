"""Signatures on HTTP requests that act for a user or a node.

A signed request carries four headers:

    NexaPod-Key-Id      the signer: a username or a node id
    NexaPod-Timestamp   seconds since the Unix epoch, as a decimal integer
    NexaPod-Nonce       32 random hex characters, never reused by the signer
    NexaPod-Signature   Ed25519 over the canonical JSON of the request statement

The statement binds the method, the path with its query, the SHA-256 of the body,
the timestamp, the nonce and the signer, so no part can be changed or moved to
another request. The coordinator refuses a timestamp outside its skew window and a
nonce it has already seen from that signer inside the window (a replay).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from nexapod.crypto._canonical import canonical_json, sha256_hex
from nexapod.crypto._keys import SigningKey, verify_signature

__all__ = [
    "HEADER_KEY_ID",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "NONCE_HEX_CHARS",
    "RequestSignature",
    "request_statement",
    "sign_request",
    "verify_request",
]

HEADER_KEY_ID = "NexaPod-Key-Id"
HEADER_TIMESTAMP = "NexaPod-Timestamp"
HEADER_NONCE = "NexaPod-Nonce"
HEADER_SIGNATURE = "NexaPod-Signature"
NONCE_HEX_CHARS = 32


@dataclass(frozen=True)
class RequestSignature:
    """The signature headers of one request."""

    key_id: str
    timestamp_s: int
    nonce: str
    signature: str

    def headers(self) -> dict[str, str]:
        return {
            HEADER_KEY_ID: self.key_id,
            HEADER_TIMESTAMP: str(self.timestamp_s),
            HEADER_NONCE: self.nonce,
            HEADER_SIGNATURE: self.signature,
        }


def request_statement(
    *, method: str, path: str, body: bytes, key_id: str, timestamp_s: int, nonce: str
) -> bytes:
    """The bytes a request signature covers."""
    return canonical_json(
        {
            "purpose": "nexapod.request.v1",
            "method": method.upper(),
            "path": path,
            "body_sha256": sha256_hex(body),
            "key_id": key_id,
            "timestamp": timestamp_s,
            "nonce": nonce,
        }
    )


def sign_request(
    key: SigningKey, *, key_id: str, method: str, path: str, body: bytes, timestamp_s: int
) -> RequestSignature:
    """Sign one request; ``timestamp_s`` comes from the caller's clock."""
    nonce = secrets.token_hex(NONCE_HEX_CHARS // 2)
    statement = request_statement(
        method=method, path=path, body=body, key_id=key_id, timestamp_s=timestamp_s, nonce=nonce
    )
    return RequestSignature(key_id, timestamp_s, nonce, key.sign(statement))


def verify_request(
    public_key_b64: str,
    signature: RequestSignature,
    *,
    method: str,
    path: str,
    body: bytes,
) -> bool:
    """True when ``signature`` covers this method, path and body."""
    statement = request_statement(
        method=method,
        path=path,
        body=body,
        key_id=signature.key_id,
        timestamp_s=signature.timestamp_s,
        nonce=signature.nonce,
    )
    return verify_signature(public_key_b64, signature.signature, statement)
