"""Replaying the public log from an empty state: every balance, checked entry by entry.

This is the verifier's own account of the money, written apart from the service's rules
on purpose: it reads only what the log publishes and folds it into TigerBeetle-style
totals per account, refusing the first entry that could not have been committed by an
honest ledger (a bad format, a repeated id, an asset mismatch, a hold that does not exist
or is already resolved, an account other than an issuer going below zero).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from nexapod.crypto import canonical_json
from nexapod.ledger.accounts import may_go_negative, parse_account_id

__all__ = ["ENTRY_KINDS_MONEY", "AccountTotals", "Replay", "ReplayError"]

ENTRY_KINDS_MONEY = ("transfer", "transfer_expired")
_TRANSFER_ID = re.compile(r"[0-9a-f]{32}")
_AMOUNT = re.compile(r"0|[1-9][0-9]{0,77}")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")


class ReplayError(Exception):
    """The entry at ``leaf_index`` is wrong; ``reason`` says how."""

    def __init__(self, leaf_index: int, reason: str) -> None:
        super().__init__(f"entry {leaf_index}: {reason}")
        self.leaf_index = leaf_index
        self.reason = reason


@dataclass
class AccountTotals:
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def available(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending

    def as_text(self) -> dict[str, str]:
        return {
            "debits_pending": str(self.debits_pending),
            "debits_posted": str(self.debits_posted),
            "credits_pending": str(self.credits_pending),
            "credits_posted": str(self.credits_posted),
        }


@dataclass(frozen=True)
class _Hold:
    debit_account_id: str
    credit_account_id: str
    asset: str
    amount: int


@dataclass
class Replay:
    """The state after the entries fed so far (``size`` of them)."""

    size: int = 0
    accounts: dict[str, AccountTotals] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    _transfer_ids: set[bytes] = field(default_factory=set)
    _open_holds: dict[str, _Hold] = field(default_factory=dict)
    _asset_of: dict[str, str] = field(default_factory=dict)  # account ids seen, checked

    def feed(self, entry: bytes) -> None:
        """Apply the next entry (index ``size``); raises ReplayError if it is wrong."""
        index = self.size
        try:
            body = json.loads(entry)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ReplayError(index, f"not JSON ({exc})") from exc
        if type(body) is not dict:
            raise ReplayError(index, "not a JSON object")
        if not _is_canonical(body, entry):
            raise ReplayError(index, "not in canonical JSON (RFC 8785)")
        kind = body.get("kind")
        known = type(kind) is str and kind in self.kinds  # its format was checked already
        if not known and (not isinstance(kind, str) or not _KIND.fullmatch(kind)):
            raise ReplayError(index, "no valid kind and version")
        if body.get("v") != 1:
            raise ReplayError(index, "no valid kind and version")
        assert isinstance(kind, str)
        if kind == "transfer":
            self._transfer(index, body)
        elif kind == "transfer_expired":
            self._expired(index, body)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.size += 1

    def _transfer(self, index: int, body: dict[str, object]) -> None:
        tid = _text(index, body, "transfer_id")
        if not _TRANSFER_ID.fullmatch(tid) or tid == "0" * 32:
            raise ReplayError(index, f"transfer id {tid!r} is malformed")
        key = bytes.fromhex(tid)
        if key in self._transfer_ids:
            raise ReplayError(index, f"transfer {tid} appears twice")
        phase = _text(index, body, "phase")
        debit_id, credit_id = self._accounts(index, body)
        asset = body["asset"]
        assert isinstance(asset, str)  # checked by _accounts
        amount = _amount(index, body)
        if phase in ("single", "pending"):
            if amount <= 0:
                raise ReplayError(index, "a transfer moves a positive amount")
            if phase == "single":
                self._totals(debit_id).debits_posted += amount
                self._totals(credit_id).credits_posted += amount
            else:
                self._totals(debit_id).debits_pending += amount
                self._totals(credit_id).credits_pending += amount
                self._open_holds[tid] = _Hold(debit_id, credit_id, asset, amount)
        elif phase in ("post_pending", "void_pending"):
            hold = self._resolve(index, body)
            if (hold.debit_account_id, hold.credit_account_id) != (debit_id, credit_id):
                raise ReplayError(index, "resolves a hold between other accounts")
            if phase == "post_pending":
                if amount > hold.amount:
                    raise ReplayError(index, f"posts {amount}, more than the {hold.amount} held")
                self._totals(debit_id).debits_posted += amount
                self._totals(credit_id).credits_posted += amount
            elif amount != hold.amount:
                raise ReplayError(index, "a void names another amount than the hold's")
        else:
            raise ReplayError(index, f"unknown transfer phase {phase!r}")
        self._transfer_ids.add(key)
        self._check_available(index, debit_id)

    def _expired(self, index: int, body: dict[str, object]) -> None:
        hold = self._resolve(index, body)
        if self._accounts(index, body) != (hold.debit_account_id, hold.credit_account_id):
            raise ReplayError(index, "expires a hold between other accounts")
        if _amount(index, body) != hold.amount:
            raise ReplayError(index, "expires another amount than the hold's")

    def _resolve(self, index: int, body: dict[str, object]) -> _Hold:
        """Close the hold ``pending_id`` names and release it from both accounts."""
        pending_id = _text(index, body, "pending_id")
        hold = self._open_holds.pop(pending_id, None)
        if hold is None:
            raise ReplayError(index, f"hold {pending_id} is not open")
        debit, credit = self._totals(hold.debit_account_id), self._totals(hold.credit_account_id)
        debit.debits_pending -= hold.amount
        credit.credits_pending -= hold.amount
        assert debit.debits_pending >= 0 and credit.credits_pending >= 0
        return hold

    def _accounts(self, index: int, body: dict[str, object]) -> tuple[str, str]:
        debit_id = _text(index, body, "debit_account_id")
        credit_id = _text(index, body, "credit_account_id")
        asset = _text(index, body, "asset")
        assets = self._asset_of
        if assets.get(debit_id) == asset and assets.get(credit_id) == asset:
            if debit_id == credit_id:
                raise ReplayError(index, "debits and credits the same account")
            return debit_id, credit_id  # both ids already parsed and checked
        for account_id in (debit_id, credit_id):
            ref = parse_account_id(account_id)
            if ref is None:
                raise ReplayError(index, f"account id {account_id!r} is malformed")
            if ref.asset != asset:
                raise ReplayError(index, f"account {account_id} does not hold {asset}")
            assets[account_id] = asset
        if debit_id == credit_id:
            raise ReplayError(index, "debits and credits the same account")
        return debit_id, credit_id

    def _totals(self, account_id: str) -> AccountTotals:
        totals = self.accounts.get(account_id)
        if totals is None:
            totals = self.accounts[account_id] = AccountTotals()
        return totals

    def _check_available(self, index: int, account_id: str) -> None:
        if not may_go_negative(account_id) and self._totals(account_id).available < 0:
            raise ReplayError(index, f"account {account_id} goes below zero")


_PLAIN_INT_MAX = 2**53 - 1
_SORTED_COMPACT = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _is_canonical(body: dict[str, object], entry: bytes) -> bool:
    """``entry`` is the RFC 8785 form of ``body``.

    Ledger entries are flat objects of ASCII text and small integers; for those, sorted
    compact JSON is RFC 8785 byte for byte (see ``crypto.canonical_json``), checked here
    without walking the value twice. Anything else takes the general path.
    """
    flat = entry.isascii() and all(
        type(v) is str or (type(v) is int and -_PLAIN_INT_MAX <= v <= _PLAIN_INT_MAX)
        for v in body.values()
    )
    if flat:
        return (
            _SORTED_COMPACT.encode(body).encode() == entry
        )  # an escaped non-ASCII character is not canonical
    try:
        return canonical_json(body) == entry
    except ValueError:
        return False


def _text(index: int, body: dict[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ReplayError(index, f"field {name} is missing or not text")
    return value


def _amount(index: int, body: dict[str, object]) -> int:
    text = _text(index, body, "amount")
    if not _AMOUNT.fullmatch(text):
        raise ReplayError(index, f"amount {text!r} is not a decimal integer")
    return int(text)
