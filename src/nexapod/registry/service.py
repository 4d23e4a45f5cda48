"""Use cases of the registry: register users and nodes, authenticate signed requests."""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from nexapod.crypto import (
    RequestSignature,
    canonical_json,
    sha256_hex,
    verify_document,
    verify_request,
)
from nexapod.ledger import log_store
from nexapod.mesh.store import ResultRow
from nexapod.protocol.v1 import (
    PURPOSE_NODE,
    PURPOSE_NODE_AUTHORIZATION,
    PURPOSE_USER,
    HardwareProfile,
    NodeView,
    RegisterNodeRequest,
    RegisterUserRequest,
    UserView,
)
from nexapod.registry import blacklist, errors
from nexapod.registry.releases import ReleasePolicy, require_released
from nexapod.registry.rules import Principal, node_id_for_key, parse_signer, skew_s
from nexapod.registry.store import BlacklistRow, NodeRow, RequestNonceRow, UserRow
from nexapod.storage.uow import UnitOfWork

__all__ = [
    "authenticate_request",
    "get_node",
    "get_user",
    "prune_nonces",
    "register_node",
    "register_user",
]


def register_user(uow: UnitOfWork, request: RegisterUserRequest, now_ms: int) -> UserView:
    """Register a username and key from a self-signed document (idempotent)."""
    document = request.document.model_dump()
    if not verify_document(document["public_key"], request.signature, PURPOSE_USER, document):
        raise errors.signature_invalid("the user registration document")
    session = uow.session
    existing = session.get(UserRow, request.document.username)
    if existing is not None:
        if existing.public_key != request.document.public_key:
            raise errors.username_taken(request.document.username)
        return _user_view(uow, existing)
    by_key = session.scalar(select(UserRow).where(UserRow.public_key == document["public_key"]))
    if by_key is not None:
        raise errors.user_key_taken()
    canonical = canonical_json(document)
    row = UserRow(
        username=request.document.username,
        public_key=request.document.public_key,
        registration_document=canonical.decode(),
        registration_signature=request.signature,
        registration_sha256=sha256_hex(canonical),
        registered_at_ms=now_ms,
    )
    session.add(row)
    view = _user_view(uow, row)
    uow.commit()
    return view


def register_node(
    uow: UnitOfWork, request: RegisterNodeRequest, now_ms: int, releases: ReleasePolicy
) -> NodeView:
    """Register a node: its document signed by the node key and by its owner (idempotent).

    When release keys are configured, the runner tree it reports must be a published
    release (checked after the signatures, so a forged request learns nothing).
    """
    document = request.document.model_dump()
    node_key = request.document.node_public_key
    if int(request.document.capacity_flops_per_s) <= 0:
        raise errors.capacity_invalid()
    if not verify_document(node_key, request.node_signature, PURPOSE_NODE, document):
        raise errors.signature_invalid("the node registration document (node key)")
    session = uow.session
    user = session.get(UserRow, request.document.username)
    if user is None:
        raise errors.user_unknown(request.document.username)
    if not verify_document(
        user.public_key, request.user_signature, PURPOSE_NODE_AUTHORIZATION, document
    ):
        raise errors.signature_invalid("the node registration document (user key)")
    require_released(uow, request.document.runner_tree_hash, releases)
    node_id = node_id_for_key(node_key)
    listed = blacklist.active_entry(
        session, node_id=node_id, fingerprint=request.document.fingerprint, username=user.username
    )
    if listed is not None:
        raise errors.blacklisted(listed.entry_id, listed.reason_code)
    owner = session.scalar(
        select(NodeRow.username)
        .where(
            NodeRow.fingerprint == request.document.fingerprint,
            NodeRow.username != user.username,
        )
        .limit(1)
    )
    if owner is not None:
        _flag_fingerprint(uow, request.document.fingerprint, user.username, owner, now_ms)
        raise errors.fingerprint_taken()
    canonical = canonical_json(document).decode()
    existing = session.get(NodeRow, node_id)
    if existing is not None:
        if existing.username != user.username:
            raise errors.node_key_taken()
        _update_node(existing, request, canonical, now_ms)
    else:
        existing = NodeRow(
            node_id=node_id,
            username=user.username,
            public_key=node_key,
            registered_at_ms=now_ms,
        )
        _update_node(existing, request, canonical, now_ms)
        session.add(existing)
    view = _node_view(uow, existing)
    uow.commit()
    return view


def _flag_fingerprint(
    uow: UnitOfWork, fingerprint: str, username: str, owner: str, now_ms: int
) -> None:
    """Record, in the ledger's log, an attempt to register one machine under a second
    user; committed on its own, since the registration itself is refused."""
    uow.session.rollback()
    body = {"fingerprint": fingerprint, "username": username, "owner": owner, "at_ms": now_ms}
    log_store.append_entries(uow.session, "identity_flagged", [body])
    uow.commit()


