"""Our canonical JSON is byte for byte the rfc8785 package's, on any document."""

from __future__ import annotations

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from nexapod.crypto import canonical_json

SAFE_INTS = st.integers(-(2**53) + 1, 2**53 - 1)
ASCII_TEXT = st.text(alphabet=st.characters(max_codepoint=127), max_size=20)
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)


def documents(text: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    return st.recursive(
        st.none() | st.booleans() | SAFE_INTS | text,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5)
        ),
        max_leaves=30,
    )


@given(documents(ASCII_TEXT))
def test_fast_path_matches_rfc8785_on_ascii_documents(document: object) -> None:
    assert canonical_json(document) == rfc8785.dumps(document)


@given(documents(ANY_TEXT))
def test_matches_rfc8785_on_any_text(document: object) -> None:
    assert canonical_json(document) == rfc8785.dumps(document)


def test_control_characters_and_key_order() -> None:
    document = {"b": '\x00\x1f\x7f\b\t\n\f\r"\\/', "a": [1, -(2**53) + 1], "B": None}
    assert canonical_json(document) == rfc8785.dumps(document)
    assert canonical_json(document).startswith(b'{"B":null,"a":')
