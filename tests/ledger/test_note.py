"""C2SP signed-note: the Go sumdb vector, format rules, and tampering."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod.ledger.log_errors import (
    KeyNameError,
    NoteError,
    NoteFormatError,
    NoteSignatureError,
    NoteUnverifiedError,
    VerifierKeyError,
)
from nexapod.ledger.note import (
    NOTE_SIGNATURES_MAX,
    NoteSigner,
    NoteVerifier,
    format_vkey,
    key_id,
    open_note,
    parse_vkey,
    sign_note,
    validate_key_name,
)

# The example of golang.org/x/mod/sumdb/note, from which C2SP signed-note was specified.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_NOTE = (
    PETER_TEXT + "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
    "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def peter() -> NoteSigner:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert seed[0] == 0x01
    return NoteSigner.from_seed("PeterNeumann", seed[1:])


def signer(name: str, seed_byte: int) -> NoteSigner:
    return NoteSigner.from_seed(name, bytes([seed_byte]) * 32)


ALICE = signer("example.com/alice", 1)
BOB = signer("example.com/bob", 2)
MALLORY_AS_ALICE = signer("example.com/alice", 3)


def test_the_go_sumdb_vector_signs_byte_for_byte() -> None:
    assert peter().vkey == PETER_VKEY
    assert peter().key_id == 0xC74F20A3
    assert sign_note(PETER_TEXT, peter()) == PETER_NOTE
    assert open_note(PETER_NOTE, [parse_vkey(PETER_VKEY)]) == PETER_TEXT
    assert open_note(PETER_NOTE.encode(), [parse_vkey(PETER_VKEY)]) == PETER_TEXT


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    verifier = parse_vkey(PETER_VKEY)
    assert key_id("PeterNeumann", verifier.public_key) == 0xC74F20A3
    assert format_vkey("PeterNeumann", verifier.public_key) == PETER_VKEY
    assert NoteVerifier.from_vkey(PETER_VKEY).vkey == PETER_VKEY


def test_unknown_signatures_are_ignored_and_known_ones_are_required() -> None:
    note = sign_note("hello\n", [ALICE, BOB])
    assert open_note(note, [ALICE.verifier]) == "hello\n"
    assert open_note(note, [BOB.verifier]) == "hello\n"
    assert open_note(note, [ALICE.verifier, BOB.verifier]) == "hello\n"
    with pytest.raises(NoteUnverifiedError) as caught:
        open_note(note, [signer("example.com/carol", 4).verifier])
    assert caught.value.code == "ledger.note_unverified"
    with pytest.raises(NoteUnverifiedError):
        open_note(note, [])


def test_another_key_under_the_same_name_is_a_stranger() -> None:
    """Same name, different key ID: ignored, so the note has no known signature."""
    note = sign_note("hello\n", MALLORY_AS_ALICE)
    with pytest.raises(NoteUnverifiedError):
        open_note(note, [ALICE.verifier])


def test_a_bad_signature_by_a_known_key_rejects_the_note() -> None:
    good = sign_note("hello\n", ALICE)
    forged = sign_note("hullo\n", ALICE).replace("hullo", "hello")
    with pytest.raises(NoteSignatureError) as caught:
        open_note(forged, [ALICE.verifier])
    assert caught.value.http_status == 401
    both = good + forged.split("\n\n")[1]
    with pytest.raises(NoteFormatError, match="twice"):
        open_note(both, [ALICE.verifier])
    with_bob = sign_note("hello\n", BOB) + forged.split("\n\n")[1]
    with pytest.raises(NoteSignatureError):
        open_note(with_bob, [ALICE.verifier, BOB.verifier])


def test_repeated_unknown_signatures_are_ignored() -> None:
    note = sign_note("hello\n", [ALICE, BOB])
    bob_line = note.split("\n\n")[1].split("\n")[1] + "\n"
    assert open_note(note + bob_line, [ALICE.verifier]) == "hello\n"


def test_the_text_may_contain_blank_lines() -> None:
    text = "a\n\nb\n\n"
    note = sign_note(text, ALICE)
    assert open_note(note, [ALICE.verifier]) == text


@pytest.mark.parametrize(
    "note",
    [
        "hello\n",
        "hello\n\n",
        "hello\n\n\u2014 example.com/alice AAAA",
        "hello\n\n- example.com/alice AAAAAAAA\n",
        "hello\n\n\u2014example.com/alice AAAAAAAA\n",
        "hello\n\n\u2014 example.com/alice\n",
        "hello\n\n\u2014 example.com/alice AAAA\n",
        "hello\n\n\u2014 example.com/alice AAAAAAAA!\n",
        "hello\n\n\u2014 example.com/alice AAAAAAA\n",
        "hello\n\n\u2014 example.com/alice  AAAAAAAA\n",
        "hello\n\n\u2014 example+com AAAAAAAA\n",
        "hello\n\n\u2014  AAAAAAAA\n",
        "hel\tlo\n\n\u2014 example.com/alice AAAAAAAA\n",
        "hello\r\n\n\u2014 example.com/alice AAAAAAAA\n",
        "hello\n\n\u2014 example.com/alice AAAAAAAA\n\n",
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(NoteFormatError) as caught:
        open_note(note, [ALICE.verifier])
    assert caught.value.code == "ledger.note_malformed"


def test_invalid_utf8_and_oversized_notes_are_refused() -> None:
    note = sign_note("hello\n", ALICE).encode()
    with pytest.raises(NoteFormatError, match="UTF-8"):
        open_note(b"\xff" + note, [ALICE.verifier])
    with pytest.raises(NoteFormatError, match="bytes"):
        open_note(note, [ALICE.verifier], note_bytes_max=len(note) - 1)
    with pytest.raises(NoteFormatError, match="UTF-8"):
        open_note("\udc80" + note.decode(), [ALICE.verifier])


def test_non_canonical_base64_is_refused() -> None:
    """The last character carries two unused bits; another value there is another note."""
    note = sign_note("hello\n", ALICE)
    line = note.split("\n\n")[1].rstrip("\n")
    raw = base64.b64decode(line.rsplit(" ", 1)[1])
    assert len(raw) % 3 == 2
    encoded = base64.b64encode(raw).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(encoded[-2])
    twin = encoded[:-2] + alphabet[last ^ 1] + "="
    assert base64.b64decode(twin) == raw
    with pytest.raises(NoteFormatError):
        open_note(note.replace(encoded, twin), [ALICE.verifier])


def test_too_many_signatures_are_refused() -> None:
    signers = [signer(f"example.com/k{i}", i) for i in range(1, NOTE_SIGNATURES_MAX + 2)]
    note = sign_note("hello\n", signers[:16])
    assert open_note(note, [signers[0].verifier]) == "hello\n"
    crowded = sign_note("hello\n", signers)
    with pytest.raises(NoteFormatError, match="signatures"):
        open_note(crowded, [signers[0].verifier])


def test_signing_refuses_bad_text_and_duplicate_signers() -> None:
    with pytest.raises(NoteFormatError, match="newline"):
        sign_note("hello", ALICE)
    with pytest.raises(NoteFormatError, match="control"):
        sign_note("he\x00llo\n", ALICE)
    with pytest.raises(NoteFormatError, match="share"):
        sign_note("hello\n", [ALICE, ALICE])
    with pytest.raises(NoteFormatError):
        sign_note("hello\n", [])
    with pytest.raises(NoteFormatError, match="verifiers share"):
        open_note(sign_note("hello\n", ALICE), [ALICE.verifier, ALICE.verifier])


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u2003b", "a\u2028b", "\x01", "a\udc80"],
)
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(KeyNameError):
        validate_key_name(name)
    with pytest.raises(KeyNameError):
        NoteSigner.from_seed(name, bytes(32))


@pytest.mark.parametrize("name", ["example.com/log", "PeterNeumann", "caf\u00e9/\u65e5\u672c", "a"])
def test_valid_key_names(name: str) -> None:
    validate_key_name(name)
    assert parse_vkey(NoteSigner.from_seed(name, bytes(32)).vkey).name == name


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20az+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW+",
        "PeterNeumann+c74f20a3+AhpczQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_vkeys_are_refused(vkey: str) -> None:
    with pytest.raises(VerifierKeyError) as caught:
        parse_vkey(vkey)
    assert caught.value.code == "ledger.vkey_malformed"


def test_upper_case_key_ids_are_accepted_like_go() -> None:
    assert parse_vkey(PETER_VKEY.replace("c74f20a3", "C74F20A3")).key_id == 0xC74F20A3


NOTE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], min_codepoint=0x20) | st.just("\n"),
    max_size=200,
).map(lambda text: text + "\n")


@given(text=NOTE_TEXT)
@settings(max_examples=60, deadline=None)
def test_signed_notes_round_trip(text: str) -> None:
    assert open_note(sign_note(text, [ALICE, BOB]), [BOB.verifier]) == text


@given(text=NOTE_TEXT, data=st.data())
@settings(max_examples=150, deadline=None)
def test_any_flipped_bit_is_rejected(text: str, data: st.DataObject) -> None:
    """A note whose bytes changed either fails to open or is not the one signed."""
    note = sign_note(text, ALICE).encode()
    at = data.draw(st.integers(0, len(note) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = note[:at] + bytes([note[at] ^ (1 << bit)]) + note[at + 1 :]
    with pytest.raises(NoteError):
        open_note(tampered, [ALICE.verifier])


def test_a_vkey_whose_base64_contains_plus_signs_parses() -> None:
    """Key names never contain "+", base64 often does: split at the first two only."""
    for seed in range(64):
        signer = NoteSigner.from_seed("nexapod.test/log", bytes([seed]) * 32)
        if "+" in signer.vkey.split("+", 2)[2]:
            assert parse_vkey(signer.vkey).public_key == signer.public_key
            return
    raise AssertionError("no seed gave a key with '+' in its base64")