def _update_node(row: NodeRow, request: RegisterNodeRequest, canonical: str, now_ms: int) -> None:
    """A re-registration refreshes the profile, capacity and runner of a known node."""
    row.registration_document = canonical
    row.node_signature = request.node_signature
    row.user_signature = request.user_signature
    row.fingerprint = request.document.fingerprint
    row.capacity_flops_per_s = int(request.document.capacity_flops_per_s)
    row.runner_tree_hash = request.document.runner_tree_hash
    row.last_seen_at_ms = now_ms


def get_user(uow: UnitOfWork, username: str) -> UserView:
    row = uow.session.get(UserRow, username)
    if row is None:
        raise errors.user_unknown(username)
    return _user_view(uow, row)


def get_node(uow: UnitOfWork, node_id: str) -> NodeView:
    row = uow.session.get(NodeRow, node_id)
    if row is None:
        raise errors.node_unknown(node_id)
    return _node_view(uow, row)


def authenticate_request(
    uow: UnitOfWork,
    signature: RequestSignature,
    *,
    method: str,
    path: str,
    body: bytes,
    now_ms: int,
    skew_s_max: int,
    record_nonce: bool = True,
    signature_checked: bool = False,
) -> Principal:
    """Check a signed request and record its nonce, in the caller's unit of work.

    The nonce is written in the same transaction as the request's effect, so a request
    that fails changes nothing, not even the nonce table. ``record_nonce=False`` checks
    everything but writes nothing: a read-only unit of work uses it to refuse bad
    requests before any expensive work, and the write that follows checks again;
    ``signature_checked=True`` lets that second check skip the signature it just verified
    for this very request (timestamp, signer and nonce are still checked).
    """
    principal = parse_signer(signature.key_id)
    if principal is None:
        raise errors.key_unknown(signature.key_id)
    skew = skew_s(signature.timestamp_s, now_ms)
    if skew > skew_s_max:
        raise errors.timestamp_skew(skew, skew_s_max)
    public_key, listed = _signer(uow, principal)
    if public_key is None:
        raise errors.key_unknown(signature.key_id)
    if not signature_checked and not verify_request(
        public_key, signature, method=method, path=path, body=body
    ):
        raise errors.signature_invalid("the request")
    if listed is not None:
        raise errors.blacklisted(listed.entry_id, listed.reason_code)
    session = uow.session
    if session.get(RequestNonceRow, (signature.key_id, signature.nonce)) is not None:
        raise errors.replayed_request()
    if not record_nonce:
        return principal
    expires_at_ms = (signature.timestamp_s + skew_s_max + 1) * 1000
    session.add(
        RequestNonceRow(key_id=signature.key_id, nonce=signature.nonce, expires_at_ms=expires_at_ms)
    )
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent request with the same nonce won
        raise errors.replayed_request() from exc
    return principal


def prune_nonces(uow: UnitOfWork, now_ms: int) -> int:
    """Forget nonces whose timestamps can no longer pass the skew check."""
    result = uow.session.execute(
        delete(RequestNonceRow).where(RequestNonceRow.expires_at_ms < now_ms)
    )
    uow.commit()
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count


def _signer(uow: UnitOfWork, principal: Principal) -> tuple[str | None, BlacklistRow | None]:
    """The signer's public key (None: unknown) and its active blacklist entry, if any."""
    session = uow.session
    if principal.kind == "user":
        user = session.get(UserRow, principal.name)
        if user is None:
            return None, None
        return user.public_key, blacklist.active_entry(session, username=user.username)
    node = session.get(NodeRow, principal.name)
    if node is None:
        return None, None
    listed = blacklist.active_entry(
        session, node_id=node.node_id, fingerprint=node.fingerprint, username=node.username
    )
    return node.public_key, listed


def _user_view(uow: UnitOfWork, row: UserRow) -> UserView:
    node_ids = uow.session.scalars(
        select(NodeRow.node_id).where(NodeRow.username == row.username).order_by(NodeRow.node_id)
    ).all()
    return UserView(
        username=row.username,
        public_key=row.public_key,
        registration_sha256=row.registration_sha256,
        registered_at_ms=row.registered_at_ms,
        node_ids=list(node_ids),
    )


def _node_view(uow: UnitOfWork, row: NodeRow) -> NodeView:
    uow.session.flush()
    units_done, verified_flops = uow.session.execute(
        select(func.count(), func.coalesce(func.sum(ResultRow.work_flops), 0)).where(
            ResultRow.node_id == row.node_id, ResultRow.status == "valid"
        )
    ).one()
    document = json.loads(row.registration_document)
    return NodeView(
        node_id=row.node_id,
        username=row.username,
        fingerprint=row.fingerprint,
        capacity_flops_per_s=row.capacity_flops_per_s,
        runner_tree_hash=row.runner_tree_hash,
        profile=HardwareProfile.model_validate(document["profile"]),
        registered_at_ms=row.registered_at_ms,
        last_seen_at_ms=row.last_seen_at_ms,
        verified_flops=int(verified_flops),
        units_done=int(units_done),
    )
