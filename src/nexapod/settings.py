"""The coordinator's settings: one object, built at start-up and passed down.

Values come from ``NEXAPOD_*`` environment variables, then an optional TOML file
named by ``NEXAPOD_CONFIG``, then these defaults. Nothing else reads the
environment. Every limit on something that grows lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from nexapod.crypto import load_public_key

__all__ = ["COLD_CHALLENGE_DEADLINE_S_MAX", "RELEASE_KEYS_MAX", "Settings", "default_data_dir"]

MIB = 1 << 20
RELEASE_KEYS_MAX = 16
COLD_CHALLENGE_DEADLINE_S_MAX = 3600


def default_data_dir() -> Path:
    """Where the embedded store and keys live unless told otherwise."""
    return Path(platformdirs.user_data_dir("nexapod", appauthor=False))


class Settings(BaseSettings):
    """Coordinator configuration (see docs/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="NEXAPOD_", extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    config: Path | None = None

    request_skew_s_max: int = Field(300, ge=5, le=3600)
    body_bytes_max: int = Field(64 * MIB, ge=1024, le=1024 * MIB)
    result_bytes_max: int = Field(16 * MIB, ge=1024, le=512 * MIB)
    dataset_spectra_max: int = Field(1_000_000, ge=1, le=50_000_000)
    leases_per_request_max: int = Field(64, ge=1, le=1024)
    results_per_request_max: int = Field(64, ge=1, le=1024)
    lease_s_min: int = Field(30, ge=1, le=86_400)
    lease_s_max: int = Field(3600, ge=1, le=7 * 86_400)
    lease_slack_factor: int = Field(10, ge=1, le=1000)
    unit_attempts_max: int = Field(5, ge=1, le=100)
    page_size_max: int = Field(200, ge=1, le=10_000)
    # Validation of results (docs/validation.md): agreeing results from distinct users a
    # checked unit needs (1 turns replication off), results a unit may collect, the run
    # of valid results after which a node is sampled instead of always checked, the
    # floor of that sampling (parts per million), and the plausibility bounds.
    validation_quorum: int = Field(2, ge=1, le=16)
    validation_results_per_unit_max: int = Field(5, ge=1, le=64)
    validation_trusted_after_valid: int = Field(30, ge=1, le=1_000_000)
    validation_check_floor_ppm: int = Field(50_000, ge=0, le=1_000_000)
    validation_spot_check_ppm: int = Field(20_000, ge=0, le=1_000_000)
    validation_speedup_max: int = Field(8, ge=1, le=1_000_000)
    validation_flops_per_s_max: int = Field(10**16, ge=1, le=10**21)
    # Off-diagonal units of more work than this are computed in chunks of about this many
    # FLOPs (whole multiples of 96 rows), with a checkpoint after each (0: never); the
    # node uploads the latest every checkpoint_interval_s at most, and a lost unit resumes
    # from it elsewhere. 10^12: about 13 s of one core at 75 GFLOP/s.
    checkpoint_chunk_flops: int = Field(10**12, ge=0, le=10**18)
    checkpoint_bytes_max: int = Field(64 * MIB, ge=1024, le=512 * MIB)
    # The economic policy (docs/policy.md): a TOML file of every number; None: built-in.
    policy_file: Path | None = None
    # The pool manager (docs/pools.md): how often it runs, when an idle hot node leaves
    # hot, when a hot node that let a lease lapse counts as lost; whether closed reward
    # epochs are settled automatically (else `nexapod rewards settle`).
    pools_manage_interval_s: float = Field(5.0, ge=0.1, le=3600.0)
    pool_idle_s: int = Field(300, ge=1, le=7 * 86_400)
    pool_lost_s: int = Field(120, ge=1, le=7 * 86_400)
    # A lost node away this long is written off: the disruption it caused is over and its
    # stand-ins go back to cold (unless a job's capacity need still wants them). Counted
    # from when it was found lost; it may still come back and rejoin like any node.
    pool_write_off_s: int = Field(86_400, ge=60, le=30 * 86_400)
    # The largest capacity need (FLOP/s) a job may state: a need the network cannot meet
    # would hold every cold node in hot for as long as the job runs.
    job_capacity_flops_per_s_max: int = Field(10**20, ge=1, le=10**30 - 1)
    rewards_settle_auto: bool = True
    # Tampering blacklists the node and its machine; and its user too when this is true.
    blacklist_user_on_tampering: bool = True
    # The ledger's log (docs/ledger.md): its origin line, the checkpoint key, how often
    # new entries are integrated and signed, and how many one round may take.
    ledger_log_origin: str = Field(
        "localhost/nexapod-ledger", min_length=1, max_length=200, pattern=r"^[!-*,-~]+$"
    )
    ledger_log_key_file: Path | None = None
    ledger_checkpoint_interval_s: float = Field(1.0, ge=0.05, le=60.0)
    ledger_integrate_entries_max: int = Field(200_000, ge=1, le=10_000_000)
    # Signed runner releases (docs/releases.md): the public keys whose manifests admit a
    # runner tree. With none, admission is open (and the coordinator warns at start-up).
    release_public_keys: list[str] = Field(default_factory=list, max_length=RELEASE_KEYS_MAX)
    releases_max: int = Field(1000, ge=1, le=100_000)
    # Liveness challenges of cold nodes (docs/cold-challenges.md): one per node in every
    # interval, at a moment it cannot predict; the time it has to answer; how often a
    # cold node is told to ask for open ones; how many one maintenance pass issues.
    cold_challenge_interval_s: int = Field(600, ge=4, le=7 * 86_400)
    cold_challenge_deadline_s: int = Field(60, ge=2, le=COLD_CHALLENGE_DEADLINE_S_MAX)
    cold_challenge_poll_s: int = Field(10, ge=1, le=1800)
    cold_challenges_per_pass_max: int = Field(256, ge=1, le=100_000)
    # Challenges are kept this long past their deadline, then deleted: longer than a
    # stipend period (at most 31 days) plus any delay in paying it.
    cold_challenge_retention_s: int = Field(90 * 86_400, ge=31 * 86_400, le=3650 * 86_400)
    # The leaderboard (docs/leaderboard.md): its snapshot is made at most once every
    # stats_refresh_s; the recent average halves every stats_recent_half_life_s; making
    # a snapshot holds every contributor in memory, so there is a most.
    stats_refresh_s: int = Field(3600, ge=60, le=7 * 86_400)
    stats_recent_half_life_s: int = Field(7 * 86_400, ge=3600, le=365 * 86_400)
    stats_users_max: int = Field(1_000_000, ge=1, le=10_000_000)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = env_settings().get("config")
        if config_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_path)))
        return tuple(sources)

    @field_validator("release_public_keys")
    @classmethod
    def _check_release_keys(cls, keys: list[str]) -> list[str]:
        for index, key in enumerate(keys):
            try:
                load_public_key(key)
            except ValueError as exc:
                raise ValueError(
                    f"release_public_keys[{index}] is not a base64 Ed25519 public key: {exc}"
                ) from exc
        if len(set(keys)) != len(keys):
            raise ValueError("release_public_keys lists a key twice")
        return keys

    @model_validator(mode="after")
    def _check_bounds(self) -> Settings:
        if self.lease_s_min > self.lease_s_max:
            raise ValueError(
                f"lease_s_min ({self.lease_s_min}) must not exceed lease_s_max ({self.lease_s_max})"
            )
        if self.validation_results_per_unit_max < self.validation_quorum:
            raise ValueError(
                f"validation_results_per_unit_max ({self.validation_results_per_unit_max}) "
                f"must be at least validation_quorum ({self.validation_quorum})"
            )
        if self.result_bytes_max > self.body_bytes_max:
            raise ValueError("result_bytes_max must not exceed body_bytes_max")
        if 2 * self.cold_challenge_deadline_s > self.cold_challenge_interval_s:
            raise ValueError(
                f"cold_challenge_deadline_s ({self.cold_challenge_deadline_s}) must be at most "
                f"half of cold_challenge_interval_s ({self.cold_challenge_interval_s})"
            )
        if 2 * self.cold_challenge_poll_s > self.cold_challenge_deadline_s:
            raise ValueError(
                f"cold_challenge_poll_s ({self.cold_challenge_poll_s}) must be at most "
                f"half of cold_challenge_deadline_s ({self.cold_challenge_deadline_s})"
            )
        return self

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'coordinator.sqlite3'}"

    def resolved_ledger_log_key_file(self) -> Path:
        """The log's Ed25519 key file, defaulting to the data directory."""
        return self.ledger_log_key_file or self.data_dir / "ledger-log.key"

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with some values replaced (validated again)."""
        merged = self.model_dump()
        merged.update(values)
        return Settings(**merged)
