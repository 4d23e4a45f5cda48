"""The hardware profile is signable as canonical JSON; the fingerprint is stable and salted."""

from __future__ import annotations

import json

import pytest

from nexapod.crypto import canonical_json
from nexapod.node.profile import (
    collect_hardware_profile,
    hardware_fingerprint,
    machine_identifiers,
)
from nexapod.protocol.v1.registry import HardwareProfile

PROFILE_FIELDS = {"cpu_model", "cpu_cores", "memory_bytes", "gpus", "os", "machine", "python"}


def test_profile_has_the_fields_with_their_types() -> None:
    profile = collect_hardware_profile()
    assert set(profile) == PROFILE_FIELDS
    for name in ("cpu_model", "os", "machine", "python"):
        assert isinstance(profile[name], str), name
        assert profile[name], name
    cpu_cores = profile["cpu_cores"]
    memory_bytes = profile["memory_bytes"]
    assert isinstance(cpu_cores, int)
    assert cpu_cores >= 1
    assert isinstance(memory_bytes, int)
    assert memory_bytes > 1024**2
    gpus = profile["gpus"]
    assert isinstance(gpus, list)
    for gpu in gpus:
        assert isinstance(gpu, dict)
        assert set(gpu) == {"name", "memory_bytes", "uuid"}
        assert isinstance(gpu["memory_bytes"], int)


def test_profile_is_signable_canonical_json_without_floats() -> None:
    profile = collect_hardware_profile()
    encoded = canonical_json(profile)  # refuses floats
    assert json.loads(encoded) == profile
    assert not [value for value in _leaves(profile) if isinstance(value, float)]


def test_profile_is_what_the_registry_accepts() -> None:
    profile = collect_hardware_profile()
    assert HardwareProfile.model_validate(profile).model_dump() == profile


def test_identifiers_are_strings_and_stable() -> None:
    first = machine_identifiers()
    assert first == machine_identifiers()
    assert set(first) == {"machine_id", "cpu_model", "memory_gib", "gpu_uuids", "macs"}
    assert all(isinstance(value, str) for value in first.values())
    assert int(first["memory_gib"]) >= 0


def test_fingerprint_is_stable_and_changes_with_salt_and_identifiers() -> None:
    identifiers = machine_identifiers()
    fingerprint = hardware_fingerprint(identifiers)
    assert fingerprint == hardware_fingerprint(machine_identifiers())
    assert len(fingerprint) == 64
    int(fingerprint, 16)
    assert hardware_fingerprint(identifiers, salt="demo-node-1") != fingerprint
    assert hardware_fingerprint(identifiers, salt="demo-node-1") != hardware_fingerprint(
        identifiers, salt="demo-node-2"
    )
    changed = {**identifiers, "machine_id": identifiers["machine_id"] + "0"}
    assert hardware_fingerprint(changed) != fingerprint


def test_fingerprint_does_not_depend_on_key_order() -> None:
    forward = {"a": "1", "b": "2"}
    backward = {"b": "2", "a": "1"}
    assert hardware_fingerprint(forward) == hardware_fingerprint(backward)


def test_fingerprint_refuses_non_string_identifiers() -> None:
    with pytest.raises(TypeError):
        hardware_fingerprint({"memory_gib": 24})  # type: ignore[dict-item]


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]
