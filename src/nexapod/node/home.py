"""A node's home directory: its key, its registration state, scratch and input cache.

    HOME/node.key        the node's Ed25519 seed (mode 0600)
    HOME/node.json       profile, fingerprint, capacity and registration (no secrets)
    HOME/scratch/        one directory per running unit, removed afterwards
    HOME/cache/blocks/   input blocks by SHA-256, bounded in size

User keys live apart from nodes (``KEYS_DIR/users/NAME.key``): one contributor may
own several nodes, and a node never needs its owner's key to run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from nexapod.crypto import (
    SigningKey,
    package_tree_hash,
    sign_document,
)
from nexapod.errors import NodeError
from nexapod.node.profile import collect_hardware_profile, hardware_fingerprint, machine_identifiers
from nexapod.protocol.v1 import (
    PURPOSE_NODE,
    PURPOSE_NODE_AUTHORIZATION,
    PURPOSE_USER,
    HardwareProfile,
    NodeDocument,
    RegisterNodeRequest,
    RegisterUserRequest,
    UserDocument,
)

__all__ = [
    "NodeHome",
    "default_keys_dir",
    "default_node_home",
    "load_or_create_user_key",
    "node_registration",
    "user_registration",
]


def default_node_home() -> Path:
    return Path(platformdirs.user_data_dir("nexapod", appauthor=False)) / "node"


def default_keys_dir() -> Path:
    return Path(platformdirs.user_data_dir("nexapod", appauthor=False)) / "keys"


@dataclass(frozen=True)
class NodeHome:
    root: Path

    @property
    def key_path(self) -> Path:
        return self.root / "node.key"

    @property
    def state_path(self) -> Path:
        return self.root / "node.json"

    @property
    def scratch_dir(self) -> Path:
        return self.root / "scratch"

    @property
    def block_cache_dir(self) -> Path:
        return self.root / "cache" / "blocks"

    @property
    def inputs_dir(self) -> Path:
        """Each unit's input blocks, linked from the cache; read-only in the sandbox."""
        return self.root / "inputs"

    def exists(self) -> bool:
        return self.key_path.exists() and self.state_path.exists()

    def init(self, *, force: bool = False, fingerprint_salt: str = "") -> dict[str, Any]:
        """Create the node key and record the hardware profile and fingerprint."""
        if self.key_path.exists() and not force:
            raise NodeError(
                "already_initialised",
                f"{self.root} already holds a node key; use --force to replace it "
                "(the old node's registration is then abandoned)",
            )
        if force:
            for path in (self.key_path, self.state_path):
                path.unlink(missing_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        key = SigningKey.generate()
        key.save(self.key_path)
        state = {
            "public_key": key.public_key_b64,
            "profile": collect_hardware_profile(),
            "fingerprint": hardware_fingerprint(machine_identifiers(), fingerprint_salt),
            "runner_tree_hash": package_tree_hash(),
        }
        HardwareProfile.model_validate(state["profile"])
        self.save_state(state)
        return state

    def key(self) -> SigningKey:
        if not self.key_path.exists():
            raise NodeError(
                "not_initialised", f"no node key in {self.root}: run `nexapod node init` first"
            )
        return SigningKey.load(self.key_path)

    def state(self) -> dict[str, Any]:
        if not self.state_path.exists():
            raise NodeError(
                "not_initialised", f"no node state in {self.root}: run `nexapod node init` first"
            )
        state: dict[str, Any] = json.loads(self.state_path.read_text())
        return state

    def save_state(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(temporary, self.state_path)

    def registration(self) -> tuple[str, str]:
        """The coordinator URL and node id this node registered with."""
        state = self.state()
        if "node_id" not in state:
            raise NodeError(
                "not_registered",
                "this node is not registered: run `nexapod node register --coordinator URL "
                "--user NAME`",
            )
        return state["coordinator"], state["node_id"]


def load_or_create_user_key(keys_dir: Path, username: str) -> tuple[SigningKey, bool]:
    """The contributor's key, created on first use; returns (key, created)."""
    path = keys_dir / "users" / f"{username}.key"
    if path.exists():
        return SigningKey.load(path), False
    key = SigningKey.generate()
    key.save(path)
    return key, True


def user_registration(username: str, key: SigningKey) -> RegisterUserRequest:
    document = UserDocument(
        username=username, public_key=key.public_key_b64, created_at_s=int(time.time())
    )
    signature = sign_document(key, PURPOSE_USER, document.model_dump())
    return RegisterUserRequest(document=document, signature=signature)


def node_registration(
    state: dict[str, Any],
    node_key: SigningKey,
    username: str,
    user_key: SigningKey,
    capacity_flops_per_s: int,
) -> RegisterNodeRequest:
    """The node's registration: signed by the node key and countersigned by its owner."""
    assert state["public_key"] == node_key.public_key_b64, "state and key disagree"
    document = NodeDocument(
        node_public_key=node_key.public_key_b64,
        username=username,
        profile=HardwareProfile.model_validate(state["profile"]),
        fingerprint=state["fingerprint"],
        capacity_flops_per_s=str(capacity_flops_per_s),
        runner_tree_hash=state["runner_tree_hash"],
        created_at_s=int(time.time()),
    )
    payload = document.model_dump()
    return RegisterNodeRequest(
        document=document,
        node_signature=sign_document(node_key, PURPOSE_NODE, payload),
        user_signature=sign_document(user_key, PURPOSE_NODE_AUTHORIZATION, payload),
    )
