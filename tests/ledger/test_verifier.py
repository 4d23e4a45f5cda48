"""The independent verifier against a real ledger, and against each way an operator could lie.

A ledger with transfers, holds (posted, voided, expired) and amounts past 2^64 is built
through the ledger's service, integrated and served by the coordinator app; the verifier
reads it over HTTP (the app's test client is an httpx client) or from an export. Then
the database is tampered with as a dishonest operator would, and the verifier must name
what is wrong.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from nexapod.cli.main import app as cli_app
from nexapod.coordinator.context import Context
from nexapod.coordinator.maintenance import integrate_log_once
from nexapod.ledger import service
from nexapod.ledger.export import export_log
from nexapod.ledger.integrator import LogIdentity
from nexapod.ledger.merkle import leaf_hash
from nexapod.ledger.note import NoteSigner
from nexapod.ledger.receipts import verify_receipt
from nexapod.ledger.rules import NewTransfer
from nexapod.ledger.store import ACCOUNTS, LOG_ENTRIES
from nexapod.ledger.tile_store import CHECKPOINTS, TILES
from nexapod.ledger.verifier import HttpSource, LogVerificationError, verify_log
from nexapod.protocol.v1.ledger_log import Receipt
from tests.factories import fund, make_user, new_transfer_id, signed
from tests.ledger.test_tlog_third_party import tlogcheck  # noqa: F401 - a fixture

NOW_MS = 1_795_000_000_000
BIG = 2**130 + 7


def run_tlogcheck(binary: Path, directory: Path, origin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "-dir", str(directory), "-origin", origin],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def context(api: TestClient) -> Context:
    ctx: Context = api.app.state.context  # type: ignore[attr-defined]
    return ctx


def build_ledger(api: TestClient, extra_singles: int = 300) -> Context:
    """Users, minted NXC past 2^128, transfers, and holds posted, voided and expired."""
    ctx = context(api)
    for name in ("alice", "bob", "carol"):
        make_user(api, name)
    fund(ctx.uow_factory, "user:alice:NXC", BIG)
    fund(ctx.uow_factory, "user:bob:USDC", 5_000_000)
    holds = [new_transfer_id() for _ in range(3)]
    batch = [
        NewTransfer(new_transfer_id(), "user:alice:NXC", "user:bob:NXC", 2**65),
        NewTransfer(holds[0], "user:alice:NXC", "user:carol:NXC", 1_000, "pending", None, 60),
        NewTransfer(holds[1], "user:alice:NXC", "user:carol:NXC", 2_000, "pending", None, 60),
        NewTransfer(holds[2], "user:bob:USDC", "user:carol:USDC", 3_000, "pending", None, 1),
        NewTransfer(new_transfer_id(), amount=600, phase="post_pending", pending_id=holds[0]),
        NewTransfer(new_transfer_id(), phase="void_pending", pending_id=holds[1]),
    ]
    service.transfer(ctx.uow_factory, batch, NOW_MS)
    assert service.expire_pending_transfers(ctx.uow_factory, NOW_MS + 2_000) == 1
    singles = [
        NewTransfer(new_transfer_id(), "user:bob:NXC", "user:carol:NXC", n + 1)
        for n in range(extra_singles)
    ]
    service.transfer(ctx.uow_factory, singles, NOW_MS + 3_000)
    assert integrate_log_once(ctx) is not None
    return ctx


def source(api: TestClient) -> HttpSource:
    return HttpSource("http://testserver", client=api)


def verify(api: TestClient, witness: Path | None = None) -> str:
    report = verify_log(source(api), context(api).log.signer.verifier, witness_file=witness)
    return report.line()


def refused(api: TestClient, witness: Path | None = None) -> str:
    with pytest.raises(LogVerificationError) as caught:
        verify(api, witness)
    return str(caught.value)


def test_an_honest_ledger_verifies_with_every_balance(api: TestClient, tmp_path: Path) -> None:
    build_ledger(api)
    witness = tmp_path / "witness"
    report = verify_log(source(api), context(api).log.signer.verifier, witness_file=witness)
    assert report.tree_size == 2 + 6 + 1 + 300
    assert report.entries_by_kind == {"transfer": 308, "transfer_expired": 1}
    assert report.accounts_checked == 7  # alice, bob, carol (NXC; bob, carol USDC), 2 issuers
    assert report.line().startswith(f"OK: tree size {report.tree_size}, root ")
    assert witness.read_text().startswith(f"{context(api).log.origin}\n{report.tree_size}\n")


def test_an_empty_log_verifies(api: TestClient) -> None:
    integrate_log_once(context(api))
    empty_root = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # SHA-256 of nothing
    assert verify(api).startswith(f"OK: tree size 0, root {empty_root}")


def test_the_witness_moves_forward_and_catches_a_rewritten_history(
    api: TestClient, tmp_path: Path
) -> None:
    ctx = build_ledger(api, extra_singles=20)
    witness = tmp_path / "witness"
    verify(api, witness)
    fund(ctx.uow_factory, "user:carol:NXC", 5)
    integrate_log_once(ctx)
    assert "OK" in verify(api, witness)  # grew: still consistent with the witness
    # The operator rewrites entry 3 and rebuilds tiles and checkpoints with the real key.
    with ctx.uow() as uow:
        entry = uow.session.execute(
            select(LOG_ENTRIES.c.entry).where(LOG_ENTRIES.c.leaf_index == 3)
        ).scalar_one()
        forged = bytes(entry).replace(b'"timestamp_ms":', b'"timestamp_ms":1', 1)
        uow.session.execute(
            update(LOG_ENTRIES)
            .where(LOG_ENTRIES.c.leaf_index == 3)
            .values(entry=forged, leaf_hash=leaf_hash(forged))
        )
        uow.session.execute(delete(TILES))
        uow.session.execute(delete(CHECKPOINTS))
        uow.commit()
    integrate_log_once(ctx)
    assert verify(api).startswith("OK")  # alone, the rewritten log is self-consistent
    assert "fork" in refused(api, witness)


def test_an_amount_edited_in_the_database_is_caught(api: TestClient) -> None:
    ctx = build_ledger(api, extra_singles=10)
    with ctx.uow() as uow:
        uow.session.execute(
            update(ACCOUNTS)
            .where(ACCOUNTS.c.account_id == "user:carol:NXC")
            .values(credits_posted=10**9)
        )
        uow.commit()
    assert "user:carol:NXC: credits_posted is reported as 1000000000" in refused(api)


def test_an_entry_whose_amount_is_edited_is_caught(api: TestClient) -> None:
    ctx = build_ledger(api, extra_singles=10)
    with ctx.uow() as uow:
        entry = uow.session.execute(
            select(LOG_ENTRIES.c.entry).where(LOG_ENTRIES.c.leaf_index == 2)
        ).scalar_one()
        forged = bytes(entry).replace(b'"amount":"', b'"amount":"9', 1)
        assert forged != bytes(entry)
        uow.session.execute(
            update(LOG_ENTRIES).where(LOG_ENTRIES.c.leaf_index == 2).values(entry=forged)
        )
        uow.commit()
    assert refused(api).startswith("entry 2: its leaf hash is not the one in the log's tiles")


def test_a_deleted_entry_is_caught(api: TestClient) -> None:
    ctx = build_ledger(api, extra_singles=10)
    with ctx.uow() as uow:
        session = uow.session
        session.execute(delete(LOG_ENTRIES).where(LOG_ENTRIES.c.leaf_index == 4))
        later = session.execute(
            select(LOG_ENTRIES.c.leaf_index).where(LOG_ENTRIES.c.leaf_index > 4)
        ).scalars()
        for index in sorted(later):  # close the gap, as someone hiding an entry would
            session.execute(
                update(LOG_ENTRIES)
                .where(LOG_ENTRIES.c.leaf_index == index)
                .values(leaf_index=index - 1)
            )
        uow.commit()
    # Entries 0..18 are signed for, 18 are left: the coordinator cannot serve the bundle
    # and says its store is corrupt; the verifier stops there, naming the bundle.
    message = refused(api)
    assert message.startswith("/v1/ledger/log/tile/entries/000.p/19: HTTP 500")
    assert "ledger.log_corrupt" in message


def test_reordered_entries_are_caught(api: TestClient) -> None:
    ctx = build_ledger(api, extra_singles=10)
    with ctx.uow() as uow:
        rows = {
            index: (bytes(entry), bytes(hash_))
            for index, entry, hash_ in uow.session.execute(
                select(
                    LOG_ENTRIES.c.leaf_index, LOG_ENTRIES.c.entry, LOG_ENTRIES.c.leaf_hash
                ).where(LOG_ENTRIES.c.leaf_index.in_([10, 11]))
            )
        }
        for index, other in ((10, 11), (11, 10)):
            uow.session.execute(
                update(LOG_ENTRIES)
                .where(LOG_ENTRIES.c.leaf_index == index)
                .values(entry=rows[other][0], leaf_hash=rows[other][1])
            )
        uow.commit()
    assert refused(api).startswith("entry 10: its leaf hash is not the one")


def test_a_checkpoint_signed_by_another_key_is_refused(api: TestClient) -> None:
    ctx = build_ledger(api, extra_singles=5)
    genuine = ctx.log.signer.verifier
    ctx.log = LogIdentity(ctx.log.origin, NoteSigner.from_seed(ctx.log.origin, b"\x07" * 32))
    fund(ctx.uow_factory, "user:carol:NXC", 5)
    integrate_log_once(ctx)
    with pytest.raises(LogVerificationError) as caught:
        verify_log(source(api), genuine)
    assert str(caught.value) == "checkpoint: no known key signed the note [ledger.note_unverified]"


def test_an_export_verifies_offline_and_a_third_party_tool_agrees(
    api: TestClient,
    tmp_path: Path,
    tlogcheck: Path,  # noqa: F811
) -> None:
    ctx = build_ledger(api, extra_singles=300)
    exported = tmp_path / "export"
    report = export_log(source(api), exported)
    assert report.accounts == 7
    runner = CliRunner()
    vkey = ctx.log.signer.vkey
    result = runner.invoke(cli_app, ["ledger", "verify", "--dir", str(exported), "--vkey", vkey])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("balances match)")
    checked = run_tlogcheck(tlogcheck, exported, ctx.log.origin)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("OK")
    # Tamper with one tile of the export: both verifiers refuse it.
    tile = exported / "tile" / "0" / "000"
    data = bytearray(tile.read_bytes())
    data[40] ^= 1
    tile.write_bytes(bytes(data))
    result = runner.invoke(cli_app, ["ledger", "verify", "--dir", str(exported), "--vkey", vkey])
    assert result.exit_code == 1
    assert result.output.strip().startswith("FAIL: entry 1: its leaf hash")
    assert run_tlogcheck(tlogcheck, exported, ctx.log.origin).returncode == 1


def test_a_receipt_from_the_cli_checks_offline(api: TestClient, tmp_path: Path) -> None:
    ctx = build_ledger(api, extra_singles=3)
    receipt = api.get("/v1/ledger/receipts/2")
    assert receipt.status_code == 200
    path = tmp_path / "receipt.json"
    path.write_bytes(receipt.content)
    runner = CliRunner()
    good = runner.invoke(
        cli_app, ["ledger", "receipt", "verify", str(path), "--vkey", ctx.log.signer.vkey]
    )
    assert good.exit_code == 0 and good.output.startswith("OK: entry 2 is in the log")
    other = NoteSigner.from_seed(ctx.log.origin, b"\x09" * 32).vkey
    bad = runner.invoke(cli_app, ["ledger", "receipt", "verify", str(path), "--vkey", other])
    assert bad.exit_code == 1 and bad.output.startswith("FAIL:")
    malformed = runner.invoke(cli_app, ["ledger", "receipt", "verify", str(path), "--vkey", "x"])
    assert malformed.exit_code == 1 and "vkey" in malformed.output


def test_a_transfer_response_carries_receipts_that_check_offline(api: TestClient) -> None:
    ctx = context(api)
    alice = make_user(api, "alice")
    make_user(api, "bob")
    fund(ctx.uow_factory, "user:alice:NXC", 10**30)
    items = [
        {
            "transfer_id": new_transfer_id(),
            "debit_account_id": "user:alice:NXC",
            "credit_account_id": "user:bob:NXC",
            "amount": str(amount),
        }
        for amount in (2**70, 5)
    ]
    response = signed(api, alice, "POST", "/v1/transfers?receipts=true", {"transfers": items})
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["receipts"]) == 2
    for outcome, raw in zip(body["results"], body["receipts"], strict=True):
        receipt = Receipt.model_validate(raw)
        assert receipt.inclusion.leaf_index == outcome["transfer"]["log_index"]
        _, entry = verify_receipt(receipt, ctx.log.signer.verifier)
        assert outcome["transfer"]["transfer_id"].encode() in entry
    plain = signed(api, alice, "POST", "/v1/transfers", {"transfers": [dict(items[1])]})
    assert plain.status_code == 201 and plain.json()["receipts"] is None
