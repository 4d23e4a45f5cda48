"""Signed documents: a JSON object and signatures over its canonical form.

A document is signed for a purpose (``nexapod.user.v1``, ``nexapod.result.v1``...):
the signed bytes are the canonical JSON of ``{"purpose": P, "document": D}``, so a
signature made for one kind of document can never be replayed as another.
"""

from __future__ import annotations

from typing import Any

from nexapod.crypto._canonical import canonical_json
from nexapod.crypto._keys import SigningKey, verify_signature

__all__ = ["signed_bytes", "sign_document", "verify_document"]


def signed_bytes(purpose: str, document: dict[str, Any]) -> bytes:
    """The exact bytes a signature over ``document`` for ``purpose`` covers."""
    assert purpose.startswith("nexapod."), "purposes are namespaced"
    return canonical_json({"purpose": purpose, "document": document})


def sign_document(key: SigningKey, purpose: str, document: dict[str, Any]) -> str:
    """Sign ``document`` for ``purpose`` with ``key``."""
    return key.sign(signed_bytes(purpose, document))


def verify_document(
    public_key_b64: str, signature_b64: str, purpose: str, document: dict[str, Any]
) -> bool:
    """True when the signature covers exactly this document for this purpose."""
    try:
        message = signed_bytes(purpose, document)
    except ValueError:
        return False
    return verify_signature(public_key_b64, signature_b64, message)
