"""What happens to the synthetic nodes each epoch: churn, outages, work and liveness (pure).

The world is the simulator's memory of the nodes as machines (online or not, for how
long, how reliable); their pools live in the store and are decided by the real pool
code. Every draw takes the epoch and the seeded generator, so one seed replays one run.

    churn      each node leaves for good with probability churn_per_day / 24 per epoch,
               and as many arrive on average (Poisson); the dominant user adds
               dominant_growth_per_day of its nodes per day
    outages    an online node fails with probability outage_per_day / 24 per epoch and
               comes back after 1 + Geometric(outage_epochs_mean) epochs
    work       a working node's validated FLOPs are capacity x utilisation x seconds,
               with utilisation jittered by +-10 % each epoch
    liveness   a cold node answers a challenge when online, with its reliability
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from nexapod.sim.population import (
    DOMINANT,
    INSTITUTION,
    NodeSpec,
    Population,
    PopulationConfig,
    draw_arrival,
    draw_dominant_node,
)

__all__ = [
    "ARRIVALS_PER_EPOCH_MAX",
    "WORK_FLOPS_PIECE_MAX",
    "EpochEvents",
    "World",
    "WorldConfig",
    "poisson",
    "work_pieces",
]

ARRIVALS_PER_EPOCH_MAX = 10_000
WORK_FLOPS_PIECE_MAX = 2**62  # one result's FLOPs: a unit's count fits 63 bits with room


@dataclass(frozen=True)
class WorldConfig:
    churn_per_day: float = 0.01
    outage_per_day: float = 0.02
    outage_epochs_mean: float = 6.0
    dominant_growth_per_day: float = 0.02

    def __post_init__(self) -> None:
        assert 0 <= self.churn_per_day <= 1
        assert 0 <= self.outage_per_day <= 1
        assert self.outage_epochs_mean >= 1
        assert 0 <= self.dominant_growth_per_day <= 1


@dataclass(frozen=True)
class EpochEvents:
    departures: list[str]
    arrivals: list[NodeSpec]
    new_users: list[str]
    failures: list[tuple[str, int]]  # (node_id, epochs away)


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; bounded by ARRIVALS_PER_EPOCH_MAX (means here are a few dozen)."""
    assert 0 <= mean < 500, "Knuth's method underflows past a few hundred"
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit and count < ARRIVALS_PER_EPOCH_MAX:
        count += 1
        product *= rng.random()
    return count


def work_pieces(flops: int) -> list[int]:
    """A node's FLOPs of an epoch as results that each fit a unit's 63-bit count."""
    assert flops > 0
    pieces = -(-flops // WORK_FLOPS_PIECE_MAX)
    base, extra = divmod(flops, pieces)
    out = [base + (1 if i < extra else 0) for i in range(pieces)]
    assert sum(out) == flops
    assert max(out) <= WORK_FLOPS_PIECE_MAX
    return out


@dataclass
class World:
    """The nodes as machines: specs, who left, who is down until when."""

    population_config: PopulationConfig
    config: WorldConfig
    specs: dict[str, NodeSpec]
    users: list[str]
    departed: set[str] = field(default_factory=set)
    down_until: dict[str, int] = field(default_factory=dict)  # node_id -> epoch it is back
    next_index: int = 0

    @classmethod
    def start(
        cls, population: Population, population_config: PopulationConfig, config: WorldConfig
    ) -> World:
        specs = {node.node_id: node for node in population.nodes}
        return cls(
            population_config, config, specs, list(population.ordinary_users), next_index=len(specs)
        )

    def online(self, node_id: str, epoch: int) -> bool:
        return node_id not in self.departed and self.down_until.get(node_id, -1) <= epoch

    def draw(self, epoch: int, rng: random.Random) -> EpochEvents:
        """This epoch's departures, arrivals and failures (not applied yet)."""
        leave_p = self.config.churn_per_day / 24
        fail_p = self.config.outage_per_day / 24
        departures: list[str] = []
        failures: list[tuple[str, int]] = []
        for node_id, spec in self.specs.items():  # insertion order: deterministic
            if node_id in self.departed or spec.username == INSTITUTION:
                continue
            if rng.random() < leave_p:
                departures.append(node_id)
            elif self.online(node_id, epoch) and rng.random() < fail_p:
                away = 1 + _geometric(rng, self.config.outage_epochs_mean)
                failures.append((node_id, away))
        arrivals: list[NodeSpec] = []
        users_before = len(self.users)
        for _ in range(poisson(rng, self.config.churn_per_day * self.population_config.nodes / 24)):
            spec, _new = draw_arrival(rng, self.population_config, self.next_index, self.users)
            arrivals.append(spec)
            self.next_index += 1
        dominant = sum(
            1
            for s in self.specs.values()
            if s.username == DOMINANT and s.node_id not in self.departed
        )
        for _ in range(poisson(rng, self.config.dominant_growth_per_day * dominant / 24)):
            arrivals.append(draw_dominant_node(rng, self.population_config, self.next_index))
            self.next_index += 1
        return EpochEvents(departures, arrivals, self.users[users_before:], failures)

    def apply(self, events: EpochEvents, epoch: int) -> None:
        for node_id in events.departures:
            self.departed.add(node_id)
            self.down_until.pop(node_id, None)
        for spec in events.arrivals:
            assert spec.node_id not in self.specs
            self.specs[spec.node_id] = spec
        for node_id, away in events.failures:
            self.down_until[node_id] = epoch + away

    def utilisation(self, node_id: str, rng: random.Random) -> float:
        return min(1.0, self.specs[node_id].utilisation * rng.uniform(0.9, 1.1))

    def answer(self, node_id: str, epoch: int, rng: random.Random) -> bool:
        """Whether the node answers this epoch's challenge right and in time."""
        return self.online(node_id, epoch) and rng.random() < self.specs[node_id].reliability


def _geometric(rng: random.Random, mean: float) -> int:
    """Failures before success with mean ``mean`` (0, 1, 2, ...): an outage's extra epochs."""
    p = 1 / (1 + mean)
    count = 0
    while rng.random() >= p and count < 10_000:
        count += 1
    return count
