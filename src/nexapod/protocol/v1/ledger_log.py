"""Wire messages of the ledger's log: proofs and receipts (hashes in standard base64).

Tiles, entry bundles, checkpoints and the verifier key are served as the C2SP specs
say (bytes and text), not as JSON; these are the JSON extras around them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nexapod.protocol.v1._base import WireModel

__all__ = ["ConsistencyProof", "InclusionProof", "LogSize", "Receipt"]

HASH_B64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=$")]
PROOF_HASHES_MAX = 64  # a uint64 tree needs at most 64 hashes (consistency: 2 * 64)
TREE_SIZE_MAX = 2**64 - 1


class InclusionProof(WireModel):
    """RFC 9162 section 2.1.3: the audit path of one leaf in a tree of ``tree_size``."""

    leaf_index: int = Field(ge=0, le=TREE_SIZE_MAX)
    tree_size: int = Field(ge=1, le=TREE_SIZE_MAX)
    hashes: list[HASH_B64] = Field(max_length=PROOF_HASHES_MAX)


class ConsistencyProof(WireModel):
    """RFC 9162 section 2.1.4: the tree of ``old_size`` is a prefix of ``new_size``."""

    old_size: int = Field(ge=0, le=TREE_SIZE_MAX)
    new_size: int = Field(ge=0, le=TREE_SIZE_MAX)
    hashes: list[HASH_B64] = Field(max_length=2 * PROOF_HASHES_MAX)


class Receipt(WireModel):
    """Proof that one entry is in the log: checkable offline with the log's vkey.

    ``entry_b64`` is the entry's exact bytes (canonical JSON); ``checkpoint`` the signed
    note of a tree of ``inclusion.tree_size`` entries whose root the proof leads to.
    """

    kind: str = Field("nexapod.ledger.receipt.v1", pattern=r"^nexapod\.ledger\.receipt\.v1$")
    origin: str = Field(min_length=1, max_length=200)
    entry_b64: str = Field(min_length=4, max_length=90_000, pattern=r"^[A-Za-z0-9+/]+=*$")
    inclusion: InclusionProof
    checkpoint: str = Field(min_length=1, max_length=65_536)


class LogSize(WireModel):
    """Entries committed, and how many of them the newest checkpoint covers."""

    tree_size: int = Field(ge=0, le=TREE_SIZE_MAX)
    checkpoint_tree_size: int | None = Field(ge=0, le=TREE_SIZE_MAX)
