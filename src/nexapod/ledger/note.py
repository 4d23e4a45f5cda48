"""C2SP signed-note with Ed25519: the envelope our checkpoints travel in.

A note is its text (ending in a newline), one blank line, then signature lines
``— <key name> <base64(key ID || signature)>``; the key ID is the first four bytes of
SHA-256(key name || 0x0A || 0x01 || public key). Verifier keys are exchanged as
``<name>+<hex key ID>+<base64(0x01 || public key)>`` (the Go sumdb vkey form).

Opening a note is strict on format and lenient on strangers, as the spec asks:
signatures from keys we do not know are skipped, one bad signature from a known key
rejects the whole note, and a note with no good signature from a known key is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from nexapod.ledger.log_errors import (
    KeyNameError,
    NoteFormatError,
    NoteSignatureError,
    NoteUnverifiedError,
    VerifierKeyError,
)

__all__ = [
    "ALG_ED25519",
    "NOTE_BYTES_MAX",
    "NOTE_SIGNATURES_MAX",
    "NoteSigner",
    "NoteVerifier",
    "SIGNATURE_PREFIX",
    "format_vkey",
    "key_id",
    "open_note",
    "parse_vkey",
    "sign_note",
    "validate_key_name",
]

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "
"""Em dash (U+2014) and a space start every signature line."""
NOTE_SIGNATURES_MAX = 100
"""The spec asks verifiers to cap signatures and to accept at least 16."""
NOTE_BYTES_MAX = 1 << 20
_ED25519_KEY_BYTES = 32
_ED25519_SIG_BYTES = 64
_KEY_ID_BYTES = 4
_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")
_SPACE_OR_SURROGATE = frozenset({"Zs", "Zl", "Zp", "Cs"})

assert NOTE_SIGNATURES_MAX >= 16


def validate_key_name(name: str) -> None:
    """Non-empty, no Unicode spaces, no ``+`` (signed-note "Format").

    Control characters below U+0020 are refused too: a note may not contain them.
    """
    if not name:
        raise KeyNameError("a key name must not be empty")
    if "+" in name:
        raise KeyNameError(f"key name {name!r} contains '+'")
    for ch in name:
        if ch.isspace() or ch < " " or unicodedata.category(ch) in _SPACE_OR_SURROGATE:
            raise KeyNameError(f"key name {name!r} contains a space or control character")


def key_id(name: str, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4] as a big-endian uint32."""
    assert len(public_key) == _ED25519_KEY_BYTES
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:_KEY_ID_BYTES], "big")


