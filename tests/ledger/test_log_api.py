"""The ledger's log over HTTP: integration into tiles, signed checkpoints, proofs, receipts.

Entries are appended through ``log_store.append_entries`` (the path every auditable event
takes) and integrated by the same function the coordinator's checkpoint loop calls; then
everything is read back over the API and checked with the pure verification code, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence

from fastapi.testclient import TestClient

from nexapod.coordinator.context import Context
from nexapod.coordinator.maintenance import integrate_log_once
from nexapod.ledger.checkpoint import Checkpoint, open_checkpoint
from nexapod.ledger.integrator import integrate_pending
from nexapod.ledger.log_errors import LogError
from nexapod.ledger.log_store import append_entries
from nexapod.ledger.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from nexapod.ledger.note import parse_vkey
from nexapod.ledger.receipts import verify_receipt
from nexapod.ledger.tiles import decode_entry_bundle
from nexapod.protocol.v1.ledger_log import Receipt


def context(api: TestClient) -> Context:
    ctx: Context = api.app.state.context  # type: ignore[attr-defined]
    return ctx


def append(ctx: Context, count: int, tag: str) -> None:
    with ctx.uow() as uow:
        append_entries(uow.session, "test_event", [{"tag": tag, "n": n} for n in range(count)])
        uow.commit()


def checkpoint(api: TestClient) -> Checkpoint:
    vkey = api.get("/v1/ledger/log/vkey").text.strip()
    note = api.get("/v1/ledger/log/checkpoint")
    assert note.status_code == 200
    assert note.headers["content-type"].startswith("text/plain")
    return open_checkpoint(note.text, [parse_vkey(vkey)], origin=context(api).log.origin)


def entries(api: TestClient, tree_size: int) -> list[bytes]:
    found: list[bytes] = []
    for index in range(0, tree_size, 256):
        width = min(256, tree_size - index)
        suffix = "" if width == 256 else f".p/{width}"
        response = api.get(f"/v1/ledger/log/tile/entries/{index // 256:03d}{suffix}")
        assert response.status_code == 200, response.text
        found.extend(decode_entry_bundle(response.content, width))
    return found


def b64s(hashes: Sequence[str]) -> list[bytes]:
    return [base64.b64decode(h) for h in hashes]


def test_no_checkpoint_before_the_first_integration(api: TestClient) -> None:
    response = api.get("/v1/ledger/log/checkpoint")
    assert response.status_code == 404
    assert response.json()["code"] == "ledger.checkpoint_not_found"


def test_the_empty_log_gets_a_signed_checkpoint(api: TestClient) -> None:
    first = integrate_log_once(context(api))
    assert first is not None and first.tree_size == 0
    head = checkpoint(api)
    assert (head.tree_size, head.root_hash) == (0, EMPTY_ROOT)
    assert integrate_log_once(context(api)) is None  # nothing new: no new checkpoint


def test_tiles_entries_and_checkpoints_rebuild_the_signed_root(api: TestClient) -> None:
    ctx = context(api)
    sizes = []
    for count in (1, 299, 300):
        append(ctx, count, f"batch{len(sizes)}")
        stored = integrate_log_once(ctx)
        assert stored is not None
        sizes.append(stored.tree_size)
    assert sizes == [1, 300, 600]
    head = checkpoint(api)
    assert head.tree_size == 600
    found = entries(api, 600)
    assert root_from_leaf_hashes(leaf_hash(e) for e in found) == head.root_hash
    assert b'"tag":"batch2"' in found[-1]
    # Hash tiles: two full level-0 tiles, a partial one, and the level-1 tile above them.
    level0 = b"".join(
        api.get(f"/v1/ledger/log/tile/0/{path}").content for path in ("000", "001", "002.p/88")
    )
    assert level0 == b"".join(leaf_hash(e) for e in found)
    level1 = api.get("/v1/ledger/log/tile/1/000.p/2")
    assert level1.status_code == 200 and len(level1.content) == 64
    assert "immutable" in level1.headers["cache-control"]
    # A narrower partial tile (of an older tree) is a prefix of the current one.
    older = api.get("/v1/ledger/log/tile/0/002.p/44")
    assert older.content == level0[512 * 32 : (512 + 44) * 32]
    # Every checkpoint is kept, and each is signed.
    for size in sizes:
        note = api.get(f"/v1/ledger/checkpoints/{size}")
        assert note.status_code == 200
        kept = open_checkpoint(note.text, [ctx.log.signer.verifier], origin=ctx.log.origin)
        assert kept.tree_size == size
        assert kept.root_hash == root_from_leaf_hashes(leaf_hash(e) for e in found[:size])


def test_tiles_beyond_the_checkpoint_or_malformed_are_refused(api: TestClient) -> None:
    ctx = context(api)
    append(ctx, 10, "a")
    integrate_log_once(ctx)
    append(ctx, 10, "b")  # committed, not integrated: not served yet
    cases = {
        "/v1/ledger/log/tile/0/000.p/11": (404, "ledger.tile_not_found"),
        "/v1/ledger/log/tile/0/000": (404, "ledger.tile_not_found"),
        "/v1/ledger/log/tile/entries/000.p/20": (404, "ledger.tile_not_found"),
        "/v1/ledger/log/tile/0/0.p/10": (400, "ledger.tile_path_malformed"),
        "/v1/ledger/log/tile/0/000.p/256": (400, "ledger.tile_path_malformed"),
        "/v1/ledger/log/tile/0/x000/000": (400, "ledger.tile_path_malformed"),
        "/v1/ledger/checkpoints/5": (404, "ledger.checkpoint_not_found"),
    }
    for path, (status, code) in cases.items():
        response = api.get(path)
        assert response.status_code == status, path
        assert response.json()["code"] == code, path
    assert len(api.get("/v1/ledger/log/tile/0/000.p/10").content) == 320


def test_inclusion_and_consistency_proofs_verify(api: TestClient) -> None:
    ctx = context(api)
    roots = {}
    for count in (5, 300, 700):
        append(ctx, count, "p")
        stored = integrate_log_once(ctx)
        assert stored is not None
        roots[stored.tree_size] = stored.root_hash
    found = entries(api, 1005)
    for index in (0, 4, 255, 256, 777, 1004):
        proof = api.get("/v1/ledger/proofs/inclusion", params={"leaf_index": index}).json()
        assert proof["tree_size"] == 1005
        verify_inclusion(leaf_hash(found[index]), index, 1005, b64s(proof["hashes"]), roots[1005])
    proof = api.get("/v1/ledger/proofs/inclusion", params={"leaf_index": 3, "tree_size": 5})
    verify_inclusion(leaf_hash(found[3]), 3, 5, b64s(proof.json()["hashes"]), roots[5])
    for old, new in ((5, 305), (305, 1005), (5, 1005)):
        proof = api.get("/v1/ledger/proofs/consistency", params={"old_size": old, "new_size": new})
        assert proof.status_code == 200
        verify_consistency(old, new, roots[old], roots[new], b64s(proof.json()["hashes"]))
    beyond = api.get("/v1/ledger/proofs/inclusion", params={"leaf_index": 1005})
    assert (beyond.status_code, beyond.json()["code"]) == (409, "ledger.not_integrated")
    too_big = api.get("/v1/ledger/proofs/consistency", params={"old_size": 1006})
    assert (too_big.status_code, too_big.json()["code"]) == (400, "ledger.proof_request_invalid")
    negative = api.get("/v1/ledger/proofs/inclusion", params={"leaf_index": -1})
    assert negative.status_code == 422


def test_a_receipt_checks_offline_and_a_forged_one_does_not(api: TestClient) -> None:
    ctx = context(api)
    append(ctx, 40, "r")
    integrate_log_once(ctx)
    body = api.get("/v1/ledger/receipts/17").json()
    receipt = Receipt.model_validate(body)
    verifier = parse_vkey(api.get("/v1/ledger/log/vkey").text.strip())
    head, entry = verify_receipt(receipt, verifier)
    assert head.tree_size == 40 and b'"n":17' in entry
    forged_entry = base64.b64encode(entry.replace(b'"n":17', b'"n":18')).decode()
    forged = receipt.model_copy(update={"entry_b64": forged_entry})
    for bad in (forged, receipt.model_copy(update={"origin": "elsewhere/log"})):
        try:
            verify_receipt(bad, verifier)
        except LogError:
            continue
        raise AssertionError("a forged receipt verified")
    append(ctx, 1, "late")
    late = api.get("/v1/ledger/receipts/40")
    assert (late.status_code, late.json()["code"]) == (409, "ledger.not_integrated")


def test_integration_is_bounded_per_round(api: TestClient) -> None:
    ctx = context(api)
    append(ctx, 1000, "big")
    sizes = []
    while (stored := integrate_pending(ctx.uow_factory, ctx.log, ctx.clock_ms(), 300)) is not None:
        sizes.append(stored.tree_size)
    assert sizes == [300, 600, 900, 1000]
    assert checkpoint(api).root_hash == root_from_leaf_hashes(
        leaf_hash(e) for e in entries(api, 1000)
    )


def test_concurrent_integrators_and_appenders_keep_one_consistent_history(
    api: TestClient,
) -> None:
    ctx = context(api)
    errors: list[BaseException] = []
    stop = threading.Event()

    def appender(tag: str) -> None:
        try:
            for round_index in range(20):
                append(ctx, 25, f"{tag}{round_index}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    def integrator() -> None:
        try:
            while not stop.is_set():
                integrate_pending(ctx.uow_factory, ctx.log, ctx.clock_ms(), 10_000)
        except BaseException as exc:  # reported below
            errors.append(exc)

    writers = [threading.Thread(target=appender, args=(t,)) for t in ("a", "b")]
    integrators = [threading.Thread(target=integrator) for _ in range(2)]
    for thread in writers + integrators:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in integrators:
        thread.join()
    assert not errors, errors
    integrate_log_once(ctx)
    head = checkpoint(api)
    assert head.tree_size == 1000
    found = entries(api, 1000)
    assert root_from_leaf_hashes(leaf_hash(e) for e in found) == head.root_hash
    # Every checkpoint along the way is consistent with the final one.
    with ctx.read_uow() as uow:
        from nexapod.ledger.tile_store import CHECKPOINTS

        kept = uow.session.execute(CHECKPOINTS.select().order_by(CHECKPOINTS.c.tree_size)).all()
    assert len(kept) >= 2
    for row in kept:
        if row.tree_size in (0, 1000):
            continue
        proof = api.get("/v1/ledger/proofs/consistency", params={"old_size": row.tree_size}).json()
        verify_consistency(
            row.tree_size, 1000, bytes(row.root_hash), head.root_hash, b64s(proof["hashes"])
        )
