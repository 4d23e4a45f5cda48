"""C2SP tlog-checkpoint: the signed tree head the ledger publishes.

The body is the note text ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` followed by
optional non-empty extension lines. Parsing accepts exactly one spelling of each
value (no leading zeros, canonical base64 of 32 bytes), so two parties that agree on
a tree head also agree on the bytes that were signed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from nexapod.ledger.log_errors import CheckpointFormatError, CheckpointOriginError
from nexapod.ledger.merkle import HASH_SIZE, TREE_SIZE_MAX
from nexapod.ledger.note import NoteSigner, NoteVerifier, open_note, sign_note

__all__ = [
    "CHECKPOINT_BYTES_MAX",
    "CHECKPOINT_EXTENSIONS_MAX",
    "Checkpoint",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

CHECKPOINT_BYTES_MAX = 64 * 1024
"""A signed checkpoint is a few hundred bytes; this bounds what a client will parse."""
CHECKPOINT_EXTENSIONS_MAX = 64
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


def _check_line(what: str, line: str) -> None:
    if not line:
        raise CheckpointFormatError(f"the checkpoint {what} is empty")
    if any(ch < " " for ch in line):
        raise CheckpointFormatError(f"the checkpoint {what} contains a control character")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One tree head: which log (``origin``), how many entries, and their root hash."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line("origin", self.origin)
        if not 0 <= self.tree_size <= TREE_SIZE_MAX:
            raise CheckpointFormatError(f"tree size {self.tree_size} is outside 0..2**64-1")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointFormatError(f"the root hash has {len(self.root_hash)} bytes, not 32")
        if len(self.extensions) > CHECKPOINT_EXTENSIONS_MAX:
            raise CheckpointFormatError(f"more than {CHECKPOINT_EXTENSIONS_MAX} extension lines")
        for line in self.extensions:
            _check_line("extension line", line)

    def to_body(self) -> str:
        """The note text to sign (tlog-checkpoint "Note text")."""
        root = base64.b64encode(self.root_hash).decode()
        lines = [self.origin, str(self.tree_size), root, *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """The checkpoint in a note text; refuses every other spelling of it."""
        if len(body) > CHECKPOINT_BYTES_MAX:
            raise CheckpointFormatError(f"the checkpoint is longer than {CHECKPOINT_BYTES_MAX}")
        if not body.endswith("\n"):
            raise CheckpointFormatError("the checkpoint must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointFormatError("a checkpoint has an origin, a size and a root hash")
        origin, size_text, root_text, *extensions = lines
        if not _TREE_SIZE.fullmatch(size_text) or int(size_text) > TREE_SIZE_MAX:
            raise CheckpointFormatError(f"tree size {size_text!r} is not a canonical uint64")
        return cls(origin, int(size_text), _parse_root(root_text), tuple(extensions))


def _parse_root(text: str) -> bytes:
    try:
        root = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointFormatError(f"root hash {text!r} is not base64") from exc
    if len(root) != HASH_SIZE or base64.b64encode(root).decode() != text:
        raise CheckpointFormatError(f"root hash {text!r} is not the base64 of 32 bytes")
    return root


def format_checkpoint(checkpoint: Checkpoint) -> str:
    return checkpoint.to_body()


def parse_checkpoint(body: str) -> Checkpoint:
    return Checkpoint.parse(body)


def sign_checkpoint(checkpoint: Checkpoint, signers: NoteSigner | Sequence[NoteSigner]) -> str:
    """The checkpoint as a signed note, ready to serve at ``<prefix>/checkpoint``."""
    return sign_note(checkpoint.to_body(), signers)


def open_checkpoint(
    note: str | bytes, verifiers: Sequence[NoteVerifier], *, origin: str
) -> Checkpoint:
    """Verify a signed checkpoint of the log ``origin`` and parse it.

    The origin is checked because a signature only says who signed, not for which log.
    """
    if len(note) > CHECKPOINT_BYTES_MAX:
        raise CheckpointFormatError(f"the checkpoint is longer than {CHECKPOINT_BYTES_MAX}")
    checkpoint = Checkpoint.parse(open_note(note, verifiers, note_bytes_max=CHECKPOINT_BYTES_MAX))
    if checkpoint.origin != origin:
        raise CheckpointOriginError(
            f"the checkpoint is for log {checkpoint.origin!r}, not {origin!r}"
        )
    return checkpoint
