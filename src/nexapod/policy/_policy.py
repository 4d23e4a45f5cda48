"""The economic policy: one TOML file of every number, checked on load.

Fractions are written as decimal strings ("0.15") and held as ``Decimal``: no binary
float ever reaches money. A value outside its allowed range, a missing or unknown key,
or a value of the wrong kind is a ``policy.invalid`` error naming the key and the range:
the coordinator does not start on it, and nothing is clamped.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from nexapod.crypto import canonical_sha256_hex
from nexapod.errors import NexaPodError

__all__ = [
    "POLICY_BYTES_MAX",
    "Policy",
    "PolicyError",
    "default_policy",
    "load_policy",
    "policy_from_values",
]

POLICY_BYTES_MAX = 64 << 10


class PolicyError(NexaPodError):
    area = "policy"
    status = 422


@dataclass(frozen=True)
class _Rule:
    section: str
    low: int | Decimal
    high: int | Decimal


_RULES: dict[str, _Rule] = {
    "flops_per_nxc": _Rule("rewards", 1, 10**30),
    "flops_per_usdc": _Rule("rewards", 1, 10**30),
    "epoch_s": _Rule("rewards", 60, 7 * 86_400),
    "node_cap_flops_per_s": _Rule("rewards", 5 * 10**14, 10**18),
    "knee_flops_per_s": _Rule("rewards", 1, 10**18),
    "cold_fraction": _Rule("pools", Decimal("0.10"), Decimal("0.20")),
    "institutional_min_flops_per_s": _Rule("pools", 1, 10**24),
    "max_user_share": _Rule("pools", Decimal("0.30"), Decimal("0.40")),
    "share_cap_min_users": _Rule("pools", 1, 1000),
    "stipend_period_s": _Rule("cold", 3600, 31 * 86_400),
    "stipend_micro_nxc": _Rule("cold", 0, 10**15),
    "stipend_base_micro_usdc": _Rule("cold", 0, 10**15),
    "stipend_availability_micro_usdc": _Rule("cold", 0, 10**15),
    "min_availability": _Rule("cold", Decimal(0), Decimal(1)),
}


@dataclass(frozen=True)
class Policy:
    """Every economic number (ECONOMICS.md); see ``policy/default.toml``."""

    flops_per_nxc: int
    flops_per_usdc: int
    epoch_s: int
    node_cap_flops_per_s: int
    knee_flops_per_s: int
    cold_fraction: Decimal
    institutional_min_flops_per_s: int
    max_user_share: Decimal
    share_cap_min_users: int
    stipend_period_s: int
    stipend_micro_nxc: int
    stipend_base_micro_usdc: int
    stipend_availability_micro_usdc: int
    min_availability: Decimal

    def __post_init__(self) -> None:
        assert {f.name for f in fields(self)} == set(_RULES), "every number has a rule"

    def as_dict(self) -> dict[str, str]:
        """Every value as its decimal text: exact in canonical JSON, past 2^53 too."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}

    @property
    def sha256(self) -> str:
        """The policy's identity: the hash of its canonical JSON (recorded in the ledger)."""
        return canonical_sha256_hex(self.as_dict())


def default_policy() -> Policy:
    text = resources.files("nexapod.policy").joinpath("default.toml").read_text("utf-8")
    return _parse(text, "default.toml")


def load_policy(path: Path | None) -> Policy:
    """The policy in ``path``, or the default one when None."""
    if path is None:
        return default_policy()
    try:
        with path.open("rb") as file:
            raw = file.read(POLICY_BYTES_MAX + 1)
    except OSError as exc:
        raise PolicyError("unreadable", f"cannot read the policy {path}: {exc.strerror}") from exc
    if len(raw) > POLICY_BYTES_MAX:
        raise PolicyError("invalid", f"the policy {path} is larger than {POLICY_BYTES_MAX} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError("invalid", f"the policy {path} is not UTF-8") from exc
    return _parse(text, str(path))


def policy_from_values(values: dict[str, str], where: str = "the logged policy") -> Policy:
    """A policy from :meth:`Policy.as_dict` (as a ``policy_activated`` entry holds it).

    Checked exactly like a file: every key, no other, each inside its range.
    """
    if set(values) != set(_RULES):
        raise PolicyError("invalid", f"{where} does not name exactly the policy's keys")
    parsed: dict[str, Any] = {}
    for key, rule in _RULES.items():
        text = values[key]
        if not isinstance(text, str):
            raise PolicyError("invalid", f"{where}: {key} is not decimal text")
        raw: object = text
        if not isinstance(rule.low, Decimal):
            if not text.isdigit():
                raise PolicyError("invalid", f"{where}: {key} = {text!r} is not an integer")
            raw = int(text)
        parsed[key] = _value(key, raw, rule, where)
    return Policy(**parsed)


def _parse(text: str, where: str) -> Policy:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError("invalid", f"{where} is not TOML: {exc}") from exc
    values: dict[str, Any] = {}
    sections = {rule.section for rule in _RULES.values()}
    unknown_sections = set(document) - sections
    if unknown_sections:
        raise PolicyError("invalid", f"{where}: unknown section(s) {sorted(unknown_sections)}")
    for section in sorted(sections):
        table = document.get(section, {})
        if not isinstance(table, dict):
            raise PolicyError("invalid", f"{where}: [{section}] must be a table")
        expected = {key for key, rule in _RULES.items() if rule.section == section}
        unknown = set(table) - expected
        if unknown:
            raise PolicyError(
                "invalid", f"{where}: unknown key(s) {sorted(unknown)} in [{section}]"
            )
        for key in sorted(expected):
            if key not in table:
                raise PolicyError("invalid", f"{where}: [{section}] {key} is missing")
            values[key] = _value(key, table[key], _RULES[key], where)
    return Policy(**values)


def _value(key: str, raw: object, rule: _Rule, where: str) -> int | Decimal:
    allowed = f"allowed {rule.low} to {rule.high}"
    value: int | Decimal
    if isinstance(rule.low, Decimal):
        if not isinstance(raw, str):
            raise PolicyError(
                "invalid", f'{where}: {key} must be a decimal string such as "0.15" ({allowed})'
            )
        try:
            value = Decimal(raw)
        except InvalidOperation as exc:
            raise PolicyError("invalid", f"{where}: {key} = {raw!r} is not a decimal") from exc
        if not value.is_finite():
            raise PolicyError("invalid", f"{where}: {key} must be finite ({allowed})")
    else:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise PolicyError("invalid", f"{where}: {key} must be an integer ({allowed})")
        value = raw
    if not rule.low <= value <= rule.high:
        raise PolicyError(
            "invalid", f"{where}: {key} = {raw} is outside its range ({allowed})", key=key
        )
    return value
