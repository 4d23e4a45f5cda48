"""The economy simulator: the real pool, settlement and ledger code over a synthetic
population, on a throwaway store (``nexapod simulate``; docs/simulator.md)."""

from nexapod.sim.engine import DAYS_MAX, SimConfig, simulate
from nexapod.sim.population import NODES_MAX, PopulationConfig
from nexapod.sim.record import EpochRecord, SimResult
from nexapod.sim.stats import gini
from nexapod.sim.world import WorldConfig

__all__ = [
    "DAYS_MAX",
    "NODES_MAX",
    "EpochRecord",
    "PopulationConfig",
    "SimConfig",
    "SimResult",
    "WorldConfig",
    "gini",
    "simulate",
]
