"""A transfer's log entry as bytes, and back (pure).

The entry of a transfer is the canonical JSON (RFC 8785) of
``{"kind": "transfer", "v": 1, **rules.transfer_entry_body(transfer)}``. The ledger writes
tens of thousands a second, and the general serialiser (``crypto.canonical_json``) spends
most of its time proving that a document needs no escaping and sorting its keys; here
both are known in advance, so :func:`encode_transfer_entry` writes the bytes directly:

- the keys are written in RFC 8785 order (§3.2.3: by UTF-16 code units; for these ASCII
  keys, byte order): amount, asset, code, credit_account_id, debit_account_id, kind,
  pending_id, phase, timeout_s, timestamp_ms, transfer_id, v;
- every string value is drawn from an alphabet that JSON never escapes (§3.2.2.2):
  transfer ids are lower-case hex, account ids match ``ACCOUNT_ID_PATTERN``, codes
  ``[a-z][a-z0-9_.]*``, phases and assets are fixed words, amounts decimal digits; the
  batch's checks (``rules.check_batch``) refuse anything else before a transfer exists;
- integers (``timestamp_ms``, ``timeout_s``) are within 2^53, so their text is the
  shortest decimal form, as §3.2.2.3 asks.

A property test holds the result byte for byte against the rfc8785 package; two cheap
assertions per entry (no backslash, the expected number of quotes) catch a value that
would have needed escaping, should a caller ever skip the checks.

:func:`decode_transfer_entry` reads a stored entry back into a ``Transfer``: the entry
is the transfer's only copy of its fields (its row also holds the keys it is found by).
"""

from __future__ import annotations

import json

from nexapod.ledger.rules import Transfer

__all__ = ["ENTRY_KIND", "decode_transfer_entry", "encode_transfer_entry"]

ENTRY_KIND = "transfer"
_ENTRY_VERSION = 1  # log_store.ENTRY_VERSION (not imported: log_store imports the store)
_INT_MAX = 2**53 - 1  # RFC 8785 §3.2.2.3: integers beyond this lose their exact text
_QUOTES = 36  # 10 keys and 8 string values; pending_id adds 4, timeout_s 2


def encode_transfer_entry(transfer: Transfer) -> bytes:
    """The canonical JSON of a transfer's log entry (see the module docstring)."""
    t = transfer
    assert 0 <= t.timestamp_ms <= _INT_MAX
    assert 0 <= t.timeout_s <= _INT_MAX
    quotes = _QUOTES
    pending_id = ""
    if t.pending_id is not None:
        pending_id = f'"pending_id":"{t.pending_id}",'
        quotes += 4
    timeout = ""
    if t.phase == "pending":
        timeout = f'"timeout_s":{t.timeout_s},'
        quotes += 2
    entry = (
        f'{{"amount":"{t.amount}","asset":"{t.asset}","code":"{t.code}",'
        f'"credit_account_id":"{t.credit_account_id}",'
        f'"debit_account_id":"{t.debit_account_id}","kind":"transfer",{pending_id}'
        f'"phase":"{t.phase}",{timeout}"timestamp_ms":{t.timestamp_ms},'
        f'"transfer_id":"{t.transfer_id}","v":1}}'
    ).encode("ascii")
    assert b"\\" not in entry, "no value of a transfer needs escaping"
    assert entry.count(b'"') == quotes, "no value of a transfer holds a quote"
    return entry


def decode_transfer_entry(
    entry: bytes, log_index: int, pending_status: str | None, expires_at_ms: int | None
) -> Transfer:
    """The transfer a stored entry records, with the state of its hold kept beside it."""
    body = json.loads(entry)
    assert body["kind"] == ENTRY_KIND, "a transfer row points at a transfer entry"
    assert body["v"] == _ENTRY_VERSION
    amount = body["amount"]
    assert amount.isdigit(), "amounts are decimal text"
    return Transfer(
        transfer_id=body["transfer_id"],
        phase=body["phase"],
        debit_account_id=body["debit_account_id"],
        credit_account_id=body["credit_account_id"],
        asset=body["asset"],
        amount=int(amount),
        pending_id=body.get("pending_id"),
        timeout_s=body.get("timeout_s", 0),
        code=body["code"],
        timestamp_ms=body["timestamp_ms"],
        log_index=log_index,
        pending_status=pending_status,
        expires_at_ms=expires_at_ms,
    )