def format_vkey(name: str, public_key: bytes) -> str:
    """``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
    validate_key_name(name)
    if len(public_key) != _ED25519_KEY_BYTES:
        raise VerifierKeyError(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode()
    return f"{name}+{key_id(name, public_key):08x}+{encoded}"


def parse_vkey(vkey: str) -> NoteVerifier:
    """The verifier a vkey names; refuses other algorithms and a key ID that does not match."""
    parts = vkey.split("+", 2)  # the base64 key may itself contain "+"
    if len(parts) != 3:
        raise VerifierKeyError("a verifier key is <name>+<hex key ID>+<base64 key>")
    name, hex_id, encoded = parts
    try:
        validate_key_name(name)
    except KeyNameError as exc:
        raise VerifierKeyError(f"verifier key name is invalid: {exc.detail}") from exc
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise VerifierKeyError(f"verifier key ID {hex_id!r} is not 8 hex digits")
    key = _b64decode(encoded)
    if key is None or len(key) != 1 + _ED25519_KEY_BYTES:
        raise VerifierKeyError("verifier key data is not base64 of 33 bytes")
    if key[0] != ALG_ED25519:
        raise VerifierKeyError(f"verifier key algorithm {key[0]:#04x} is not Ed25519 (0x01)")
    verifier = NoteVerifier(name, key[1:])
    if verifier.key_id != int(hex_id, 16):
        raise VerifierKeyError(f"verifier key ID {hex_id} does not match the key")
    return verifier


def _b64decode(text: str) -> bytes | None:
    """Standard base64 (RFC 4648 §4) in its one canonical spelling, else None.

    The unused low bits of the last character must be zero: otherwise one signed note
    would have several byte strings, and caches or witnesses comparing bytes would
    see different notes.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == text else None


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """One known key: its name, Ed25519 public key and derived key ID."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        validate_key_name(self.name)
        if len(self.public_key) != _ED25519_KEY_BYTES:
            raise VerifierKeyError(
                f"an Ed25519 public key has 32 bytes, not {len(self.public_key)}"
            )
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        return parse_vkey(vkey)

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != _ED25519_SIG_BYTES:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


class NoteSigner:
    """A key name and Ed25519 private key; the private key never leaves this object."""

    __slots__ = ("_private_key", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        validate_key_name(name)
        self.name = name
        self._private_key = private_key
        self.public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(name, self.public_key)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        """From the 32-byte RFC 8032 private key (seed), as stored in key files."""
        if len(seed) != _ED25519_KEY_BYTES:
            raise VerifierKeyError(f"an Ed25519 seed has 32 bytes, not {len(seed)}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, self.public_key)

    def signature_line(self, text: str) -> str:
        """``— <name> <base64(key ID || Ed25519(text))>`` without the newline."""
        signature = self._private_key.sign(text.encode())
        raw = self.key_id.to_bytes(_KEY_ID_BYTES, "big") + signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(raw).decode()}"

    def __repr__(self) -> str:
        return f"NoteSigner({self.vkey!r})"


def _check_characters(note: str) -> None:
    """Valid UTF-8 with no control character below U+0020 other than newline."""
    try:
        note.encode()
    except UnicodeEncodeError as exc:
        raise NoteFormatError("the note is not valid UTF-8") from exc
    for ch in note:
        if ch < " " and ch != "\n":
            raise NoteFormatError(f"the note contains control character {ord(ch):#04x}")


def sign_note(text: str, signers: NoteSigner | Sequence[NoteSigner]) -> str:
    """The signed note: ``text``, a blank line, one signature line per signer."""
    group = [signers] if isinstance(signers, NoteSigner) else list(signers)
    if not group:
        raise NoteFormatError("a note needs at least one signer")
    if not text.endswith("\n"):
        raise NoteFormatError("the note text must end with a newline")
    _check_characters(text)
    if len({(s.name, s.key_id) for s in group}) != len(group):
        raise NoteFormatError("two signers share a key name and key ID")
    lines = "".join(f"{signer.signature_line(text)}\n" for signer in group)
    return f"{text}\n{lines}"


def open_note(
    note: str | bytes,
    verifiers: Sequence[NoteVerifier],
    *,
    note_bytes_max: int = NOTE_BYTES_MAX,
) -> str:
    """The text of ``note`` if a known key signed it; refuses anything malformed."""
    known: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in verifiers:
        if (verifier.name, verifier.key_id) in known:
            raise NoteFormatError(f"two verifiers share key {verifier.name}+{verifier.key_id:08x}")
        known[verifier.name, verifier.key_id] = verifier
    if isinstance(note, bytes):
        if len(note) > note_bytes_max:
            raise NoteFormatError(f"the note has more than {note_bytes_max} bytes")
        try:
            note = note.decode()
        except UnicodeDecodeError as exc:
            raise NoteFormatError("the note is not valid UTF-8") from exc
    elif len(note) > note_bytes_max:
        raise NoteFormatError(f"the note has more than {note_bytes_max} characters")
    _check_characters(note)
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteFormatError("the note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteFormatError("the signature block must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > NOTE_SIGNATURES_MAX:
        raise NoteFormatError(f"the note has more than {NOTE_SIGNATURES_MAX} signatures")
    _verify_lines(text, lines, known)
    return text


def _verify_lines(
    text: str, lines: Sequence[str], known: dict[tuple[str, int], NoteVerifier]
) -> None:
    message = text.encode()
    seen: set[tuple[str, int]] = set()
    for number, line in enumerate(lines, start=1):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteFormatError(f"signature line {number} does not start with an em dash")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        raw = _b64decode(encoded)
        try:
            validate_key_name(name)
        except KeyNameError as exc:
            raise NoteFormatError(f"signature line {number}: {exc.detail}") from exc
        if raw is None or len(raw) <= _KEY_ID_BYTES:
            raise NoteFormatError(f"signature line {number} has no base64 key ID and signature")
        key = (name, int.from_bytes(raw[:_KEY_ID_BYTES], "big"))
        verifier = known.get(key)
        if verifier is None:
            continue
        if key in seen:
            raise NoteFormatError(f"key {name}+{key[1]:08x} signed the note twice")
        seen.add(key)
        if not verifier.verify(message, raw[_KEY_ID_BYTES:]):
            raise NoteSignatureError(f"the signature by {name}+{key[1]:08x} does not verify")
    if not seen:
        raise NoteUnverifiedError("no known key signed the note")
