"""Keys, canonical JSON (RFC 8785), hashes and signatures.

The node agent and the coordinator share this package; it has no I/O beyond
reading and writing key files.
"""

from nexapod.crypto._canonical import canonical_json, canonical_sha256_hex, sha256_hex
from nexapod.crypto._documents import sign_document, signed_bytes, verify_document
from nexapod.crypto._keys import (
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    SigningKey,
    b64decode,
    b64encode,
    key_id,
    load_public_key,
    verify_signature,
)
from nexapod.crypto._request import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NONCE_HEX_CHARS,
    RequestSignature,
    request_statement,
    sign_request,
    verify_request,
)
from nexapod.crypto._tree import package_tree_hash, tree_file_hashes, tree_hash

__all__ = [
    "HEADER_KEY_ID",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "NONCE_HEX_CHARS",
    "PUBLIC_KEY_BYTES",
    "RequestSignature",
    "SIGNATURE_BYTES",
    "SigningKey",
    "b64decode",
    "b64encode",
    "canonical_json",
    "canonical_sha256_hex",
    "key_id",
    "package_tree_hash",
    "load_public_key",
    "request_statement",
    "sha256_hex",
    "sign_document",
    "sign_request",
    "signed_bytes",
    "tree_file_hashes",
    "tree_hash",
    "verify_document",
    "verify_request",
    "verify_signature",
]
