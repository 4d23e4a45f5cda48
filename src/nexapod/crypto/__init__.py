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
from nexapod.crypto._release import (
    DIFFERENCES_REPORTED_MAX,
    MANIFEST_BYTES_MAX,
    PURPOSE_RELEASE,
    RELEASE_FILES_MAX,
    RELEASE_VERSION_PATTERN,
    ManifestVerdict,
    ReleaseManifest,
    TreeDiff,
    diff_files,
    diff_tree,
    format_manifest,
    parse_manifest,
    parse_manifest_json,
    sign_manifest,
    verify_manifest,
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
from nexapod.crypto._tree import (
    FILES_MAX_DEFAULT,
    package_root,
    package_tree_hash,
    tree_file_hashes,
    tree_hash,
)

__all__ = [
    "DIFFERENCES_REPORTED_MAX",
    "FILES_MAX_DEFAULT",
    "HEADER_KEY_ID",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "MANIFEST_BYTES_MAX",
    "ManifestVerdict",
    "NONCE_HEX_CHARS",
    "PUBLIC_KEY_BYTES",
    "PURPOSE_RELEASE",
    "RELEASE_FILES_MAX",
    "RELEASE_VERSION_PATTERN",
    "ReleaseManifest",
    "RequestSignature",
    "SIGNATURE_BYTES",
    "SigningKey",
    "b64decode",
    "b64encode",
    "canonical_json",
    "canonical_sha256_hex",
    "diff_files",
    "diff_tree",
    "format_manifest",
    "key_id",
    "load_public_key",
    "package_root",
    "package_tree_hash",
    "parse_manifest",
    "parse_manifest_json",
    "request_statement",
    "sha256_hex",
    "sign_document",
    "sign_manifest",
    "sign_request",
    "signed_bytes",
    "tree_file_hashes",
    "tree_hash",
    "TreeDiff",
    "verify_document",
    "verify_manifest",
    "verify_request",
    "verify_signature",
]
