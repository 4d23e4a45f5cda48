"""The synthetic population of the economy simulator, drawn from a seed (pure).

Who the simulator's nodes are: their users, capacities, utilisation, reliability and
pool preferences. Nothing here touches a store or a clock; the random generator is an
argument, so one seed gives one population.

    ordinary users   own 1 to ``nodes_per_user_max`` nodes (a power law: most own one or
                     two, a few own dozens); capacities log-uniform from a laptop
                     (5e10 FLOP/s) to a workstation GPU (1e14), and a few clusters
                     (5e14 to 1e16)
    the dominant     one user owning ``dominant_node_fraction`` of the nodes, all of them
                     GPU rigs (2e13 to 2e14), and adding more as the run goes: uncapped, it
                     would hold about half of hot capacity
    the institution  one verified institution with a few large nodes (1e15 to 5e15)

Capacities are integers (FLOP/s); probabilities and utilisation are floats, since they
are the simulation's dice, never money.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = [
    "CLUSTER_FLOPS_PER_S",
    "DOMINANT",
    "DOMINANT_FLOPS_PER_S",
    "INSTITUTION",
    "INSTITUTION_FLOPS_PER_S",
    "NODES_MAX",
    "ORDINARY_FLOPS_PER_S",
    "NodeSpec",
    "Population",
    "PopulationConfig",
    "draw_arrival",
    "draw_population",
    "log_uniform",
]

NODES_MAX = 200_000
DOMINANT = "dominant"
INSTITUTION = "institute"
ORDINARY_FLOPS_PER_S = (5 * 10**10, 10**14)  # laptop to workstation GPU
CLUSTER_FLOPS_PER_S = (5 * 10**14, 10**16)
DOMINANT_FLOPS_PER_S = (2 * 10**13, 2 * 10**14)
INSTITUTION_FLOPS_PER_S = (10**15, 5 * 10**15)


@dataclass(frozen=True)
class PopulationConfig:
    """The shape of the population (the CLI exposes nodes and seed; the rest are defaults)."""

    nodes: int
    dominant_node_fraction: float = 0.18
    institution_nodes: int = 24
    cluster_fraction: float = 0.005
    nodes_per_user_max: int = 64
    nodes_per_user_exponent: float = 1.6  # P(k nodes) ~ k^-exponent: a mean of about 4
    warm_opt_in_fraction: float = 0.5
    cold_opt_in_fraction: float = 0.2
    arrival_existing_user_fraction: float = 0.3  # the rest of arrivals are new users

    def __post_init__(self) -> None:
        assert 1 <= self.nodes <= NODES_MAX, f"nodes in [1, {NODES_MAX}]"
        assert 0 <= self.dominant_node_fraction < 1
        assert 0 <= self.institution_nodes <= self.nodes
        assert 0 <= self.cold_opt_in_fraction <= 1
        assert 0 <= self.warm_opt_in_fraction <= 1
        assert self.nodes_per_user_max >= 1


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One synthetic node: who owns it, what it can do, how it behaves."""

    node_id: str
    username: str
    capacity_flops_per_s: int
    utilisation: float  # the fraction of its capacity its validated work averages
    reliability: float  # the chance it answers a liveness challenge in time
    warm_opt_in: bool
    cold_opt_in: bool  # a standby volunteer: it waits for the manager, it asks for no work

    def __post_init__(self) -> None:
        assert self.capacity_flops_per_s > 0
        assert 0 < self.utilisation <= 1
        assert 0 <= self.reliability <= 1


@dataclass(frozen=True)
class Population:
    nodes: tuple[NodeSpec, ...]
    ordinary_users: tuple[str, ...]

    @property
    def usernames(self) -> list[str]:
        return sorted({node.username for node in self.nodes})


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    """An integer drawn log-uniformly from [low, high]: as many laptops per decade as GPUs."""
    assert 0 < low <= high
    value = int(math.exp(rng.uniform(math.log(low), math.log(high))))
    return min(max(value, low), high)


def _nodes_per_user(rng: random.Random, config: PopulationConfig) -> int:
    """A truncated power law over 1..nodes_per_user_max (inverse transform on the weights)."""
    weights = [k**-config.nodes_per_user_exponent for k in range(1, config.nodes_per_user_max + 1)]
    return rng.choices(range(1, config.nodes_per_user_max + 1), weights=weights)[0]


def node_id_of(index: int) -> str:
    assert 0 <= index < 10**9
    return f"n{index:09d}"


def _spec(
    rng: random.Random,
    config: PopulationConfig,
    index: int,
    username: str,
    flops_range: tuple[int, int],
    volunteers: bool = True,
) -> NodeSpec:
    return NodeSpec(
        node_id=node_id_of(index),
        username=username,
        capacity_flops_per_s=log_uniform(rng, *flops_range),
        utilisation=rng.uniform(0.5, 0.95),
        reliability=rng.uniform(0.85, 1.0),
        warm_opt_in=volunteers and rng.random() < config.warm_opt_in_fraction,
        cold_opt_in=volunteers and rng.random() < config.cold_opt_in_fraction,
    )


def _ordinary_range(rng: random.Random, config: PopulationConfig) -> tuple[int, int]:
    return CLUSTER_FLOPS_PER_S if rng.random() < config.cluster_fraction else ORDINARY_FLOPS_PER_S


def draw_population(config: PopulationConfig, rng: random.Random) -> Population:
    """The nodes registered at the start: the institution, the dominant user, everyone else."""
    nodes: list[NodeSpec] = []
    for _ in range(config.institution_nodes):
        nodes.append(_spec(rng, config, len(nodes), INSTITUTION, INSTITUTION_FLOPS_PER_S, False))
    dominant_nodes = int(config.nodes * config.dominant_node_fraction)
    for _ in range(dominant_nodes):
        nodes.append(_spec(rng, config, len(nodes), DOMINANT, DOMINANT_FLOPS_PER_S))
    users: list[str] = []
    for _ in range(config.nodes):  # bounded: every pass adds at least one node
        if len(nodes) >= config.nodes:
            break
        username = f"u{len(users):06d}"
        users.append(username)
        owned = min(_nodes_per_user(rng, config), config.nodes - len(nodes))
        for _ in range(owned):
            nodes.append(_spec(rng, config, len(nodes), username, _ordinary_range(rng, config)))
    assert len(nodes) == config.nodes
    assert len({node.node_id for node in nodes}) == len(nodes)
    return Population(tuple(nodes), tuple(users))


def draw_arrival(
    rng: random.Random, config: PopulationConfig, index: int, users: list[str]
) -> tuple[NodeSpec, bool]:
    """A node joining during the run, and whether its user is new (appended to ``users``).

    Most arrivals are new users with one node; some are existing users adding one.
    """
    if users and rng.random() < config.arrival_existing_user_fraction:
        return _spec(rng, config, index, rng.choice(users), _ordinary_range(rng, config)), False
    username = f"u{len(users):06d}"
    users.append(username)
    return _spec(rng, config, index, username, _ordinary_range(rng, config)), True


def draw_dominant_node(rng: random.Random, config: PopulationConfig, index: int) -> NodeSpec:
    """Another GPU rig of the dominant user, who keeps adding capacity to beat the cap."""
    return _spec(rng, config, index, DOMINANT, DOMINANT_FLOPS_PER_S)
