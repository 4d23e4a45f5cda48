"""A transfer's entry on the fast path is byte for byte the rfc8785 package's, and reads back."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from nexapod.ledger.accounts import parse_account_id
from nexapod.ledger.rules import (
    AMOUNT_MAX,
    TIMEOUT_S_MAX,
    NewTransfer,
    Transfer,
    check_batch,
    is_transfer_id,
    transfer_entry_body,
)
from nexapod.ledger.transfer_entry import decode_transfer_entry, encode_transfer_entry

HEX_IDS = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).filter(
    lambda tid: tid != "0" * 32
)
USERNAMES = st.from_regex(r"[a-z][a-z0-9_-]{2,31}", fullmatch=True)
SYSTEM_NAMES = st.from_regex(r"[a-z][a-z0-9_]{1,31}", fullmatch=True)
ASSETS = st.sampled_from(["NXC", "USDC", "USD"])
CODES = st.from_regex(r"[a-z][a-z0-9_.]{0,31}", fullmatch=True)


@st.composite
def account_ids(draw: st.DrawFn, asset: str) -> str:
    if draw(st.booleans()):
        return f"user:{draw(USERNAMES)}:{asset}"
    return f"system:{draw(SYSTEM_NAMES)}:{asset}"


@st.composite
def transfers(draw: st.DrawFn) -> Transfer:
    """Any transfer the rules can create: every phase, any amount, id, account and code
    the batch checks let through."""
    asset = draw(ASSETS)
    phase = draw(st.sampled_from(["single", "pending", "post_pending", "void_pending"]))
    timeout_s = draw(st.integers(0, TIMEOUT_S_MAX)) if phase == "pending" else 0
    timestamp_ms = draw(st.integers(0, 2**53 - 1 - 1000 * TIMEOUT_S_MAX))
    return Transfer(
        transfer_id=draw(HEX_IDS),
        phase=phase,
        debit_account_id=draw(account_ids(asset)),
        credit_account_id=draw(account_ids(asset)),
        asset=asset,
        amount=draw(st.integers(1, AMOUNT_MAX) | st.integers(1, 2**70)),
        pending_id=draw(HEX_IDS) if phase in ("post_pending", "void_pending") else None,
        timeout_s=timeout_s,
        code=draw(CODES),
        timestamp_ms=timestamp_ms,
        log_index=draw(st.integers(0, 2**62)),
    )


def _reference(transfer: Transfer) -> bytes:
    body = {"kind": "transfer", "v": 1, **transfer_entry_body(transfer)}
    result: bytes = rfc8785.dumps(body)
    return result


@given(transfers())
def test_the_fast_path_is_rfc8785(transfer: Transfer) -> None:
    assert encode_transfer_entry(transfer) == _reference(transfer)


@given(transfers(), st.sampled_from([None, "pending", "posted", "voided", "expired"]))
def test_an_entry_reads_back_as_its_transfer(transfer: Transfer, status: str | None) -> None:
    expires_at_ms = transfer.timestamp_ms + 1000 * transfer.timeout_s
    stored = transfer._replace(pending_status=status, expires_at_ms=expires_at_ms)
    entry = encode_transfer_entry(stored)
    assert decode_transfer_entry(entry, stored.log_index, status, expires_at_ms) == stored


def test_a_value_that_would_need_escaping_is_caught() -> None:
    """The checks refuse such a transfer first; should they be skipped, the encoder's own
    assertions refuse to write an entry that is not canonical JSON."""
    sample = Transfer(
        "1" * 32, "single", "user:alice:NXC", "user:bob:NXC", "NXC", 5, None, 0, "x", 7, 0
    )
    assert encode_transfer_entry(sample) == _reference(sample)
    for bad in ('a"b', "a\\b"):
        with pytest.raises(AssertionError):
            encode_transfer_entry(sample._replace(code=bad))
    with pytest.raises(AssertionError):
        encode_transfer_entry(sample._replace(timestamp_ms=2**53))


@given(transfers())
def test_the_strategy_draws_only_what_the_checks_let_through(transfer: Transfer) -> None:
    """So the property above covers exactly the values that can reach the encoder."""
    assert parse_account_id(transfer.debit_account_id) is not None
    assert parse_account_id(transfer.credit_account_id) is not None
    assert is_transfer_id(transfer.transfer_id)
    assert transfer.pending_id is None or is_transfer_id(transfer.pending_id)
    check_batch(
        [NewTransfer(transfer.transfer_id, "user:abc:NXC", "user:abd:NXC", 1, code=transfer.code)]
    )
