"""Settings of release keys: read from the environment (JSON) and TOML, validated, bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from nexapod.crypto import SigningKey
from nexapod.settings import RELEASE_KEYS_MAX, Settings


def _keys(count: int) -> list[str]:
    return [SigningKey.generate().public_key_b64 for _ in range(count)]


def test_release_keys_default_to_none(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).release_public_keys == []


def test_release_keys_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = _keys(2)
    monkeypatch.setenv("NEXAPOD_RELEASE_PUBLIC_KEYS", json.dumps(keys))
    assert Settings(data_dir=tmp_path).release_public_keys == keys


def test_release_keys_from_the_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (key,) = _keys(1)
    config = tmp_path / "nexapod.toml"
    config.write_text(f'release_public_keys = ["{key}"]\nreleases_max = 7\n')
    monkeypatch.setenv("NEXAPOD_CONFIG", str(config))
    settings = Settings(data_dir=tmp_path)
    assert settings.release_public_keys == [key]
    assert settings.releases_max == 7


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["not-a-key"], "release_public_keys\\[0\\] is not a base64 Ed25519 public key"),
        (["AAAA"], "32 bytes"),
        ("twice", "lists a key twice"),
        ("too many", f"at most {RELEASE_KEYS_MAX}"),
    ],
)
def test_bad_release_keys_stop_the_coordinator(
    tmp_path: Path, keys: list[str] | str, message: str
) -> None:
    if keys == "twice":
        keys = _keys(1) * 2
    elif keys == "too many":
        keys = _keys(RELEASE_KEYS_MAX + 1)
    with pytest.raises(ValidationError, match=message):
        Settings(data_dir=tmp_path, release_public_keys=keys)


def test_releases_max_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="releases_max"):
        Settings(data_dir=tmp_path, releases_max=0)


def test_cold_challenge_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.cold_challenge_interval_s == 600
    assert settings.cold_challenge_deadline_s == 60
    assert settings.cold_challenge_poll_s == 10


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cold_challenge_interval_s": 100}, "at most half of cold_challenge_interval_s"),
        ({"cold_challenge_poll_s": 31}, "at most half of cold_challenge_deadline_s"),
        ({"cold_challenge_deadline_s": 1}, "greater than or equal to 2"),
        ({"cold_challenge_retention_s": 86_400}, "greater than or equal to 2678400"),
        ({"cold_challenges_per_pass_max": 0}, "greater than or equal to 1"),
    ],
)
def test_inconsistent_cold_challenge_settings_stop_the_coordinator(
    tmp_path: Path, values: dict[str, int], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(data_dir=tmp_path, **values)
