"""RFC 9162 §2.1 tree hashing, inclusion and consistency proofs.

Checked three ways: published test vectors (RFC 9162 §2.1.5's worked example and the
RFC 6962 vectors of the transparency-dev reference suite), a literal transcription of
the RFC's recursive definitions, and properties over random sizes.
"""

from __future__ import annotations

import base64
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod.ledger.log_errors import ProofInvalidError, ProofRequestError
from nexapod.ledger.merkle import (
    EMPTY_ROOT,
    MemoryHashStore,
    TreeBuilder,
    leaf_hash,
    node_hash,
    perfect_tree_hash,
    prove_consistency,
    prove_inclusion,
    root_from_leaf_hashes,
    subtree_coords,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

# RFC 6962 reference vectors (transparency-dev/merkle testonly): leaf inputs and the
# root hash of every prefix of them.
VECTOR_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
VECTOR_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, transcribed literally over leaf hashes."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, transcribed literally."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1, transcribed literally."""
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


SIZE_MAX = 1100
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(SIZE_MAX)]
STORE = MemoryHashStore(LEAVES)
"""One store serves every smaller tree: their complete subtrees are all in it."""


@cache
def root_at(size: int) -> bytes:
    return mth(LEAVES[:size])


def flip(data: bytes, byte_index: int, bit: int) -> bytes:
    i = byte_index % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


def test_roots_match_the_rfc6962_vectors() -> None:
    hashes = [leaf_hash(entry) for entry in VECTOR_LEAVES]
    for size, expected in enumerate(VECTOR_ROOTS):
        assert root_from_leaf_hashes(hashes[:size]) == expected
        assert tree_hash(size, MemoryHashStore(hashes[:size])) == expected
        assert mth(hashes[:size]) == expected


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == VECTOR_ROOTS[0].hex()
    assert TreeBuilder().root() == EMPTY_ROOT


@pytest.mark.parametrize(
    ("leaf_index", "tree_size", "proof"),
    [
        (
            5,
            8,
            [
                "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
                "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
                "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
            ],
        ),
        (
            1,
            5,
            [
                "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
                "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
                "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
            ],
        ),
    ],
)
def test_inclusion_proofs_match_the_reference_vectors(
    leaf_index: int, tree_size: int, proof: list[str]
) -> None:
    hashes = [leaf_hash(entry) for entry in VECTOR_LEAVES]
    expected = [b64(p) for p in proof]
    assert prove_inclusion(leaf_index, tree_size, MemoryHashStore(hashes[:tree_size])) == expected
    verify_inclusion(hashes[leaf_index], leaf_index, tree_size, expected, VECTOR_ROOTS[tree_size])


@pytest.mark.parametrize(
    ("old_size", "new_size", "proof"),
    [
        (1, 1, []),
        (
            1,
            8,
            [
                "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
                "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
                "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
            ],
        ),
        (
            6,
            8,
            [
                "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
                "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
                "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
            ],
        ),
        (
            2,
            5,
            [
                "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
                "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
            ],
        ),
    ],
)
def test_consistency_proofs_match_the_reference_vectors(
    old_size: int, new_size: int, proof: list[str]
) -> None:
    hashes = [leaf_hash(entry) for entry in VECTOR_LEAVES]
    expected = [b64(p) for p in proof]
    assert prove_consistency(old_size, new_size, MemoryHashStore(hashes[:new_size])) == expected
    old_root, new_root = VECTOR_ROOTS[old_size], VECTOR_ROOTS[new_size]
    verify_consistency(old_size, new_size, old_root, new_root, expected)


def test_rfc9162_worked_example() -> None:
    """§2.1.5: seven leaves d0..d6 and the proofs the RFC lists by node name."""
    d = [leaf_hash(bytes([i])) for i in range(7)]
    a, b, c, dd, e, f = d[:6]
    g, h, i, j = node_hash(a, b), node_hash(c, dd), node_hash(e, f), d[6]
    k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 - the RFC's node names
    store = MemoryHashStore(d)
    assert tree_hash(7, store) == node_hash(k, l)
    assert prove_inclusion(0, 7, store) == [b, h, l]
    assert prove_inclusion(3, 7, store) == [c, g, l]
    assert prove_inclusion(4, 7, store) == [f, j, k]
    assert prove_inclusion(6, 7, store) == [i, k]
    assert prove_consistency(3, 7, store) == [c, dd, g, l]
    assert prove_consistency(4, 7, store) == [l]
    assert prove_consistency(6, 7, store) == [i, j, k]


def test_tree_builder_matches_the_recursive_definition_at_every_size() -> None:
    builder = TreeBuilder()
    for size in range(600):
        assert builder.root() == root_at(size)
        assert len(builder.hashes) == size.bit_count()
        builder.append(LEAVES[size])


@given(size=st.integers(0, SIZE_MAX), split=st.integers(0, SIZE_MAX))
@settings(max_examples=60, deadline=None)
def test_tree_builder_resumes_and_batches(size: int, split: int) -> None:
    split = min(split, size)
    first = TreeBuilder()
    first.extend(LEAVES[:split])
    resumed = TreeBuilder(first.size, first.hashes)
    resumed.extend(iter(LEAVES[split:size]))
    assert resumed.root() == root_at(size)
    assert [STORE.read_hashes([c])[0] for c in resumed.coords()] == list(resumed.hashes)


def test_tree_builder_refuses_inconsistent_state() -> None:
    with pytest.raises(ValueError, match="subtree hashes"):
        TreeBuilder(3, [LEAVES[0]])
    with pytest.raises(ValueError, match="bytes"):
        TreeBuilder().append(b"short")
    builder = TreeBuilder()
    with pytest.raises(ValueError, match="bytes"):
        builder.extend([*LEAVES[:300], b"short"])
    assert builder.size == 300
    assert builder.root() == root_at(300)
    with pytest.raises(ProofRequestError):
        STORE.read_hashes([(-1, 0)])


def test_subtree_coords_cover_the_range_largest_first() -> None:
    assert subtree_coords(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert subtree_coords(8, 11) == [(1, 4), (0, 10)]
    assert subtree_coords(0, 1 << 20) == [(20, 0)]


def test_perfect_tree_hash_is_the_mth_of_a_power_of_two() -> None:
    for width in (1, 2, 4, 128, 256):
        assert perfect_tree_hash(b"".join(LEAVES[:width])) == mth(LEAVES[:width])


@given(data=st.data(), tree_size=st.integers(1, SIZE_MAX))
@settings(max_examples=150, deadline=None)
def test_every_inclusion_proof_verifies_and_any_flipped_bit_fails(
    data: st.DataObject, tree_size: int
) -> None:
    leaf_index = data.draw(st.integers(0, tree_size - 1))
    proof = prove_inclusion(leaf_index, tree_size, STORE)
    assert proof == path(leaf_index, LEAVES[:tree_size])
    root = root_at(tree_size)
    verify_inclusion(LEAVES[leaf_index], leaf_index, tree_size, proof, root)

    byte_index, bit = data.draw(st.integers(0, 10**6)), data.draw(st.integers(0, 7))
    with pytest.raises(ProofInvalidError):
        verify_inclusion(
            LEAVES[leaf_index], leaf_index, tree_size, proof, flip(root, byte_index, bit)
        )
    with pytest.raises(ProofInvalidError):
        verify_inclusion(
            flip(LEAVES[leaf_index], byte_index, bit), leaf_index, tree_size, proof, root
        )
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        broken = [*proof[:at], flip(proof[at], byte_index, bit), *proof[at + 1 :]]
        with pytest.raises(ProofInvalidError):
            verify_inclusion(LEAVES[leaf_index], leaf_index, tree_size, broken, root)
        with pytest.raises(ProofInvalidError):
            verify_inclusion(LEAVES[leaf_index], leaf_index, tree_size, proof[:-1], root)
    with pytest.raises(ProofInvalidError):
        verify_inclusion(LEAVES[leaf_index], leaf_index, tree_size, [*proof, root], root)


@given(data=st.data(), new_size=st.integers(1, SIZE_MAX))
@settings(max_examples=150, deadline=None)
def test_every_consistency_proof_verifies_and_any_flipped_bit_fails(
    data: st.DataObject, new_size: int
) -> None:
    old_size = data.draw(st.integers(0, new_size))
    proof = prove_consistency(old_size, new_size, STORE)
    old_root, new_root = root_at(old_size), root_at(new_size)
    verify_consistency(old_size, new_size, old_root, new_root, proof)
    if old_size == 0:
        assert proof == []
        return  # every tree extends the empty one: no root of the new tree can fail
    assert proof == subproof(old_size, LEAVES[:new_size], True)

    byte_index, bit = data.draw(st.integers(0, 10**6)), data.draw(st.integers(0, 7))
    with pytest.raises(ProofInvalidError):
        bad_old = flip(old_root, byte_index, bit)
        verify_consistency(old_size, new_size, bad_old, new_root, proof)
    with pytest.raises(ProofInvalidError):
        bad_new = flip(new_root, byte_index, bit)
        verify_consistency(old_size, new_size, old_root, bad_new, proof)
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        broken = [*proof[:at], flip(proof[at], byte_index, bit), *proof[at + 1 :]]
        with pytest.raises(ProofInvalidError):
            verify_consistency(old_size, new_size, old_root, new_root, broken)
        with pytest.raises(ProofInvalidError):
            verify_consistency(old_size, new_size, old_root, new_root, proof[:-1])
    with pytest.raises(ProofInvalidError):
        verify_consistency(old_size, new_size, old_root, new_root, [*proof, new_root])


def test_a_proof_for_another_index_or_size_fails() -> None:
    proof = prove_inclusion(5, 11, STORE)
    verify_inclusion(LEAVES[5], 5, 11, proof, root_at(11))
    with pytest.raises(ProofInvalidError):
        verify_inclusion(LEAVES[5], 4, 11, proof, root_at(11))
    with pytest.raises(ProofInvalidError):
        verify_inclusion(LEAVES[5], 5, 12, proof, root_at(12))
    consistency = prove_consistency(5, 11, STORE)
    with pytest.raises(ProofInvalidError):
        verify_consistency(6, 11, root_at(6), root_at(11), consistency)


def test_impossible_requests_are_refused() -> None:
    with pytest.raises(ProofRequestError):
        prove_inclusion(3, 3, STORE)
    with pytest.raises(ProofRequestError):
        prove_inclusion(-1, 3, STORE)
    with pytest.raises(ProofRequestError):
        prove_consistency(4, 3, STORE)
    with pytest.raises(ProofRequestError):
        prove_inclusion(0, SIZE_MAX + 1, STORE)
    with pytest.raises(ProofInvalidError):
        verify_inclusion(LEAVES[0], 3, 3, [], root_at(3))
    with pytest.raises(ProofInvalidError):
        verify_inclusion(LEAVES[0], 0, 1, [b"short"], LEAVES[0])
    with pytest.raises(ProofInvalidError):
        verify_consistency(4, 3, root_at(4), root_at(3), [])
    with pytest.raises(ProofInvalidError, match="empty"):
        verify_consistency(3, 5, root_at(3), root_at(5), [])
    with pytest.raises(ProofInvalidError, match="same size"):
        verify_consistency(3, 3, root_at(3), root_at(4), [])
    with pytest.raises(ProofInvalidError):
        verify_consistency(0, 3, EMPTY_ROOT, root_at(3), [root_at(3)])


def test_single_leaf_tree() -> None:
    assert prove_inclusion(0, 1, STORE) == []
    verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])
    with pytest.raises(ProofInvalidError):
        verify_inclusion(LEAVES[1], 0, 1, [], LEAVES[0])
