"""Signed requests: read the signature headers and the raw body, check them in a unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from nexapod.crypto import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NONCE_HEX_CHARS,
    RequestSignature,
)
from nexapod.errors import AuthError
from nexapod.mesh import errors as mesh_errors
from nexapod.registry import service as registry
from nexapod.registry.rules import Principal
from nexapod.storage.uow import UnitOfWork

__all__ = ["SignedRequest", "SignedRequestDep", "authenticate", "require_node", "require_user"]


@dataclass(frozen=True)
class SignedRequest:
    signature: RequestSignature
    method: str
    path: str
    body: bytes


async def _signed_request(request: Request) -> SignedRequest:
    headers = request.headers
    missing = [
        name
        for name in (HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
        if name not in headers
    ]
    if missing:
        raise AuthError(
            "signature_missing",
            f"this request must be signed; missing header(s): {', '.join(missing)}",
        )
    timestamp_text = headers[HEADER_TIMESTAMP]
    nonce = headers[HEADER_NONCE]
    if not timestamp_text.isdigit() or len(timestamp_text) > 12:
        raise AuthError("signature_malformed", f"{HEADER_TIMESTAMP} must be whole seconds")
    if len(nonce) != NONCE_HEX_CHARS or any(c not in "0123456789abcdef" for c in nonce):
        raise AuthError(
            "signature_malformed", f"{HEADER_NONCE} must be {NONCE_HEX_CHARS} lower-case hex"
        )
    body = await request.body()
    path = request.url.path
    if request.url.query:
        path = f"{path}?{request.url.query}"
    signature = RequestSignature(
        key_id=headers[HEADER_KEY_ID],
        timestamp_s=int(timestamp_text),
        nonce=nonce,
        signature=headers[HEADER_SIGNATURE],
    )
    return SignedRequest(signature, request.method, path, body)


SignedRequestDep = Annotated[SignedRequest, Depends(_signed_request)]


def authenticate(
    uow: UnitOfWork,
    signed: SignedRequest,
    now_ms: int,
    skew_s_max: int,
    *,
    signature_checked: bool = False,
) -> Principal:
    """Check the request; a writable ``uow`` also records its nonce.

    ``signature_checked`` is for the write phase of a request whose signature the read
    phase already verified.
    """
    return registry.authenticate_request(
        uow,
        signed.signature,
        method=signed.method,
        path=signed.path,
        body=signed.body,
        now_ms=now_ms,
        skew_s_max=skew_s_max,
        record_nonce=not uow.read_only,
        signature_checked=signature_checked,
    )


def require_node(principal: Principal) -> str:
    if principal.kind != "node":
        raise mesh_errors.not_a_node()
    return principal.name


def require_user(principal: Principal) -> str:
    if principal.kind != "user":
        raise mesh_errors.not_a_user()
    return principal.name
