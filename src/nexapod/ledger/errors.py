"""Errors of accounts and transfers.

    NexaPodError
     +-- LedgerError                  ledger.*   refused transfers, unknown accounts

A refused batch names the transfer at fault by its position (``item_index``) and its
id; nothing of the batch is applied. Codes are stable: clients act on them.
"""

from __future__ import annotations

from nexapod.errors import NexaPodError

__all__ = [
    "LedgerError",
    "account_not_yours",
    "amount_exceeds_pending",
    "amount_not_integer",
    "amount_not_positive",
    "amount_too_large",
    "asset_mismatch",
    "balance_overflow",
    "code_invalid",
    "cursor_invalid",
    "duplicate_transfer_id",
    "history_behind",
    "insufficient_funds",
    "malformed_account_id",
    "malformed_transfer_id",
    "pending_account_mismatch",
    "pending_already_resolved",
    "pending_amount_mismatch",
    "pending_expired",
    "pending_id_invalid",
    "pending_id_not_allowed",
    "pending_not_found",
    "phase_invalid",
    "same_account",
    "timeout_invalid",
    "too_many_transfers",
    "transfer_id_conflict",
    "transfer_not_pending",
    "unknown_account",
]


class LedgerError(NexaPodError):
    area = "ledger"
    status = 422


def _item(name: str, detail: str, index: int, transfer_id: str, status: int = 422) -> LedgerError:
    return LedgerError(name, detail, status=status, item_index=index, transfer_id=transfer_id)


def too_many_transfers(count: int, count_max: int) -> LedgerError:
    return LedgerError(
        "too_many_transfers",
        f"{count} transfers in one batch; at most {count_max}",
        status=413,
        transfers_max=count_max,
    )


def malformed_transfer_id(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "malformed_transfer_id",
        f"transfer {index}: an id is 32 lower-case hex characters, not all zero",
        index,
        transfer_id[:64],
    )


def duplicate_transfer_id(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "duplicate_transfer_id",
        f"transfer {index}: id {transfer_id} appears earlier in the same batch",
        index,
        transfer_id,
    )


def phase_invalid(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "phase_invalid",
        f"transfer {index}: phase is one of single, pending, post_pending, void_pending",
        index,
        transfer_id,
    )


def code_invalid(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "code_invalid",
        f"transfer {index}: code is 1-32 characters of a-z, 0-9, '_' and '.', "
        "starting with a letter",
        index,
        transfer_id,
    )


def malformed_account_id(index: int, transfer_id: str, account_id: object) -> LedgerError:
    return _item(
        "malformed_account_id",
        f"transfer {index}: {str(account_id)[:64]!r} is not an account id "
        "(user:<username>:<ASSET> or system:<name>:<ASSET>; ASSET is NXC, USDC or USD)",
        index,
        transfer_id,
    )


def amount_not_integer(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "amount_not_integer",
        f"transfer {index}: the amount must be a whole number of base units",
        index,
        transfer_id,
    )


def amount_not_positive(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "amount_not_positive", f"transfer {index}: the amount must be positive", index, transfer_id
    )


def amount_too_large(index: int, transfer_id: str, digits_max: int) -> LedgerError:
    return _item(
        "amount_too_large",
        f"transfer {index}: an amount has at most {digits_max} digits",
        index,
        transfer_id,
    )


def same_account(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "same_account",
        f"transfer {index}: the debit and credit accounts are the same",
        index,
        transfer_id,
    )


def pending_id_invalid(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "pending_id_invalid",
        f"transfer {index}: posting or voiding needs pending_id, the id of an earlier "
        "pending transfer (32 lower-case hex, not this transfer's own id)",
        index,
        transfer_id,
    )


def pending_id_not_allowed(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "pending_id_not_allowed",
        f"transfer {index}: only post_pending and void_pending name a pending_id",
        index,
        transfer_id,
    )


def timeout_invalid(index: int, transfer_id: str, timeout_s_max: int) -> LedgerError:
    return _item(
        "timeout_invalid",
        f"transfer {index}: only a pending transfer has a timeout, of 0 (none) to "
        f"{timeout_s_max} s",
        index,
        transfer_id,
    )


def account_not_yours(index: int, transfer_id: str, account_id: str) -> LedgerError:
    return _item(
        "account_not_yours",
        f"transfer {index}: you may debit only your own accounts, not {account_id}",
        index,
        transfer_id,
        status=403,
    )


