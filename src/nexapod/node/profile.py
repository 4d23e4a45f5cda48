"""What a node tells the coordinator about its hardware, and a fingerprint of the machine.

The profile is signed as canonical JSON (RFC 8785), which has no floats here: every number
is an int and everything else a string. The fingerprint is a SHA-256 over stable machine
identifiers, so the coordinator can see one machine registering as many nodes. A ``salt``
changes it: a demo that runs several nodes on one host passes a different salt per node to
look like distinct machines. It is a deterrent, not a proof; a determined operator can
change every identifier it reads.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nexapod.crypto import canonical_sha256_hex

__all__ = [
    "GPUS_MAX",
    "TEXT_CHARS_MAX",
    "collect_hardware_profile",
    "hardware_fingerprint",
    "machine_identifiers",
]

GPUS_MAX = 64
INTERFACES_MAX = 256
_CPUINFO_BYTES_MAX = 1024 * 1024
_MACHINE_ID_PATHS = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
_SYS_CLASS_NET = Path("/sys/class/net")
_CPU_MODEL_KEYS = ("model name", "Model", "Hardware", "cpu model", "cpu")
_GIB_BYTES = 1024**3
TEXT_CHARS_MAX = 256  # the registry's limit on a profile's text fields


def collect_hardware_profile() -> dict[str, object]:
    """The node's hardware as ints and strings: CPU, memory, GPUs, OS, Python."""
    cpu_cores = os.cpu_count() or 1
    memory_bytes = _memory_bytes()
    gpus = _gpus()
    assert cpu_cores > 0
    assert memory_bytes >= 0
    return {
        "cpu_model": _short(_cpu_model()),
        "cpu_cores": cpu_cores,
        "memory_bytes": memory_bytes,
        "gpus": gpus,
        "os": _short(platform.platform()),
        "machine": _short(platform.machine()),
        "python": _short(platform.python_version()),
    }


def machine_identifiers() -> dict[str, str]:
    """Identifiers that stay the same across reboots and reinstalls of NexaPod.

    Memory is rounded to whole GiB: the kernel's reserved memory, and so the exact total,
    moves a little between kernel versions. Interfaces are the physical ones (those with a
    device behind them); virtual ones (bridges, veth, tun) come and go.
    """
    gpu_uuids = sorted(str(gpu["uuid"]) for gpu in _gpus())
    return {
        "machine_id": _machine_id(),
        "cpu_model": _cpu_model(),
        "memory_gib": str((_memory_bytes() + _GIB_BYTES // 2) // _GIB_BYTES),
        "gpu_uuids": ",".join(gpu_uuids),
        "macs": ",".join(_physical_macs()),
    }


def hardware_fingerprint(identifiers: Mapping[str, str], salt: str = "") -> str:
    """Hex SHA-256 of the canonical JSON ``{"identifiers": {...}, "salt": salt}``.

    Same identifiers and salt, same fingerprint, on any platform. ``salt`` exists for demos
    that simulate several machines on one host; a real node leaves it empty.
    """
    for name, value in identifiers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"identifier {name!r} must map a string to a string")
    if not isinstance(salt, str):
        raise TypeError("salt must be a string")
    fingerprint = canonical_sha256_hex({"identifiers": dict(identifiers), "salt": salt})
    assert len(fingerprint) == 64
    return fingerprint


def _cpu_model() -> str:
    cpuinfo = _read_text(Path("/proc/cpuinfo"), _CPUINFO_BYTES_MAX)
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    for key in _CPU_MODEL_KEYS:
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def _memory_bytes() -> int:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_bytes = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0
    return max(pages, 0) * max(page_bytes, 0)


def _machine_id() -> str:
    for path in _MACHINE_ID_PATHS:
        machine_id = _read_text(path, 256).strip()
        if machine_id:
            return machine_id
    return ""


def _physical_macs() -> list[str]:
    try:
        interfaces = sorted(os.listdir(_SYS_CLASS_NET))[:INTERFACES_MAX]
    except OSError:
        return []
    macs: set[str] = set()
    for interface in interfaces:
        path = _SYS_CLASS_NET / interface
        if interface == "lo" or "/virtual/" in str(path.resolve()):
            continue
        if not (path / "device").exists():
            continue
        mac = _read_text(path / "address", 64).strip().lower()
        if mac and mac != "00:00:00:00:00:00":
            macs.add(mac)
    return sorted(macs)


def _gpus() -> list[dict[str, object]]:
    """NVIDIA GPUs through NVML; none when nvidia-ml-py or the driver is missing."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        return [_gpu(pynvml, index) for index in range(min(pynvml.nvmlDeviceGetCount(), GPUS_MAX))]
    except pynvml.NVMLError:
        return []
    finally:
        pynvml.nvmlShutdown()


def _gpu(pynvml: Any, index: int) -> dict[str, object]:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    return {
        "name": _short(_text(pynvml.nvmlDeviceGetName(handle))),
        "memory_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
        "uuid": _short(_text(pynvml.nvmlDeviceGetUUID(handle))),
    }


def _text(value: str | bytes) -> str:
    """NVML strings are bytes in older nvidia-ml-py releases, str in newer ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _short(text: str) -> str:
    return text[:TEXT_CHARS_MAX]


def _read_text(path: Path, bytes_max: int) -> str:
    try:
        with path.open("rb") as file:
            return file.read(bytes_max).decode(errors="replace")
    except OSError:
        return ""
