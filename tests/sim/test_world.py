"""The simulator's population and world: seeded, bounded, and shaped as documented."""

from __future__ import annotations

import random

import pytest

from nexapod.sim.population import (
    CLUSTER_FLOPS_PER_S,
    DOMINANT,
    DOMINANT_FLOPS_PER_S,
    INSTITUTION,
    INSTITUTION_FLOPS_PER_S,
    ORDINARY_FLOPS_PER_S,
    PopulationConfig,
    draw_population,
    log_uniform,
)
from nexapod.sim.world import WORK_FLOPS_PIECE_MAX, World, WorldConfig, poisson, work_pieces


def test_population_is_fixed_by_its_seed() -> None:
    config = PopulationConfig(nodes=500)
    assert draw_population(config, random.Random(3)) == draw_population(config, random.Random(3))
    assert draw_population(config, random.Random(3)) != draw_population(config, random.Random(4))


def test_population_has_its_shape() -> None:
    config = PopulationConfig(nodes=2000)
    population = draw_population(config, random.Random(1))
    nodes = population.nodes
    assert len(nodes) == 2000
    dominant = [n for n in nodes if n.username == DOMINANT]
    institution = [n for n in nodes if n.username == INSTITUTION]
    assert len(dominant) == int(2000 * config.dominant_node_fraction)
    assert len(institution) == config.institution_nodes
    assert all(not n.warm_opt_in and not n.cold_opt_in for n in institution)
    for node in dominant:
        assert DOMINANT_FLOPS_PER_S[0] <= node.capacity_flops_per_s <= DOMINANT_FLOPS_PER_S[1]
    for node in institution:
        assert INSTITUTION_FLOPS_PER_S[0] <= node.capacity_flops_per_s <= INSTITUTION_FLOPS_PER_S[1]
    ordinary = [n for n in nodes if n.username not in (DOMINANT, INSTITUTION)]
    clusters = [n for n in ordinary if n.capacity_flops_per_s > ORDINARY_FLOPS_PER_S[1]]
    assert all(n.capacity_flops_per_s >= CLUSTER_FLOPS_PER_S[0] for n in clusters)
    assert 0 < len(clusters) < len(ordinary) // 50
    assert 0.1 < sum(n.cold_opt_in for n in ordinary) / len(ordinary) < 0.3
    per_user = len(ordinary) / len(population.ordinary_users)
    assert 2 < per_user < 10, "most users own one or two nodes, a few own dozens"


def test_log_uniform_stays_in_range() -> None:
    rng = random.Random(0)
    draws = [log_uniform(rng, 5 * 10**10, 10**14) for _ in range(2000)]
    assert min(draws) >= 5 * 10**10
    assert max(draws) <= 10**14
    below_1e12 = sum(1 for d in draws if d < 10**12)
    assert 0.3 < below_1e12 / len(draws) < 0.5, "log-uniform: ~39 % in the first 1.3 decades"


@pytest.mark.parametrize("flops", [1, 2**62, 2**62 + 1, 3 * 2**63 + 5, 10**20])
def test_work_fits_in_units(flops: int) -> None:
    pieces = work_pieces(flops)
    assert sum(pieces) == flops
    assert all(0 < p <= WORK_FLOPS_PIECE_MAX < 2**63 for p in pieces)


def test_poisson_mean() -> None:
    rng = random.Random(5)
    draws = [poisson(rng, 4.0) for _ in range(4000)]
    assert 3.8 < sum(draws) / len(draws) < 4.2
    assert poisson(rng, 0.0) == 0


def test_world_churn_and_outages() -> None:
    config = PopulationConfig(nodes=1000)
    rng = random.Random(2)
    world = World.start(draw_population(config, rng), config, WorldConfig(outage_per_day=0.5))
    events = world.draw(0, rng)
    world.apply(events, 0)
    assert events.failures, "half the nodes fail per day: some in the first hour"
    node_id, away = events.failures[0]
    assert away >= 1
    assert not world.online(node_id, 0)
    assert world.online(node_id, away)
    for node_id in events.departures:
        assert not world.online(node_id, 10**6)
    assert all(spec.node_id in world.specs for spec in events.arrivals)
    assert all(world.specs[n].username != INSTITUTION for n in events.departures)
