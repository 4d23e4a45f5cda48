"""How a serving coordinator process sets up its garbage collector (in a child process:
freezing this test process's heap would keep every later test's garbage alive)."""

from __future__ import annotations

import subprocess
import sys

from nexapod.coordinator.server import YOUNG_OBJECTS_MAX

CHILD = """
import gc
from nexapod.coordinator.server import tune_collector
from nexapod.ledger import service  # a heap worth freezing
before = gc.get_threshold()
tune_collector()
print(gc.get_freeze_count(), *gc.get_threshold(), *before[1:])
"""


def test_a_serving_process_freezes_its_heap_and_collects_young_objects_less_often() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=True
    )
    frozen, young, older, oldest, older_before, oldest_before = map(int, done.stdout.split())
    assert frozen > 10_000, "the startup heap is out of the collector's way"
    assert young == YOUNG_OBJECTS_MAX
    assert (older, oldest) == (older_before, oldest_before), "only the youngest changes"
