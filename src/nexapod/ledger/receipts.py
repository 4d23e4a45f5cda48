"""Receipts: one entry, its inclusion proof and the signed checkpoint it leads to.

A receipt is checked offline with nothing but the log's vkey: the checkpoint's
signature and origin, then the entry's leaf hash up the audit path to the
checkpoint's root. A contributor who keeps the receipt of a payment can show it to
anyone, long after, without trusting the coordinator.
"""

from __future__ import annotations

import base64
import binascii

from nexapod.ledger.checkpoint import Checkpoint, open_checkpoint
from nexapod.ledger.log_errors import ProofInvalidError
from nexapod.ledger.merkle import leaf_hash, verify_inclusion
from nexapod.ledger.note import NoteVerifier
from nexapod.protocol.v1.ledger_log import InclusionProof, Receipt

__all__ = ["b64_hash", "hash_from_b64", "make_receipt", "verify_receipt"]


def b64_hash(hash_: bytes) -> str:
    return base64.b64encode(hash_).decode()


def hash_from_b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProofInvalidError(f"{text!r} is not base64") from exc


def make_receipt(
    origin: str, entry: bytes, leaf_index: int, tree_size: int, proof: list[bytes], note: str
) -> Receipt:
    return Receipt(
        origin=origin,
        entry_b64=base64.b64encode(entry).decode(),
        inclusion=InclusionProof(
            leaf_index=leaf_index, tree_size=tree_size, hashes=[b64_hash(h) for h in proof]
        ),
        checkpoint=note,
    )


def verify_receipt(receipt: Receipt, verifier: NoteVerifier) -> tuple[Checkpoint, bytes]:
    """The checkpoint and the entry bytes, once everything checks; raises otherwise."""
    checkpoint = open_checkpoint(receipt.checkpoint, [verifier], origin=receipt.origin)
    if checkpoint.tree_size != receipt.inclusion.tree_size:
        raise ProofInvalidError(
            f"the proof is for a tree of {receipt.inclusion.tree_size} entries, "
            f"the checkpoint for {checkpoint.tree_size}"
        )
    entry = base64.b64decode(receipt.entry_b64, validate=True)
    verify_inclusion(
        leaf_hash(entry),
        receipt.inclusion.leaf_index,
        receipt.inclusion.tree_size,
        [hash_from_b64(h) for h in receipt.inclusion.hashes],
        checkpoint.root_hash,
    )
    return checkpoint, entry
