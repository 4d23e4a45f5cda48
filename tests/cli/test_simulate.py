"""`nexapod simulate`: a small run end to end, through the CLI, checked against the rules."""

from __future__ import annotations

import csv
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nexapod.cli.main import app as cli
from nexapod.policy import default_policy
from nexapod.pools.synthetic import add_nodes, add_users
from nexapod.sim import PopulationConfig, SimConfig, simulate
from nexapod.sim.charts import CHART_FILES
from nexapod.sim.report import build_summary
from nexapod.sim.steps import throwaway_store
from nexapod.storage import unit_of_work_factory

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
POLICY = default_policy()


def _simulate(out: Path, *options: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["simulate", "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text("utf-8"))
    return summary


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A week of 200 nodes, funded at half of what is owed: stipends paid, USDC scaled."""
    out = tmp_path_factory.mktemp("simulation")
    summary = _simulate(out, "--nodes", "200", "--days", "7", "--seed", "1", "--funding", "0.5")
    return out, summary


def test_it_writes_the_summary_and_every_chart(week: tuple[Path, dict[str, Any]]) -> None:
    out, summary = week
    for name in CHART_FILES:
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE), name
    assert summary["seed"] == 1
    assert summary["epochs"] == 7 * 24
    assert summary["policy_sha256"] == POLICY.sha256
    assert len(summary["series"]["dominant_share"]) == 7 * 24
    assert summary["runtime"]["total_s"] > 0


def test_the_dominant_user_never_passes_the_cap_once_it_binds(
    week: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = week
    cap = summary["share_cap"]
    series = summary["series"]
    assert cap["epochs_binding"] > 24, "the cap binds for most of the week"
    assert cap["epochs_above_cap"] == 0
    assert Fraction(cap["dominant_share_max_exact"]) <= Fraction(POLICY.max_user_share)
    binding = [
        share
        for share, binds in zip(series["dominant_share"], series["share_cap_binds"], strict=True)
        if binds
    ]
    assert len(binding) == cap["epochs_binding"]
    assert max(binding) <= float(POLICY.max_user_share)
    serving = [  # promoted cold stand-ins are hot capacity: the cap counts them too
        share
        for share, binds in zip(
            series["dominant_share_with_promoted"], series["share_cap_binds"], strict=True
        )
        if binds
    ]
    assert serving == binding
    assert max(binding) > 0.3, "the dominant user presses against the cap"
    assert cap["dominant_parked_final"] > 0, "and has nodes parked in warm for it"


def test_supply_is_exactly_what_settlement_and_stipends_minted(
    week: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = week
    supply = summary["supply"]
    settled = int(supply["minted_by_settlement_micro"])
    stipends = int(supply["minted_by_stipends_micro"])
    assert stipends > 0, "the week closed and cold nodes were paid"
    assert int(supply["nxc_supply_micro"]) == settled + stipends
    assert supply["supply_equals_minted"]
    assert set(supply["ledger_balanced_by_asset"]) >= {"NXC", "USDC"}
    assert all(supply["ledger_balanced_by_asset"].values()), "debits equal credits per asset"
    rewards = summary["rewards"]
    assert int(rewards["hot_nxc_micro"]) == settled, "the per-node lines sum to the mint"
    assert int(rewards["stipend_nxc_micro"]) == stipends


def test_a_short_treasury_scales_usdc_and_never_goes_negative(
    week: tuple[Path, dict[str, Any]],
) -> None:
    _, summary = week
    treasury = summary["treasury"]
    assert treasury["epochs_scaled"] > 0
    assert 0 <= treasury["lowest_scale"] < 1
    assert int(treasury["hot_usdc_paid_micro"]) < int(treasury["hot_usdc_owed_micro"])
    assert all(int(balance) >= 0 for balance in summary["series"]["treasury_micro_usdc"])
    funded = int(treasury["funded_micro_usdc"])
    paid = int(treasury["hot_usdc_paid_micro"]) + int(summary["rewards"]["stipend_usdc_paid_micro"])
    assert funded - paid == int(treasury["final_micro_usdc"])


def test_the_institution_earns_no_nxc_or_usdc(week: tuple[Path, dict[str, Any]]) -> None:
    _, summary = week
    assert summary["population"]["institution_nodes"] > 0
    assert summary["moves"]["institution"] == summary["population"]["institution_nodes"]
    assert summary["rewards"]["institution_nxc_micro"] == "0"
    assert all(b == "0" for b in summary["supply"]["institution_balances_micro"].values())


def test_nodes_csv_holds_every_node_and_its_pay(week: tuple[Path, dict[str, Any]]) -> None:
    out, summary = week
    with (out / "nodes.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == summary["population"]["nodes_registered"]
    hot = sum(int(row["hot_nxc_micro"]) for row in rows)
    stipends = sum(int(row["stipend_nxc_micro"]) for row in rows)
    assert hot == int(summary["supply"]["minted_by_settlement_micro"])
    assert stipends == int(summary["supply"]["minted_by_stipends_micro"])
    institution = [row for row in rows if row["username"] == "institute"]
    assert institution
    assert all(
        row[key] == "0"
        for row in institution
        for key in ("hot_nxc_micro", "hot_usdc_micro", "stipend_nxc_micro", "stipend_usdc_micro")
    )


def test_gini_coefficients_are_in_range(week: tuple[Path, dict[str, Any]]) -> None:
    _, summary = week
    for key in ("per_node", "per_earning_node", "per_user"):
        figure = summary["rewards"][key]
        assert 0 <= Fraction(figure["gini_exact"]) <= 1
        assert abs(figure["gini"] - float(Fraction(figure["gini_exact"]))) < 1e-6
    per_node = summary["rewards"]["per_node"]
    assert int(per_node["percentiles_micro"]["p0"]) <= int(per_node["percentiles_micro"]["p100"])


def _summary_of(tmp_path: Path, seed: int) -> dict[str, Any]:
    engine = throwaway_store(tmp_path)
    try:
        config = SimConfig(days=1, seed=seed, population=PopulationConfig(nodes=150))
        result = simulate(config, POLICY, unit_of_work_factory(engine))
    finally:
        engine.dispose()
    return build_summary(config, POLICY, result, include_runtime=False)


def test_one_seed_gives_one_run(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    first = _summary_of(tmp_path / "a", 7)
    assert first == _summary_of(tmp_path / "b", 7)
    assert first != _summary_of(tmp_path / "c", 8)


def test_without_matplotlib_it_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(cli, ["simulate", "--nodes", "50", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "pip install 'nexapod[sim]'" in result.output
    assert "sim.matplotlib_missing" in result.output
    assert not (tmp_path / "summary.json").exists(), "it stops before running"


def test_it_refuses_a_store_that_is_not_fresh(tmp_path: Path) -> None:
    engine = throwaway_store(tmp_path)
    try:
        with unit_of_work_factory(engine)() as uow:
            add_users(uow.session, ["alice"], 0)
            add_nodes(uow.session, [("n1", "alice", 10**12)], 0)
            uow.commit()
        url = engine.url.render_as_string(hide_password=False)
    finally:
        engine.dispose()
    result = CliRunner().invoke(
        cli, ["simulate", "--nodes", "50", "--db", url, "--out", str(tmp_path), "--no-charts"]
    )
    assert result.exit_code == 1
    assert "sim.store_not_empty" in result.output


def test_funding_must_be_fractions(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["simulate", "--funding", "1,lots", "--out", str(tmp_path), "--no-charts"]
    )
    assert result.exit_code == 2
    assert "--funding" in result.output
