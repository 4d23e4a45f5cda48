"""The check unit of a cold node's liveness challenge: an atlas unit in miniature.

A cold node proves it is up by answering small challenges in time (ECONOMICS.md §4,
docs/cold-challenges.md). Each challenge names a seed; the node runs the atlas kernel
(``compute_unit``, the very code of a real unit) on two small blocks generated from the
seed, and answers the SHA-256 of the result's bytes (the atlas result layout). The
coordinator computes the same answer when it issues the challenge.

The answer must be bit-identical on every machine, whatever its BLAS. So the blocks hold
small non-negative integers (0 to ``CHECK_VALUE_MAX``) as float32: every product and
every partial sum of a similarity is an integer of at most ``CHECK_SIMILARITY_MAX``
< 2^24, which float32 holds exactly, so the summation order, blocking, FMA and SIMD width
of the BLAS cannot change a single bit (and no -0.0 can arise). The top-k lists then
follow the atlas contract's exact tie rule (similarity descending, then index), and the
many ties of small integers exercise it. The blocks come from SHAKE-256 of the seed, not
from numpy's generators, whose streams may change between numpy versions.

Imported by the coordinator and by the node agent; numpy is loaded on first use, as
everywhere in ``nexapod.workloads``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "CHECK_DIM",
    "CHECK_K",
    "CHECK_KIND",
    "CHECK_ROWS",
    "CHECK_SIMILARITY_MAX",
    "CHECK_VALUE_MAX",
    "SEED_HEX_CHARS",
    "check_answer_sha256",
    "check_blocks",
    "check_result_bytes",
]

CHECK_KIND = "atlas-check.v1"  # the name a challenge carries; a new computation, a new name
SEED_HEX_CHARS = 64  # 256 bits
CHECK_ROWS = 128  # spectra in each of the two blocks
CHECK_DIM = 64  # their embedding dimension
CHECK_K = 8
CHECK_VALUE_MAX = 15  # entries are integers 0..15 (the low 4 bits of a SHAKE byte)
CHECK_SIMILARITY_MAX = CHECK_DIM * CHECK_VALUE_MAX * CHECK_VALUE_MAX
assert CHECK_SIMILARITY_MAX < 2**24, "float32 must hold every partial sum exactly"
assert CHECK_K <= CHECK_ROWS
_DOMAIN = b"nexapod.check_unit.v1\x00"


def _seed_bytes(seed: str) -> bytes:
    assert len(seed) == SEED_HEX_CHARS, "a seed is 64 hex digits"
    assert seed == seed.lower(), "a seed is lower-case hex"
    return bytes.fromhex(seed)


def check_blocks(seed: str) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The two blocks of the check unit of ``seed``: integers 0..15 held as float32."""
    import numpy as np

    values_count = 2 * CHECK_ROWS * CHECK_DIM
    stream = hashlib.shake_256(_DOMAIN + _seed_bytes(seed)).digest(values_count)
    values = np.frombuffer(stream, dtype=np.uint8) & np.uint8(CHECK_VALUE_MAX)
    blocks = values.astype(np.float32).reshape(2, CHECK_ROWS, CHECK_DIM)
    block_row = np.ascontiguousarray(blocks[0])
    block_col = np.ascontiguousarray(blocks[1])
    assert block_row.shape == (CHECK_ROWS, CHECK_DIM)
    assert float(block_row.max()) <= CHECK_VALUE_MAX
    return block_row, block_col


def check_result_bytes(seed: str) -> bytes:
    """The exact bytes of the check unit's result (an off-diagonal atlas unit result)."""
    from nexapod.workloads import atlas

    block_row, block_col = check_blocks(seed)
    shape = atlas.UnitShape(
        block_row=0,
        block_col=1,
        row_start=0,
        row_stop=CHECK_ROWS,
        col_start=CHECK_ROWS,
        col_stop=2 * CHECK_ROWS,
    )
    result = atlas.compute_unit(block_row, block_col, shape, CHECK_K)
    assert result.row_ids.shape == (CHECK_ROWS, CHECK_K)
    assert result.col_ids.shape == (CHECK_ROWS, CHECK_K)
    # Format 1, as published: the answer's bytes are test vectors that every released
    # node reproduces (docs/cold-challenges.md); another format would be another CHECK_KIND.
    return atlas.encode_unit_result(result, shape, result_format=1)


def check_answer_sha256(seed: str) -> str:
    """The answer to the challenge of ``seed``: SHA-256 (hex) of the check unit's result."""
    answer = hashlib.sha256(check_result_bytes(seed)).hexdigest()
    assert len(answer) == 64
    return answer
