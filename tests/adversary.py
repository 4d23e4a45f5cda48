"""A cheating node agent, as a real process: ``python -m tests.adversary MODE HOME URL USER``.

It is the real node agent (lease, download, run the unit, upload) with the one step a
cheater would change replaced, and its own release checks skipped (a cheater would):

    random     a well-formed result with every similarity nudged by its own noise
    copier     the result of an earlier unit of the same shape, sent for another unit
    colluder   like random, but the same wrong answer as the other nodes of its user
    inflated   the honest result with a FLOP count of its own added to the document
    runner     the honest result, reporting another runner tree than it registered
    forged     the honest result, signed with a key that is not the node's
    replayed   an earlier signed document (another unit's) resent for this lease
    fast       honest, but registered as a machine far slower than the time it takes
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from nexapod.crypto import SigningKey, b64encode, sign_document
from nexapod.errors import NexaPodError
from nexapod.node.agent import AgentConfig, NodeAgent
from nexapod.node.cache import BlockCache
from nexapod.node.client import CoordinatorClient, RemoteError, Signer
from nexapod.node.executors import make_executor
from nexapod.node.home import NodeHome
from nexapod.protocol.v1 import PURPOSE_RESULT, LeaseGrant

MODES = ("random", "copier", "colluder", "inflated", "runner", "forged", "replayed", "fast")
HEADER_BYTES = 20


def nudged(data: bytes, seed: bytes) -> bytes:
    """A wrong result of the same shape: every similarity lowered by its own noise drawn
    from ``seed``, each list sorted again, so that it passes every format check."""
    _, result_format, n_rows, n_cols, k = struct.unpack_from("<4sIIII", data)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed).digest()[:8], "big"))
    body = bytearray(data)
    if result_format == 2:  # row sims, then col sims, then the ids
        lists = [(HEADER_BYTES, n_rows), (HEADER_BYTES + 4 * n_rows * k, n_cols)]
    else:  # row ids, row sims, col ids, col sims
        sims_at = HEADER_BYTES + 8 * n_rows * k
        lists = [(sims_at, n_rows), (sims_at + 4 * n_rows * k + 8 * n_cols * k, n_cols)]
    for start, count in lists:
        sims = np.frombuffer(data, "<f4", count * k, start).reshape(count, k).copy()
        finite = np.isfinite(sims)
        sims[finite] -= rng.uniform(0.01, 0.05, int(finite.sum())).astype(np.float32)
        sims = -np.sort(-sims, axis=1)
        body[start : start + 4 * count * k] = sims.astype("<f4").tobytes()
    return bytes(body)


class _Body(BaseModel):
    """A results request as the cheater writes it (no wire-model checks on this side)."""

    results: list[dict[str, Any]]


class CheatingAgent(NodeAgent):
    def __init__(self, mode: str, username: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.username = username
        self.seen: dict[int, bytes] = {}  # result length -> an earlier result
        self.earlier: dict[str, Any] | None = None

    def _upload(self, grant: LeaseGrant, data: bytes, wall_s: float) -> None:
        item = self._cheat(grant, data, wall_s)
        try:
            response = self.client._send("POST", "/v1/results", _Body(results=[item]), signed=True)
        except RemoteError as exc:
            print(f"refused: {exc.code}", flush=True)
            return
        except NexaPodError as exc:
            print(f"upload failed: {exc.code}", flush=True)
            return
        print(f"answered: {response.text[:200]}", flush=True)

    def _cheat(self, grant: LeaseGrant, data: bytes, wall_s: float) -> dict[str, Any]:
        mode = self.mode
        if mode == "random":
            data = nudged(data, self.node_id.encode() + grant.lease_id.encode())
        elif mode == "colluder":
            data = nudged(data, self.username.encode() + str(grant.unit_id).encode())
        elif mode == "copier":
            copied = self.seen.get(len(data))
            self.seen.setdefault(len(data), data)
            data = copied if copied is not None and copied != data else nudged(data, b"copy")
        document = self._result_document(grant, data, wall_s).model_dump()
        item = _item(document, self.key, data)
        if mode == "inflated":
            return _item({**document, "work_flops": str(10**18)}, self.key, data)
        if mode == "runner":
            return _item({**document, "runner_tree_hash": "0f" * 32}, self.key, data)
        if mode == "forged":
            return _item(document, SigningKey.generate(), data)
        if mode == "replayed":
            earlier, self.earlier = self.earlier, item
            if earlier is not None:
                return {**earlier, "document": {**earlier["document"], "lease_id": grant.lease_id}}
        return dict(item)


def _item(document: dict[str, Any], key: SigningKey, data: bytes) -> dict[str, Any]:
    return {
        "document": document,
        "signature": sign_document(key, PURPOSE_RESULT, document),
        "result_b64": b64encode(data),
    }


def main() -> None:
    mode, home_dir, url, username = sys.argv[1:5]
    assert mode in MODES, mode
    home = NodeHome(Path(home_dir))
    _, node_id = home.registration()
    state = home.state()
    key = home.key()  # the cheater's own release checks are skipped
    with CoordinatorClient(url, Signer(key, f"node:{node_id}")) as client:
        agent = CheatingAgent(
            mode,
            username,
            node_id=node_id,
            key=key,
            runner_tree_hash=state["runner_tree_hash"],
            client=client,
            executor=make_executor("process"),
            scratch_root=home.scratch_dir,
            cache=BlockCache(home.block_cache_dir, 256 << 20),
            config=AgentConfig(idle_exit_s=None),
        )
        agent.run()


if __name__ == "__main__":
    main()
