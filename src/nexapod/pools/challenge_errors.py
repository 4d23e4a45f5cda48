"""Refusals of challenge answers: each changes nothing (the outcomes are not errors)."""

from __future__ import annotations

from nexapod.errors import AuthError, PoolError

__all__ = [
    "challenge_mismatch",
    "challenge_node_mismatch",
    "challenge_not_yours",
    "challenge_signature_invalid",
    "challenge_unknown",
]


def challenge_unknown(challenge_id: str) -> PoolError:
    return PoolError("challenge_unknown", f"no challenge with id {challenge_id!r}", status=404)


def challenge_not_yours(challenge_id: str) -> PoolError:
    return PoolError(
        "challenge_not_yours", f"challenge {challenge_id} was issued to another node", status=403
    )


def challenge_mismatch(detail: str) -> PoolError:
    return PoolError("challenge_mismatch", detail, status=422)


def challenge_node_mismatch() -> AuthError:
    return AuthError(
        "challenge_node_mismatch",
        "the answer document names a node other than the request's signer",
        status=403,
    )


def challenge_signature_invalid() -> AuthError:
    return AuthError(
        "challenge_signature_invalid", "the answer's signature does not verify with the node key"
    )