def unknown_account(
    account_id: str, index: int | None = None, transfer_id: str = ""
) -> LedgerError:
    detail = (
        f"no account {account_id}: a user account opens on first use once the user is registered"
    )
    if index is None:
        return LedgerError("unknown_account", detail, status=404, account_id=account_id)
    return _item("unknown_account", f"transfer {index}: {detail}", index, transfer_id, status=404)


def asset_mismatch(
    index: int, transfer_id: str, debit_asset: str, credit_asset: str
) -> LedgerError:
    return _item(
        "asset_mismatch",
        f"transfer {index}: the debit account holds {debit_asset} and the credit account "
        f"{credit_asset}; a transfer moves one asset",
        index,
        transfer_id,
    )


def insufficient_funds(
    index: int, transfer_id: str, account_id: str, available: int, amount: int
) -> LedgerError:
    error = _item(
        "insufficient_funds",
        f"transfer {index}: {account_id} has {available} base units available "
        f"(pending debits counted), the transfer needs {amount}",
        index,
        transfer_id,
        status=409,
    )
    error.extra.update(account_id=account_id, available=str(available), amount=str(amount))
    return error


def balance_overflow(index: int, transfer_id: str, account_id: str) -> LedgerError:
    return _item(
        "balance_overflow",
        f"transfer {index}: {account_id}'s totals would exceed what the ledger stores",
        index,
        transfer_id,
    )


def transfer_id_conflict(index: int, transfer_id: str) -> LedgerError:
    return _item(
        "transfer_id_conflict",
        f"transfer {index}: id {transfer_id} was already used for a different transfer; "
        "a retry must repeat the same body, a new transfer needs a new id",
        index,
        transfer_id,
        status=409,
    )


def pending_not_found(index: int, transfer_id: str, pending_id: str) -> LedgerError:
    return _item(
        "pending_not_found",
        f"transfer {index}: no transfer with id {pending_id}",
        index,
        transfer_id,
        status=404,
    )


def transfer_not_pending(index: int, transfer_id: str, pending_id: str) -> LedgerError:
    return _item(
        "transfer_not_pending",
        f"transfer {index}: transfer {pending_id} is not a pending transfer",
        index,
        transfer_id,
    )


def pending_already_resolved(
    index: int, transfer_id: str, pending_id: str, pending_status: str
) -> LedgerError:
    return _item(
        "pending_already_resolved",
        f"transfer {index}: pending transfer {pending_id} was already {pending_status}",
        index,
        transfer_id,
        status=409,
    )


def pending_expired(index: int, transfer_id: str, pending_id: str) -> LedgerError:
    return _item(
        "pending_expired",
        f"transfer {index}: pending transfer {pending_id} passed its timeout; its hold is released",
        index,
        transfer_id,
        status=410,
    )


def pending_account_mismatch(index: int, transfer_id: str, pending_id: str) -> LedgerError:
    return _item(
        "pending_account_mismatch",
        f"transfer {index}: the accounts differ from pending transfer {pending_id}'s "
        "(leave them out to use the pending transfer's)",
        index,
        transfer_id,
    )


def amount_exceeds_pending(index: int, transfer_id: str, pending_amount: int) -> LedgerError:
    return _item(
        "amount_exceeds_pending",
        f"transfer {index}: at most the held {pending_amount} base units can be posted",
        index,
        transfer_id,
    )


def pending_amount_mismatch(index: int, transfer_id: str, pending_amount: int) -> LedgerError:
    return _item(
        "pending_amount_mismatch",
        f"transfer {index}: voiding releases the whole hold of {pending_amount} base units; "
        "leave the amount out or give exactly that",
        index,
        transfer_id,
    )


def cursor_invalid(cursor: str) -> LedgerError:
    return LedgerError("cursor_invalid", f"{cursor[:32]!r} is not a cursor from this listing")


def history_behind(tail_entries: int, tail_entries_max: int, retry_after_s: int) -> LedgerError:
    return LedgerError(
        "history_behind",
        f"the history index is {tail_entries} log entries behind (at most "
        f"{tail_entries_max} are read unindexed): the integrator is catching up, ask again",
        status=503,
        retry_after_s=retry_after_s,
    )
