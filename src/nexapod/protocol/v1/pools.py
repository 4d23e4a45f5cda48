"""Pools and rewards on the wire: a node's pool and preferences, the pools' summary,
settled epochs with their per-node lines, and the treasury.

Capacities, FLOPs and amounts travel as decimal text: they pass 2^53 (ECONOMICS §1).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from nexapod.protocol.v1._base import WireModel

__all__ = [
    "PoolCount",
    "PoolMemberView",
    "PoolPreferences",
    "PoolSummary",
    "PoolTransitionView",
    "RewardEpochList",
    "RewardEpochView",
    "RewardLineView",
    "TreasuryView",
    "UserShare",
]

IntText = Annotated[str, Field(pattern=r"^-?[0-9]{1,78}$")]
PoolName = Literal["hot", "warm", "cold", "institutional", "none"]


class PoolPreferences(WireModel):
    """What a node asks (signed by the node): stay in warm for resale, volunteer for cold."""

    warm_opt_in: bool | None = None
    cold_opt_in: bool | None = None


class PoolTransitionView(WireModel):
    from_pool: PoolName
    to_pool: PoolName
    reason: str
    at_ms: int
    log_index: int


class PoolMemberView(WireModel):
    node_id: str
    username: str
    pool: PoolName
    reason: str
    since_ms: int | None
    warm_opt_in: bool
    cold_opt_in: bool
    promoted: bool
    transitions: list[PoolTransitionView]  # the latest first, at most a page


class PoolCount(WireModel):
    pool: PoolName
    nodes: int
    capacity_flops_per_s: IntText  # counted up to the node cap


class UserShare(WireModel):
    username: str
    hot_capacity_flops_per_s: IntText
    share: str  # of hot capacity, as a decimal with 6 places


class PoolSummary(WireModel):
    pools: list[PoolCount]
    cold_band_flops_per_s: tuple[IntText, IntText, IntText]  # low, target, high (floored)
    share_cap_binds: bool
    max_user_share: str
    top_users: list[
        UserShare
    ]  # by hot capacity (stand-ins included, as the cap counts), at most 10
    disrupted: bool  # stand-ins are owed: a lost node away, or hot below the jobs' need
    capacity_need_flops_per_s: IntText  # the running jobs' stated needs, summed
    stand_ins_owed_flops_per_s: IntText  # the promoted capacity the disruption calls for


class RewardLineView(WireModel):
    node_id: str
    username: str
    flops: IntText
    capacity_flops_per_s: IntText
    nxc_micro: IntText
    usdc_owed_micro: IntText
    usdc_paid_micro: IntText


class RewardEpochView(WireModel):
    epoch: int
    epoch_s: int
    start_ms: int
    end_ms: int
    policy_sha256: str
    settled_at_ms: int
    nodes_paid: int
    flops_total: IntText
    nxc_micro_total: IntText
    usdc_owed_micro_total: IntText
    usdc_paid_micro_total: IntText
    usdc_shortfall_micro: IntText
    usdc_scale: str  # paid / owed: "1", or the exact fraction "treasury/owed"
    treasury_micro_usdc: IntText
    log_index: int  # of the reward_epoch summary entry
    lines: list[RewardLineView]  # a page, by node id
    next_cursor: str | None


class RewardEpochList(WireModel):
    epochs: list[RewardEpochView]  # newest first, without lines


class TreasuryView(WireModel):
    account_id: str
    available_micro_usdc: IntText
    paid_until_ms: int  # work validated before this was settled
