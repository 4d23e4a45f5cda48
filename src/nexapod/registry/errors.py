"""Errors of the registry (users, nodes, runner releases) and of request authentication."""

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
    "release_conflict",
    "release_key_unknown",
    "release_manifest_invalid",
    "release_signature_invalid",
    "release_tree_hash_mismatch",
    "release_unknown",
    "releases_full",
    "replayed_request",
    "runner_not_released",
    "signature_invalid",
    "stats_snapshot_unknown",
    "stats_users_max_exceeded",
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


def release_manifest_invalid(reason: str) -> RegistryError:
    return RegistryError(
        "release_manifest_invalid", f"the release manifest is malformed: {reason}", status=422
    )


def release_key_unknown(key_id: str) -> RegistryError:
    return RegistryError(
        "release_key_unknown",
        f"the release is signed by key {key_id[:16]}…, which this coordinator does not trust: "
        "sign it with a configured release key, or add the key to release_public_keys",
        status=403,
        release_key_id=key_id,
    )


def release_signature_invalid() -> RegistryError:
    return RegistryError(
        "release_signature_invalid",
        "the release manifest's signature does not verify with its release_public_key: "
        "the manifest was changed after signing; sign the release again",
        status=403,
    )


def release_tree_hash_mismatch(claimed: str, computed: str) -> RegistryError:
    return RegistryError(
        "release_tree_hash_mismatch",
        f"the manifest claims tree hash {claimed} but its files hash to {computed}",
        status=422,
        tree_hash=claimed,
        files_tree_hash=computed,
    )


def release_conflict(tree_hash: str) -> RegistryError:
    return RegistryError(
        "release_conflict",
        f"another manifest of runner tree {tree_hash} is already published; "
        "fetch it with GET /v1/releases/{tree_hash} (a release is published once)",
        status=409,
        tree_hash=tree_hash,
    )


def release_unknown(tree_hash: str) -> RegistryError:
    return RegistryError(
        "release_unknown", f"no published release of runner tree {tree_hash}", status=404
    )


def releases_full(releases_max: int) -> RegistryError:
    return RegistryError(
        "releases_full",
        f"the coordinator holds {releases_max} releases, its releases_max; raise the setting "
        "to publish more",
        status=409,
        releases_max=releases_max,
    )


def runner_not_released(tree_hash: str) -> RegistryError:
    return RegistryError(
        "runner_not_released",
        f"this node runs runner tree {tree_hash}, which is not a signed release published on "
        "this coordinator: install a signed release of nexapod (then run `nexapod node "
        "register` again), or ask the coordinator's operator to publish this one "
        "(`nexapod release publish`)",
        status=403,
        runner_tree_hash=tree_hash,
    )


def stats_snapshot_unknown(snapshot_id: int) -> RegistryError:
    return RegistryError(
        "stats_snapshot_unknown",
        f"no leaderboard snapshot {snapshot_id}: it was never made or has been replaced by "
        "newer ones; start again from the newest (leave out the cursor or snapshot_id)",
        status=404,
        snapshot_id=snapshot_id,
    )


def stats_users_max_exceeded(users: int, users_max: int) -> RegistryError:
    return RegistryError(
        "stats_users_max_exceeded",
        f"the leaderboard snapshot would hold {users} contributors, more than stats_users_max "
        f"({users_max}); the operator must raise NEXAPOD_STATS_USERS_MAX (making a snapshot "
        "holds every contributor in memory, about 0.5 KB each)",
        status=503,
        users=users,
        users_max=users_max,
    )
