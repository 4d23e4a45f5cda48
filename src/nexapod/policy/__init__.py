"""The economic policy file and the pure reward arithmetic (ECONOMICS.md)."""

from nexapod.policy._policy import (
    POLICY_BYTES_MAX,
    Policy,
    PolicyError,
    default_policy,
    load_policy,
    policy_from_values,
)
from nexapod.policy._rewards import DIGITS, RewardQuote, quote, quote_micro, quotes_micro

__all__ = [
    "DIGITS",
    "POLICY_BYTES_MAX",
    "Policy",
    "PolicyError",
    "RewardQuote",
    "default_policy",
    "load_policy",
    "policy_from_values",
    "quote",
    "quote_micro",
    "quotes_micro",
]
