from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod import crypto
from nexapod.crypto import (
    SigningKey,
    b64decode,
    b64encode,
    canonical_json,
    sign_document,
    sign_request,
    verify_document,
    verify_request,
)


def test_public_api_is_sorted_and_complete() -> None:
    public = sorted(name for name in vars(crypto) if not name.startswith("_"))
    exported = sorted(crypto.__all__)
    assert set(exported) <= set(public)
    assert [n for n in public if n not in exported and not _is_module(n)] == []


def _is_module(name: str) -> bool:
    return type(getattr(crypto, name)).__name__ == "module"


def test_canonical_json_follows_rfc8785_ordering_and_refuses_floats() -> None:
    assert (
        canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    )
    # RFC 8785 sorts names by UTF-16 code units: U+1F600 is 0xD83D 0xDE00, before U+FFFF,
    # though its code point is larger.
    assert canonical_json({"\uffff": 1, "\U0001f600": 2}).startswith('{"\U0001f600"'.encode())
    with pytest.raises(ValueError, match="floats"):
        canonical_json({"x": 1.5})
    with pytest.raises(ValueError, match="decimal strings"):
        canonical_json({"x": 2**53})


def test_base64_is_strict() -> None:
    data = bytes(range(40))
    assert b64decode(b64encode(data)) == data
    for bad in ("a=", "ab+/", "abc!", "AB"):  # padding, wrong alphabet, junk, non-canonical
        with pytest.raises(ValueError):
            b64decode(bad)


def test_key_round_trip_through_file_with_private_mode(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "k" / "node.key"
    key.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert SigningKey.load(path).public_key_b64 == key.public_key_b64
    with pytest.raises(FileExistsError):
        key.save(path)
    raw = b64decode(key.public_key_b64)
    assert key.key_id == hashlib.sha256(raw).hexdigest()


def test_document_signature_binds_purpose_and_content() -> None:
    key = SigningKey.generate()
    document = {"unit_id": 7, "result_sha256": "00" * 32}
    signature = sign_document(key, "nexapod.result.v1", document)
    assert verify_document(key.public_key_b64, signature, "nexapod.result.v1", document)
    assert not verify_document(key.public_key_b64, signature, "nexapod.user.v1", document)
    assert not verify_document(
        key.public_key_b64, signature, "nexapod.result.v1", {**document, "unit_id": 8}
    )
    other = SigningKey.generate()
    assert not verify_document(other.public_key_b64, signature, "nexapod.result.v1", document)
    assert not verify_document(key.public_key_b64, "garbage", "nexapod.result.v1", document)


def test_request_signature_binds_method_path_body() -> None:
    key = SigningKey.generate()
    signature = sign_request(
        key, key_id="node:abc", method="POST", path="/v1/leases", body=b"{}", timestamp_s=100
    )
    public = key.public_key_b64
    assert verify_request(public, signature, method="POST", path="/v1/leases", body=b"{}")
    assert not verify_request(public, signature, method="PUT", path="/v1/leases", body=b"{}")
    assert not verify_request(public, signature, method="POST", path="/v1/results", body=b"{}")
    assert not verify_request(public, signature, method="POST", path="/v1/leases", body=b"{ }")
    assert len(signature.nonce) == 32
    assert set(signature.headers()) == {
        "NexaPod-Key-Id",
        "NexaPod-Timestamp",
        "NexaPod-Nonce",
        "NexaPod-Signature",
    }


@settings(max_examples=2000)
@given(st.binary(max_size=80))
def test_b64decode_inverts_b64encode(data: bytes) -> None:
    assert b64decode(b64encode(data)) == data


@settings(max_examples=3000)
@given(st.text(alphabet="ABab09-_+/=\n \u00e9", max_size=14))
def test_b64decode_accepts_exactly_the_canonical_unpadded_url_safe_texts(text: str) -> None:
    """The one accepted spelling of each byte string is what b64encode writes."""
    try:
        data = b64decode(text)
    except ValueError:
        canonical = False
    else:
        canonical = True
        assert b64encode(data) == text
    reference = text.isascii() and all(c not in text for c in "+/=\n ") and len(text) % 4 != 1
    if reference:
        padded = text + "=" * (-len(text) % 4)
        decoded = base64.urlsafe_b64decode(padded)
        reference = b64encode(decoded) == text
    assert canonical == reference
