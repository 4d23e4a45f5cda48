"""C2SP tlog-checkpoint bodies: the spec's example, strict parsing, signing."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexapod.ledger.checkpoint import (
    Checkpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from nexapod.ledger.log_errors import (
    CheckpointFormatError,
    CheckpointOriginError,
    NoteUnverifiedError,
)
from nexapod.ledger.merkle import EMPTY_ROOT
from nexapod.ledger.note import NoteSigner

SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
LOG = NoteSigner.from_seed("example.com/behind-the-sofa", bytes(range(32)))


def test_the_spec_example_parses_and_formats_back() -> None:
    checkpoint = Checkpoint.parse(SPEC_BODY)
    assert checkpoint == Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    assert checkpoint.to_body() == SPEC_BODY
    assert format_checkpoint(parse_checkpoint(SPEC_BODY)) == SPEC_BODY


def test_extension_lines_and_the_empty_tree() -> None:
    checkpoint = Checkpoint("log", 0, EMPTY_ROOT, ("ext one", "ext two"))
    body = checkpoint.to_body()
    assert body == f"log\n0\n{base64.b64encode(EMPTY_ROOT).decode()}\next one\next two\n"
    assert Checkpoint.parse(body) == checkpoint


@pytest.mark.parametrize(
    "body",
    [
        "",
        SPEC_BODY[:-1],
        "example.com/behind-the-sofa\n20852163\n",
        "\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        SPEC_BODY.replace("20852163", "020852163"),
        SPEC_BODY.replace("20852163", "+20852163"),
        SPEC_BODY.replace("20852163", "-1"),
        SPEC_BODY.replace("20852163", " 20852163"),
        SPEC_BODY.replace("20852163", "20_852_163"),
        SPEC_BODY.replace("20852163", "\u0662\u0660"),
        SPEC_BODY.replace("20852163", "18446744073709551616"),
        SPEC_BODY.replace("20852163", ""),
        SPEC_BODY.replace("q2I=", "q2I"),
        SPEC_BODY.replace("q2I=", "q2J="),
        SPEC_BODY.replace("CsUY", "CsU"),
        SPEC_BODY.replace("CsUY", " CsUY"),
        SPEC_BODY.replace("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", "AAAA"),
        SPEC_BODY + "\n",
        SPEC_BODY + "ext\n\n",
        SPEC_BODY.replace("example.com", "exa\x01mple.com"),
        SPEC_BODY.replace("\n", "\r\n"),
    ],
)
def test_malformed_bodies_are_refused(body: str) -> None:
    with pytest.raises(CheckpointFormatError) as caught:
        Checkpoint.parse(body)
    assert caught.value.code == "ledger.checkpoint_malformed"


def test_the_largest_uint64_size_is_accepted() -> None:
    body = SPEC_BODY.replace("20852163", str(2**64 - 1))
    assert Checkpoint.parse(body).tree_size == 2**64 - 1


def test_invalid_checkpoints_cannot_be_built() -> None:
    with pytest.raises(CheckpointFormatError):
        Checkpoint("", 1, ROOT)
    with pytest.raises(CheckpointFormatError):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(CheckpointFormatError):
        Checkpoint("log", -1, ROOT)
    with pytest.raises(CheckpointFormatError):
        Checkpoint("log", 1, ROOT[:31])
    with pytest.raises(CheckpointFormatError):
        Checkpoint("log", 1, ROOT, ("",))


def test_signed_checkpoints_open_for_their_origin_only() -> None:
    checkpoint = Checkpoint.parse(SPEC_BODY)
    note = sign_checkpoint(checkpoint, LOG)
    assert note.startswith(SPEC_BODY + "\n\u2014 example.com/behind-the-sofa ")
    assert open_checkpoint(note, [LOG.verifier], origin=checkpoint.origin) == checkpoint
    assert open_checkpoint(note.encode(), [LOG.verifier], origin=checkpoint.origin) == checkpoint
    with pytest.raises(CheckpointOriginError):
        open_checkpoint(note, [LOG.verifier], origin="example.com/another-log")
    impostor = NoteSigner.from_seed(LOG.name, bytes(32))
    with pytest.raises(NoteUnverifiedError):
        open_checkpoint(sign_checkpoint(checkpoint, impostor), [LOG.verifier], origin=LOG.name)


ORIGIN = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"], min_codepoint=0x20),
    min_size=1,
    max_size=40,
)


@given(
    origin=ORIGIN,
    tree_size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(ORIGIN, max_size=3),
)
def test_checkpoints_round_trip(
    origin: str, tree_size: int, root: bytes, extensions: list[str]
) -> None:
    checkpoint = Checkpoint(origin, tree_size, root, tuple(extensions))
    assert Checkpoint.parse(checkpoint.to_body()) == checkpoint
