"""Assets, their base units, and the account-id scheme of the ledger (pure).

Every account holds one asset, counted in that asset's base unit (ECONOMICS §1):

| asset | base unit | per whole unit |
| --- | --- | --- |
| ``NXC`` | micro-NXC | 10^6 |
| ``USDC`` | micro-USDC | 10^6 |
| ``USD`` | cent | 10^2 |

Account ids are readable and stable, and say who owns the account and what it holds:

    user:<username>:<ASSET>     a contributor's account; opened on first use
    system:<name>:<ASSET>       one of the coordinator's own accounts (below)

| system account | may go negative | what it is |
| --- | --- | --- |
| ``system:issuance:NXC`` | yes | NXC is minted by debiting it (rewards, stipends) |
| ``system:treasury:{NXC,USDC,USD}`` | no | the funded reward treasury |
| ``system:fees:{NXC,USDC,USD}`` | no | marketplace and exchange fees |
| ``system:escrow:{NXC,USDC,USD}`` | no | money held for leases and orders |
| ``system:burn:NXC`` | no | NXC taken out of circulation (redemptions) |
| ``system:usdc_gateway:USDC`` | yes | USDC entering and leaving through the chain |
| ``system:fiat_gateway:USD`` | yes | fiat entering and leaving through the payment provider |

Whether an account may go negative is a function of its id alone, so anyone replaying
the public log can check that no other account ever went below zero.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal, NewType

from nexapod.protocol.v1.registry import USERNAME_PATTERN

__all__ = [
    "ACCOUNT_ID_CHARS_MAX",
    "ACCOUNT_ID_PATTERN",
    "ASSETS",
    "BASE_UNITS_PER_WHOLE",
    "SYSTEM_ACCOUNTS",
    "AccountRef",
    "Asset",
    "Cents",
    "MicroNxc",
    "MicroUsdc",
    "format_amount",
    "may_go_negative",
    "mint_account_id",
    "parse_account_id",
    "system_account_id",
    "user_account_id",
]

Asset = Literal["NXC", "USDC", "USD"]
ASSETS: tuple[Asset, ...] = ("NXC", "USDC", "USD")
BASE_UNITS_PER_WHOLE: dict[str, int] = {"NXC": 10**6, "USDC": 10**6, "USD": 10**2}

MicroNxc = NewType("MicroNxc", int)
MicroUsdc = NewType("MicroUsdc", int)
Cents = NewType("Cents", int)

SYSTEM_NAME_PATTERN = r"[a-z][a-z0-9_]{1,31}"
ACCOUNT_ID_PATTERN = (
    rf"^(user:{USERNAME_PATTERN.strip('^$')}|system:{SYSTEM_NAME_PATTERN}):(NXC|USDC|USD)$"
)
ACCOUNT_ID_CHARS_MAX = 48
PARSED_CACHE_MAX = 1 << 16
_ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)

# id -> may go negative. Migration 0002 creates exactly these rows; a later system
# account needs its own migration (the service also opens a missing one on first use).
SYSTEM_ACCOUNTS: dict[str, bool] = {
    "system:issuance:NXC": True,
    "system:treasury:NXC": False,
    "system:treasury:USDC": False,
    "system:treasury:USD": False,
    "system:fees:NXC": False,
    "system:fees:USDC": False,
    "system:fees:USD": False,
    "system:escrow:NXC": False,
    "system:escrow:USDC": False,
    "system:escrow:USD": False,
    "system:burn:NXC": False,
    "system:usdc_gateway:USDC": True,
    "system:fiat_gateway:USD": True,
}
_MINT_ACCOUNTS = {
    "NXC": "system:issuance:NXC",
    "USDC": "system:usdc_gateway:USDC",
    "USD": "system:fiat_gateway:USD",
}


@dataclass(frozen=True, slots=True)
class AccountRef:
    """A parsed account id."""

    kind: Literal["user", "system"]
    name: str
    asset: Asset

    @property
    def owner(self) -> str:
        """``user:<username>`` or ``system:<name>``."""
        return f"{self.kind}:{self.name}"

    @property
    def account_id(self) -> str:
        return f"{self.kind}:{self.name}:{self.asset}"


@functools.lru_cache(maxsize=PARSED_CACHE_MAX)
def parse_account_id(text: str) -> AccountRef | None:
    """The parts of a well-formed account id, or ``None`` (cached: ids repeat a lot)."""
    if (
        not isinstance(text, str)
        or len(text) > ACCOUNT_ID_CHARS_MAX
        or _ACCOUNT_ID.fullmatch(text) is None
    ):
        return None
    kind, name, asset = text.split(":")
    assert kind in ("user", "system")
    assert asset in ASSETS
    return AccountRef(kind, name, asset)  # type: ignore[arg-type]


def user_account_id(username: str, asset: Asset) -> str:
    """``user:<username>:<ASSET>``."""
    account_id = f"user:{username}:{asset}"
    assert parse_account_id(account_id) is not None, account_id
    return account_id


def system_account_id(name: str, asset: Asset) -> str:
    """``system:<name>:<ASSET>`` of an account in :data:`SYSTEM_ACCOUNTS`."""
    account_id = f"system:{name}:{asset}"
    assert account_id in SYSTEM_ACCOUNTS, account_id
    return account_id


def mint_account_id(asset: Asset) -> str:
    """The account new money of ``asset`` comes from: the issuer or the asset's gateway."""
    account_id = _MINT_ACCOUNTS[asset]
    assert SYSTEM_ACCOUNTS[account_id], "a mint account may go negative"
    return account_id


def may_go_negative(account_id: str) -> bool:
    """Only issuers and gateways: every other account's available balance stays >= 0."""
    return SYSTEM_ACCOUNTS.get(account_id, False)


def format_amount(amount: int, asset: str) -> str:
    """Base units as whole units with exact decimals: 1500000 NXC -> ``1.500000 NXC``."""
    per_whole = BASE_UNITS_PER_WHOLE[asset]
    assert per_whole > 1
    digits = len(str(per_whole)) - 1
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), per_whole)
    return f"{sign}{whole:,}.{fraction:0{digits}d} {asset}"
