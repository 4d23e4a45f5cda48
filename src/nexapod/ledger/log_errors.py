"""Errors of the transparency log: tiles, proofs, signed notes and checkpoints.

    NexaPodError
     +-- LedgerError                   ledger.*   the area base (ledger/errors.py)
          +-- LogError                 ledger.*   the log's failures
               +-- TileError
               |    +-- TilePathError          ledger.tile_path_malformed         400
               |    +-- TileDataError          ledger.tile_data_malformed         422
               |    +-- EntryTooLargeError     ledger.entry_too_large             413
               |    +-- EntryBundleError       ledger.entry_bundle_malformed      422
               +-- ProofError
               |    +-- ProofRequestError      ledger.proof_request_invalid       400
               |    +-- ProofInvalidError      ledger.proof_invalid               422
               +-- NoteError
               |    +-- KeyNameError           ledger.key_name_invalid            400
               |    +-- VerifierKeyError       ledger.vkey_malformed              400
               |    +-- NoteFormatError        ledger.note_malformed              400
               |    +-- NoteSignatureError     ledger.note_signature_invalid      401
               |    +-- NoteUnverifiedError    ledger.note_unverified             401
               +-- CheckpointError
               |    +-- CheckpointFormatError  ledger.checkpoint_malformed        400
               |    +-- CheckpointOriginError  ledger.checkpoint_origin_mismatch  422
               +-- NotInLogError
                    +-- TileNotFoundError      ledger.tile_not_found              404
                    +-- CheckpointNotFoundError ledger.checkpoint_not_found       404
                    +-- NotIntegratedError     ledger.not_integrated              409
               +-- LogCorruptError             ledger.log_corrupt                 500

The log code is pure and shared by the sequencer, the HTTP endpoints and the offline
verifier, so each failure is a class (callers catch by family) with one fixed ``code``
(clients act on the code, not on the text of ``detail``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from nexapod.ledger.errors import LedgerError

__all__ = [
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "CheckpointOriginError",
    "EntryBundleError",
    "EntryTooLargeError",
    "KeyNameError",
    "LogCorruptError",
    "LogError",
    "NoteError",
    "NoteFormatError",
    "NoteSignatureError",
    "NotInLogError",
    "NotIntegratedError",
    "NoteUnverifiedError",
    "ProofError",
    "ProofInvalidError",
    "ProofRequestError",
    "TileDataError",
    "TileError",
    "TileNotFoundError",
    "TilePathError",
    "VerifierKeyError",
]


class LogError(LedgerError):
    """Any failure of the transparency log layer; leaves fix their own code name.

    A kind of ``LedgerError``, so the ledger area has one base for its errors."""

    status = 400
    code_name: ClassVar[str] = "log_error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(self.code_name, detail, **extra)


class TileError(LogError):
    code_name = "tile_error"


class TilePathError(TileError):
    code_name = "tile_path_malformed"


class TileDataError(TileError):
    code_name = "tile_data_malformed"
    status = 422


class EntryTooLargeError(TileError):
    code_name = "entry_too_large"
    status = 413


class EntryBundleError(TileError):
    code_name = "entry_bundle_malformed"
    status = 422


class ProofError(LogError):
    code_name = "proof_error"


class ProofRequestError(ProofError):
    code_name = "proof_request_invalid"


class ProofInvalidError(ProofError):
    code_name = "proof_invalid"
    status = 422


class NoteError(LogError):
    code_name = "note_error"


class KeyNameError(NoteError):
    code_name = "key_name_invalid"


class VerifierKeyError(NoteError):
    code_name = "vkey_malformed"


class NoteFormatError(NoteError):
    code_name = "note_malformed"


class NoteSignatureError(NoteError):
    code_name = "note_signature_invalid"
    status = 401


class NoteUnverifiedError(NoteError):
    code_name = "note_unverified"
    status = 401


class CheckpointError(LogError):
    code_name = "checkpoint_error"


class CheckpointFormatError(CheckpointError):
    code_name = "checkpoint_malformed"


class CheckpointOriginError(CheckpointError):
    code_name = "checkpoint_origin_mismatch"
    status = 422


class NotInLogError(LogError):
    """What was asked for is not (or not yet) in the log."""

    code_name = "not_in_log"
    status = 404


class TileNotFoundError(NotInLogError):
    code_name = "tile_not_found"


class CheckpointNotFoundError(NotInLogError):
    code_name = "checkpoint_not_found"


class NotIntegratedError(NotInLogError):
    """The entry is committed but no checkpoint covers it yet: ask again in a second."""

    code_name = "not_integrated"
    status = 409


class LogCorruptError(LogError):
    """The stored log contradicts itself (an entry missing below a checkpoint): an operator
    problem, never the client's; verifiers report it, the operator restores a backup."""

    code_name = "log_corrupt"
    status = 500
