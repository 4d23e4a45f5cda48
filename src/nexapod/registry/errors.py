"""Errors of the registry and of request authentication."""

from __future__ import annotations

from nexapod.errors import AuthError, RegistryError

__all__ = [
    "blacklist_entry_lifted",
    "blacklist_entry_unknown",
    "blacklisted",
    "fingerprint_taken",
    "lift_reason_invalid",
    "capacity_invalid",
    "key_unknown",
    "node_key_taken",
    "node_unknown",
    "replayed_request",
    "signature_invalid",
    "timestamp_skew",
    "user_key_taken",
    "user_unknown",
    "username_taken",
]


def capacity_invalid() -> RegistryError:
    return RegistryError(
        "capacity_invalid",
        "capacity_flops_per_s must be a positive integer: run the node's benchmark again",
        status=422,
    )


def username_taken(username: str) -> RegistryError:
    return RegistryError(
        "username_taken",
        f"the username {username!r} is registered with another key; choose another name",
        status=409,
    )


def user_key_taken() -> RegistryError:
    return RegistryError(
        "user_key_taken", "this public key already belongs to another user", status=409
    )


def node_key_taken() -> RegistryError:
    return RegistryError(
        "node_key_taken",
        "this node key is registered under another user or with another document; "
        "run `nexapod node init --force` to make a new node key",
        status=409,
    )


def user_unknown(username: str) -> RegistryError:
    return RegistryError(
        "user_unknown",
        f"no user named {username!r}: register it first (`nexapod node register --user NAME`)",
        status=404,
    )


def node_unknown(node_id: str) -> RegistryError:
    return RegistryError("node_unknown", f"no node with id {node_id!r}", status=404)


def signature_invalid(what: str) -> AuthError:
    return AuthError("signature_invalid", f"the signature on {what} does not verify")


def key_unknown(key_id: str) -> AuthError:
    return AuthError(
        "key_unknown",
        f"no registered key for signer {key_id!r}; the signer must be 'user:NAME' or "
        "'node:ID' of a registered user or node",
    )


def timestamp_skew(skew_s: int, skew_s_max: int) -> AuthError:
    return AuthError(
        "timestamp_skew",
        f"the request timestamp is {skew_s} s from the coordinator's clock "
        f"(at most {skew_s_max} s allowed): check the machine's clock",
        skew_s=skew_s,
    )


def replayed_request() -> AuthError:
    return AuthError(
        "replayed", "this request's nonce was already used: a request is accepted only once"
    )


def blacklisted(entry_id: int, reason_code: str) -> RegistryError:
    return RegistryError(
        "blacklisted",
        f"this node, its machine or its user is blacklisted (entry {entry_id}: {reason_code}); "
        "the coordinator's operator can review it with `nexapod admin blacklist show "
        f"{entry_id}`",
        status=403,
        entry_id=entry_id,
        reason_code=reason_code,
    )


def fingerprint_taken() -> RegistryError:
    return RegistryError(
        "fingerprint_taken",
        "this machine's hardware fingerprint is registered under another user: one machine "
        "belongs to one contributor (the attempt is recorded)",
        status=409,
    )


def blacklist_entry_unknown(entry_id: int) -> RegistryError:
    return RegistryError("blacklist_entry_unknown", f"no blacklist entry {entry_id}", status=404)


def blacklist_entry_lifted(entry_id: int) -> RegistryError:
    return RegistryError(
        "blacklist_entry_lifted", f"blacklist entry {entry_id} is already lifted", status=409
    )


def lift_reason_invalid(chars_max: int) -> RegistryError:
    return RegistryError(
        "lift_reason_invalid",
        f"lifting an entry needs a reason of 1 to {chars_max} characters",
        status=422,
    )
