"""The policy file: every number of ECONOMICS.md, checked on load, never clamped."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from nexapod.policy import PolicyError, default_policy, load_policy

DEFAULT_TOML = (Path(__file__).parents[2] / "src/nexapod/policy/default.toml").read_text()


def test_the_default_policy_has_the_numbers_of_economics_md() -> None:
    policy = default_policy()
    assert (policy.flops_per_nxc, policy.flops_per_usdc, policy.epoch_s) == (1000, 20000, 3600)
    assert policy.node_cap_flops_per_s == 5 * 10**14
    assert policy.knee_flops_per_s == 10**13
    assert policy.cold_fraction == Decimal("0.15")
    assert policy.institutional_min_flops_per_s == 10**18
    assert policy.max_user_share == Decimal("0.35")
    assert policy.share_cap_min_users == 3
    assert policy.stipend_period_s == 7 * 86_400
    assert policy.stipend_micro_nxc == 5 * 10**6
    assert (policy.stipend_base_micro_usdc, policy.stipend_availability_micro_usdc) == (
        5 * 10**6,
        5 * 10**6,
    )
    assert policy.min_availability == Decimal("0.90")
    assert len(policy.sha256) == 64


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_a_deployment_file_overrides_and_changes_the_hash(tmp_path: Path) -> None:
    path = _write(tmp_path, DEFAULT_TOML.replace('cold_fraction = "0.15"', 'cold_fraction = "0.2"'))
    policy = load_policy(path)
    assert policy.cold_fraction == Decimal("0.2")
    assert policy.sha256 != default_policy().sha256
    assert load_policy(None) == default_policy()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('cold_fraction = "0.15"', 'cold_fraction = "0.25"', "cold_fraction = 0.25 is outside"),
        ('max_user_share = "0.35"', 'max_user_share = "0.29"', "allowed 0.30 to 0.40"),
        ("node_cap_flops_per_s = 500000000000000", "node_cap_flops_per_s = 1", "node_cap"),
        ('cold_fraction = "0.15"', "cold_fraction = 0.15", 'a decimal string such as "0.15"'),
        ("epoch_s = 3600", 'epoch_s = "3600"', "epoch_s must be an integer"),
        ("epoch_s = 3600", "epoch_s = true", "epoch_s must be an integer"),
        ("epoch_s = 3600", "", "epoch_s is missing"),
        ("epoch_s = 3600", "epoch_s = 3600\nbonus = 1", "unknown key(s) ['bonus']"),
        ("[cold]", "[cold]\n[extra]", "unknown section"),
        ('min_availability = "0.90"', 'min_availability = "NaN"', "must be finite"),
        ("[rewards]", "[rewards", "not TOML"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_key_never_a_clamp(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in DEFAULT_TOML
    with pytest.raises(PolicyError) as refused:
        load_policy(_write(tmp_path, DEFAULT_TOML.replace(old, new, 1)))
    assert refused.value.code == "policy.invalid"
    assert message in refused.value.detail


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(tmp_path / "nope.toml")
    assert refused.value.code == "policy.unreadable"
