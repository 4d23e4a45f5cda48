"""Ed25519 keys: generation, storage on disk, signing and verification.

Keys are stored as raw 32-byte seeds, base64 on one line, in files readable by
their owner only. Public keys travel as unpadded URL-safe base64 of the 32 raw
bytes; a key's id is the hex SHA-256 of those bytes, so an id names one key.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from nexapod.crypto._canonical import sha256_hex

__all__ = [
    "PUBLIC_KEY_BYTES",
    "SIGNATURE_BYTES",
    "Base64TooLargeError",
    "SigningKey",
    "b64decode",
    "b64decode_at_most",
    "b64encode",
    "key_id",
    "load_public_key",
    "verify_signature",
]

PUBLIC_KEY_BYTES = 32
PUBLIC_KEYS_CACHED_MAX = 4096
SIGNATURE_BYTES = 64


def b64encode(data: bytes) -> str:
    """Unpadded URL-safe base64."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_URLSAFE_VALUES = {
    c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
# The bits of the last character that carry no data, by the text's length mod 4; a
# canonical encoding leaves them zero (RFC 4648 section 3.5).
_UNUSED_BITS = {2: 0x0F, 3: 0x03}


def b64decode(text: str, *, length_max: int = 1 << 26) -> bytes:
    """Strict inverse of :func:`b64encode`; raises ``ValueError`` on bad input.

    One C pass does the work (results run to megabytes): the URL-safe alphabet mapped to
    the standard one, decoded in strict mode; then the canonical-form rules that strict
    mode leaves out (no padding, no characters of the other alphabet, zero unused bits).
    """
    if len(text) > length_max:
        raise ValueError(f"base64 text longer than {length_max} characters")
    if not text.isascii():
        raise ValueError("not unpadded URL-safe base64")
    raw = text.encode("ascii")
    remainder = len(raw) % 4
    if remainder == 1 or b"=" in raw or b"+" in raw or b"/" in raw:
        raise ValueError("not unpadded URL-safe base64")
    standard = raw.translate(_URLSAFE_TO_STANDARD) + b"=" * (-len(raw) % 4)
    try:
        data = binascii.a2b_base64(standard, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError("not unpadded URL-safe base64") from exc
    if remainder and _URLSAFE_VALUES[raw[-1]] & _UNUSED_BITS[remainder]:
        raise ValueError("non-canonical base64")
    return data


class Base64TooLargeError(ValueError):
    """Base64 text that decodes (or would decode) to more bytes than allowed."""

    def __init__(self, size_bytes: int, bytes_max: int) -> None:
        super().__init__(f"{size_bytes} bytes, more than {bytes_max}")
        self.size_bytes = size_bytes
        self.bytes_max = bytes_max


def b64decode_at_most(text: str, bytes_max: int) -> bytes:
    """:func:`b64decode` of an upload of at most ``bytes_max`` bytes. Raises
    :class:`Base64TooLargeError` before decoding text too long to fit, or ``ValueError``."""
    assert bytes_max >= 0
    chars_max = (bytes_max * 4) // 3 + 4
    if len(text) > chars_max:
        raise Base64TooLargeError(len(text) * 3 // 4, bytes_max)
    data = b64decode(text, length_max=chars_max)
    if len(data) > bytes_max:
        raise Base64TooLargeError(len(data), bytes_max)
    return data


def key_id(public_key_b64: str) -> str:
    """The hex SHA-256 of a public key's raw bytes."""
    return sha256_hex(b64decode(public_key_b64))


@functools.lru_cache(maxsize=PUBLIC_KEYS_CACHED_MAX)
def load_public_key(public_key_b64: str) -> Ed25519PublicKey:
    """Parse a public key; raises ``ValueError`` when it is not 32 bytes of Ed25519.

    Parsed keys are immutable, so the most recent ones are kept: a coordinator checks
    the same nodes' signatures over and over.
    """
    raw = b64decode(public_key_b64, length_max=64)
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has {PUBLIC_KEY_BYTES} bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_signature(public_key_b64: str, signature_b64: str, message: bytes) -> bool:
    """True when ``signature_b64`` is a valid Ed25519 signature of ``message``."""
    try:
        public_key = load_public_key(public_key_b64)
        signature = b64decode(signature_b64, length_max=128)
    except ValueError:
        return False
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key with the operations NexaPod needs."""

    _private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        assert len(seed) == 32, "an Ed25519 seed has 32 bytes"
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read a key written by :meth:`save`."""
        text = path.read_text(encoding="ascii").strip()
        seed = b64decode(text, length_max=64)
        if len(seed) != 32:
            raise ValueError(f"{path} does not hold a 32-byte Ed25519 seed")
        return cls.from_seed(seed)

    def save(self, path: Path) -> None:
        """Write the seed with mode 0600, refusing to overwrite an existing key."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(b64encode(self.seed()) + "\n")

    def seed(self) -> bytes:
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_key_b64(self) -> str:
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return b64encode(raw)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key_b64)

    def sign(self, message: bytes) -> str:
        """The base64 Ed25519 signature of ``message``."""
        signature = self._private.sign(message)
        assert len(signature) == SIGNATURE_BYTES
        return b64encode(signature)
