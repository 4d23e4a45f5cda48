"""Validation against cheaters: replication overhead and how fast cheaters are caught.

A population of simulated nodes, a fraction of them cheating, computes a stream of
units. Every decision is made by the coordinator's real rules (``nexapod.mesh.
validation``: adaptive replication, quorum resolution over distinct users, trust
reset, plausibility of time against capacity); only the computing is simulated: an
honest node returns the unit's answer, a cheater a wrong one as its profile says.

    python bench/validation.py [--nodes 400] [--cheaters 0.1] [--rounds 600] [--seed 1]

Each round every live node returns one result for the first unit it may take (a
replica its user has not answered yet, else a new unit). A node caught once (a result
outside the quorum, or an impossible time) is blacklisted: it gets no more work, its
unpaid credit is forfeited, and every unit it alone vouched for is computed again.
Settlement is at the end of the run.

Cheater profiles, in equal shares: ``random`` (always a random answer), ``copier``
(another unit's answer), ``occasional`` (a wrong answer one time in five), ``sleeper``
(honest for its first 0 to 40 results, then wrong one time in two), ``fast`` (the right
answer, returned faster than its benchmark allows), ``colluder`` (two nodes of one user
returning the same wrong answer).

Trusted nodes also get spot checks (units whose answer is known) at the policy's rate.

Printed, for the policy defaults and for plain quorum-2 replication (the baseline):
replication overhead (results computed per unit accepted) in the second half of the
run (steady state: most nodes past their trial), share of cheaters caught within their
first 50 results, and the FLOPs paid for wrong results and to cheating nodes.
Targets: overhead <= 1.2, caught >= 99 %, 0 cheater FLOPs paid.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nexapod.mesh.validation import (
    PPM,
    Candidate,
    ValidationPolicy,
    implausibility,
    needs_check,
    resolve,
    streak_after,
)

TARGET_OVERHEAD = 1.2
TARGET_CAUGHT = 0.99
CAUGHT_WITHIN_RESULTS = 50
UNIT_FLOPS = 10**12
CAPACITY_FLOPS_PER_S = 10**11  # 10 s per unit at the benchmarked speed
PROFILES = ("random", "copier", "occasional", "sleeper", "fast", "colluder")


@dataclass
class Node:
    node_id: int
    username: str
    profile: str  # "honest" or one of PROFILES
    sleep_results: int = 0
    streak: int = 0
    results: int = 0
    caught_at: int | None = None  # results returned when caught
    credited_flops: int = 0
    wrong_flops_credited: int = 0
    vouched: set[int] = field(default_factory=set)  # units accepted on its word alone

    @property
    def cheater(self) -> bool:
        return self.profile != "honest"


@dataclass
class Unit:
    unit_id: int
    answer: str
    candidates: list[tuple[int, str]] = field(default_factory=list)  # (node id, answer)
    done: bool = False
    accepted_from: list[int] = field(default_factory=list)  # nodes credited for it


class Simulation:
    def __init__(self, policy: ValidationPolicy, nodes: list[Node], seed: int) -> None:
        self.policy = policy
        self.nodes = nodes
        self.rng = random.Random(seed)
        self.units: dict[int, Unit] = {}
        self.next_unit = 0
        self.waiting: deque[int] = deque()  # units that need another result
        self.computed = 0
        self.accepted = 0
        self.done_ids: list[int] = []

    def _new_unit(self) -> Unit:
        unit = Unit(self.next_unit, f"answer-{self.next_unit}")
        self.units[unit.unit_id] = unit
        self.next_unit += 1
        return unit

    def _answer(self, node: Node, unit: Unit) -> tuple[str, int]:
        """A node's answer and the time it claims (ms from lease to upload)."""
        honest_ms = 1000 * UNIT_FLOPS // CAPACITY_FLOPS_PER_S
        profile = node.profile
        wrong = {
            "honest": False,
            "random": True,
            "copier": True,
            "occasional": self.rng.random() < 0.2,
            "sleeper": node.results >= node.sleep_results and self.rng.random() < 0.5,
            "fast": False,
            "colluder": True,
        }[profile]
        if not wrong:
            return unit.answer, (honest_ms // 100 if profile == "fast" else honest_ms)
        if profile == "copier":
            return f"answer-{max(unit.unit_id - 1, 0)}-copied", honest_ms
        if profile == "colluder":
            return f"forged-by-{node.username}-{unit.unit_id}", honest_ms
        return f"forged-{self.rng.getrandbits(64)}", honest_ms

    def _pick(self, node: Node) -> Unit:
        for _ in range(len(self.waiting)):
            unit_id = self.waiting[0]
            unit = self.units[unit_id]
            answered = {self.nodes[n].username for n, _ in unit.candidates}
            if not unit.done and node.username not in answered:
                self.waiting.popleft()
                return unit
            self.waiting.rotate(-1)
        return self._new_unit()

    def step(self, node: Node) -> None:
        if self._spot_check(node):
            return
        unit = self._pick(node)
        answer, elapsed_ms = self._answer(node, unit)
        node.results += 1
        self.computed += 1
        if implausibility(UNIT_FLOPS, elapsed_ms, CAPACITY_FLOPS_PER_S, self.policy):
            self._catch(node)
            self.waiting.appendleft(unit.unit_id)
            return
        unit.candidates.append((node.node_id, answer))
        if len(unit.candidates) == 1 and not needs_check(
            node.streak, self.rng.randrange(PPM), self.policy
        ):
            self._accept(unit, [node.node_id], vouched=True)
            return
        by_id = {str(i): (n, a) for i, (n, a) in enumerate(unit.candidates)}
        resolution = resolve(
            [Candidate(str(i), self.nodes[n].username) for i, (n, _) in enumerate(unit.candidates)],
            lambda a, b: by_id[a][1] == by_id[b][1],
            self.policy.quorum,
            self.policy.results_per_unit_max,
        )
        if resolution.outcome == "valid":
            self._accept(unit, [by_id[r][0] for r in resolution.valid], vouched=False)
            for result_id in resolution.invalid:
                self._catch(self.nodes[by_id[result_id][0]])
        elif resolution.outcome == "need_more":
            self.waiting.append(unit.unit_id)
        else:  # no quorum: start the unit over
            unit.candidates.clear()
            self.waiting.append(unit.unit_id)

    def _spot_check(self, node: Node) -> bool:
        """Now and then a trusted node gets a unit whose answer is known (the real rule:
        trusted nodes only, ``spot_check_ppm`` of their requests)."""
        policy = self.policy
        if node.streak < policy.trusted_after_valid or not self.done_ids:
            return False
        if self.rng.randrange(PPM) >= policy.spot_check_ppm:
            return False
        unit = self.units[self.rng.choice(self.done_ids)]
        if not unit.done:
            return False
        answer, elapsed_ms = self._answer(node, unit)
        node.results += 1
        self.computed += 1
        if answer != unit.answer or implausibility(
            UNIT_FLOPS, elapsed_ms, CAPACITY_FLOPS_PER_S, policy
        ):
            self._catch(node)
        else:
            node.streak = streak_after(node.streak, valid=True)
        return True

    def _accept(self, unit: Unit, node_ids: list[int], *, vouched: bool) -> None:
        self.done_ids.append(unit.unit_id)
        unit.done = True
        unit.accepted_from = node_ids
        self.accepted += 1
        for node_id in node_ids:
            node = self.nodes[node_id]
            node.streak = streak_after(node.streak, valid=True)
            node.credited_flops += UNIT_FLOPS
            answer = dict(unit.candidates)[node_id]
            if answer != unit.answer:
                node.wrong_flops_credited += UNIT_FLOPS
            if vouched:
                node.vouched.add(unit.unit_id)

    def _catch(self, node: Node) -> None:
        if node.caught_at is not None:
            return
        node.caught_at = node.results
        node.streak = streak_after(node.streak, valid=False)
        node.credited_flops = node.wrong_flops_credited = 0  # unpaid: forfeited
        for unit_id in sorted(node.vouched):  # accepted on its word alone: compute again
            unit = self.units[unit_id]
            unit.done = False
            unit.candidates.clear()
            self.accepted -= 1
            self.waiting.appendleft(unit_id)
        node.vouched.clear()


def population(count: int, cheater_fraction: float, seed: int) -> list[Node]:
    rng = random.Random(seed)
    cheaters = round(count * cheater_fraction)
    nodes: list[Node] = []
    for index in range(cheaters):
        profile = PROFILES[index % len(PROFILES)]
        username = f"cheat{index // 2}" if profile == "colluder" else f"cheat{index}"
        nodes.append(Node(len(nodes), username, profile, sleep_results=rng.randint(0, 40)))
    for index in range(count - cheaters):
        # a few honest contributors run several nodes
        nodes.append(Node(len(nodes), f"user{index // 3 if index % 10 == 0 else index}", "honest"))
    return nodes


def run(
    policy: ValidationPolicy, nodes_count: int, cheater_fraction: float, rounds: int, seed: int
) -> dict[str, float]:
    nodes = population(nodes_count, cheater_fraction, seed)
    simulation = Simulation(policy, nodes, seed)
    order = list(nodes)
    half_computed = half_accepted = 0
    for round_index in range(rounds):
        if round_index == rounds // 2:
            half_computed, half_accepted = simulation.computed, simulation.accepted
        simulation.rng.shuffle(order)
        for node in order:
            if node.caught_at is None:
                simulation.step(node)
    cheaters = [n for n in nodes if n.cheater]
    caught_early = sum(
        1 for n in cheaters if n.caught_at is not None and n.caught_at <= CAUGHT_WITHIN_RESULTS
    )
    return {
        "overhead": (simulation.computed - half_computed)
        / max(simulation.accepted - half_accepted, 1),
        "overhead_all": simulation.computed / max(simulation.accepted, 1),
        "caught": caught_early / max(len(cheaters), 1),
        "caught_ever": sum(1 for n in cheaters if n.caught_at is not None) / max(len(cheaters), 1),
        "wrong_flops_paid": sum(n.wrong_flops_credited for n in nodes),
        "cheater_flops_paid": sum(n.credited_flops for n in cheaters),
        "honest_flops_paid": sum(n.credited_flops for n in nodes if not n.cheater),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=400)
    parser.add_argument("--cheaters", type=float, default=0.1, help="fraction of cheating nodes")
    parser.add_argument("--rounds", type=int, default=600, help="results per node, at most")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    defaults = ValidationPolicy()
    baseline = ValidationPolicy(
        quorum=2,
        results_per_unit_max=defaults.results_per_unit_max,
        trusted_after_valid=10**9,  # never trusted: every unit replicated
        spot_check_ppm=0,
        speedup_max=defaults.speedup_max,
        flops_per_s_max=defaults.flops_per_s_max,
    )
    print(
        f"{args.nodes} nodes, {args.cheaters:.0%} cheating ({', '.join(PROFILES)}), "
        f"{args.rounds} rounds, seed {args.seed}"
    )
    print(
        f"policy defaults: quorum {defaults.quorum}, trusted after {defaults.trusted_after_valid} "
        f"valid, check floor {defaults.check_floor_ppm / PPM:.0%}, "
        f"spot checks {defaults.spot_check_ppm / PPM:.0%}, "
        f"speedup max {defaults.speedup_max}"
    )
    figures = {}
    for name, policy in (("adaptive", defaults), ("quorum-2", baseline)):
        figures[name] = run(policy, args.nodes, args.cheaters, args.rounds, args.seed)
        f = figures[name]
        print(
            f"{name:9} overhead {f['overhead']:.3f} (steady state; {f['overhead_all']:.3f} over "
            f"the whole run)   caught within {CAUGHT_WITHIN_RESULTS} results "
            f"{f['caught']:.1%} (ever {f['caught_ever']:.1%})   wrong-result FLOPs paid "
            f"{f['wrong_flops_paid']}   FLOPs paid to cheaters {f['cheater_flops_paid']}"
        )
    adaptive = figures["adaptive"]
    print(
        f"ratio (adaptive / quorum-2 overhead) "
        f"{adaptive['overhead'] / figures['quorum-2']['overhead']:.3f}"
    )
    met = (
        adaptive["overhead"] <= TARGET_OVERHEAD
        and adaptive["caught"] >= TARGET_CAUGHT
        and adaptive["wrong_flops_paid"] == 0
        and adaptive["cheater_flops_paid"] == 0
    )
    print(
        f"target overhead <= {TARGET_OVERHEAD}, caught >= {TARGET_CAUGHT:.0%}, "
        f"0 cheater FLOPs paid: {'met' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
