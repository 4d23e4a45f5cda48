"""Use cases of runner releases: publish a signed manifest, list and fetch them, admit runners.

The release signature is the authority (no request signature is needed to publish): a
manifest is accepted when one of the coordinator's configured release keys signed it and
its files give its tree hash. When no key is configured, admission is open: every runner
tree is admitted and publishing is refused, since no key could vouch for a release.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer

from nexapod.crypto import (
    ManifestVerdict,
    ReleaseManifest,
    canonical_json,
    key_id,
    parse_manifest,
    tree_hash,
    verify_manifest,
)
from nexapod.logs import log_event
from nexapod.protocol.v1 import ReleaseList, ReleaseManifestFile, ReleaseView
from nexapod.registry import errors
from nexapod.registry.store import NodeRow, ReleaseRow
from nexapod.storage.uow import UnitOfWork

__all__ = [
    "ReleasePolicy",
    "get_release",
    "list_releases",
    "publish_release",
    "require_node_released",
    "require_released",
]

logger = logging.getLogger("nexapod.registry")


@dataclass(frozen=True)
class ReleasePolicy:
    """The release keys the coordinator trusts, and how many releases it keeps."""

    release_public_keys: frozenset[str]
    releases_max: int

    def __post_init__(self) -> None:
        assert self.releases_max > 0

    @property
    def enforced(self) -> bool:
        """Admission needs a published release only when some release key is configured."""
        return bool(self.release_public_keys)


def publish_release(
    uow: UnitOfWork, manifest_json: Mapping[str, Any], policy: ReleasePolicy, now_ms: int
) -> tuple[ReleaseView, bool]:
    """Publish a manifest signed by a trusted release key; returns (view, created).

    Publishing the same manifest again changes nothing; another manifest of a tree hash
    already published is a conflict (a release is immutable once nodes may rely on it).
    """
    manifest = _trusted_manifest(manifest_json, policy)
    document = canonical_json(manifest.document()).decode()
    session = uow.session
    existing = session.get(ReleaseRow, manifest.tree_hash)
    if existing is not None:
        if (existing.manifest_json, existing.signature, existing.release_public_key) != (
            document,
            manifest.signature,
            manifest.release_public_key,
        ):
            raise errors.release_conflict(manifest.tree_hash)
        return _view(existing, policy), False
    count = session.scalar(select(func.count()).select_from(ReleaseRow)) or 0
    if count >= policy.releases_max:
        raise errors.releases_full(policy.releases_max)
    row = ReleaseRow(
        tree_hash=manifest.tree_hash,
        version=manifest.version,
        release_public_key=manifest.release_public_key,
        manifest_json=document,
        signature=manifest.signature,
        published_at_ms=now_ms,
    )
    session.add(row)
    try:
        uow.commit()
    except IntegrityError as exc:  # published concurrently: the retry answers exactly
        raise errors.release_conflict(manifest.tree_hash) from exc
    log_event(
        logger,
        "release.published",
        tree_hash=manifest.tree_hash,
        version=manifest.version,
        release_key_id=key_id(manifest.release_public_key),
        files_count=len(manifest.files),
    )
    return _view(row, policy), True


def list_releases(
    uow: UnitOfWork, policy: ReleasePolicy, cursor: str | None, page_size: int
) -> ReleaseList:
    """Releases newest first, ``page_size`` at a time; ``cursor`` is the last tree hash seen."""
    assert page_size > 0
    query = (
        select(ReleaseRow)
        .options(defer(ReleaseRow.manifest_json))  # large, and not part of a listing
        .order_by(ReleaseRow.published_at_ms.desc(), ReleaseRow.tree_hash.asc())
    )
    if cursor is not None:
        after_ms = uow.session.scalar(
            select(ReleaseRow.published_at_ms).where(ReleaseRow.tree_hash == cursor)
        )
        if after_ms is None:
            raise errors.release_unknown(cursor)
        query = query.where(
            or_(
                ReleaseRow.published_at_ms < after_ms,
                and_(ReleaseRow.published_at_ms == after_ms, ReleaseRow.tree_hash > cursor),
            )
        )
    rows = uow.session.scalars(query.limit(page_size + 1)).all()
    page = rows[:page_size]
    assert len(page) <= page_size
    return ReleaseList(
        enforced=policy.enforced,
        release_public_keys=sorted(policy.release_public_keys),
        releases=[_view(row, policy) for row in page],
        next_cursor=page[-1].tree_hash if len(rows) > page_size else None,
    )


def get_release(uow: UnitOfWork, tree_hash_hex: str) -> ReleaseManifestFile:
    """The published manifest file of a runner tree, as signed (nodes check it themselves)."""
    row = uow.session.get(ReleaseRow, tree_hash_hex)
    if row is None:
        raise errors.release_unknown(tree_hash_hex)
    return ReleaseManifestFile.model_validate(
        {
            "document": json.loads(row.manifest_json),
            "signature": row.signature,
            "release_public_key": row.release_public_key,
        }
    )


def require_released(uow: UnitOfWork, runner_tree_hash: str, policy: ReleasePolicy) -> None:
    """Refuse a runner tree that no trusted release covers (open when nothing is enforced)."""
    if not policy.enforced:
        return
    release_key = uow.session.scalar(
        select(ReleaseRow.release_public_key).where(ReleaseRow.tree_hash == runner_tree_hash)
    )
    if release_key is None or release_key not in policy.release_public_keys:
        raise errors.runner_not_released(runner_tree_hash)


def require_node_released(uow: UnitOfWork, node_id: str, policy: ReleasePolicy) -> None:
    """Refuse work to a node whose registered runner is not (or no longer) a trusted release."""
    if not policy.enforced:
        return
    found = uow.session.execute(
        select(NodeRow.runner_tree_hash, ReleaseRow.release_public_key)
        .outerjoin(ReleaseRow, ReleaseRow.tree_hash == NodeRow.runner_tree_hash)
        .where(NodeRow.node_id == node_id)
    ).one_or_none()
    if found is None:
        raise errors.node_unknown(node_id)
    runner_tree_hash, release_key = found
    if release_key is None or release_key not in policy.release_public_keys:
        raise errors.runner_not_released(runner_tree_hash)


def _trusted_manifest(manifest_json: Mapping[str, Any], policy: ReleasePolicy) -> ReleaseManifest:
    try:
        manifest = parse_manifest(dict(manifest_json))
    except ValueError as exc:
        raise errors.release_manifest_invalid(str(exc)) from exc
    verdict = verify_manifest(manifest, policy.release_public_keys)
    if verdict is ManifestVerdict.KEY_UNKNOWN:
        raise errors.release_key_unknown(key_id(manifest.release_public_key))
    if verdict is ManifestVerdict.SIGNATURE_INVALID:
        raise errors.release_signature_invalid()
    if verdict is ManifestVerdict.TREE_HASH_MISMATCH:
        raise errors.release_tree_hash_mismatch(manifest.tree_hash, tree_hash(manifest.files))
    assert verdict is ManifestVerdict.OK
    return manifest


def _view(row: ReleaseRow, policy: ReleasePolicy) -> ReleaseView:
    assert len(row.tree_hash) == 64
    return ReleaseView(
        tree_hash=row.tree_hash,
        version=row.version,
        release_public_key=row.release_public_key,
        trusted=row.release_public_key in policy.release_public_keys,
        published_at_ms=row.published_at_ms,
    )
