"""What counts as text: tab and line breaks do, other control characters and lone surrogates
do not, and the refusal names the character and where it is."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, ValidationError

from bruno_edge.plain_text import PlainText, first_non_text_character


class Note(BaseModel):
    text: Annotated[str, PlainText]


@pytest.mark.parametrize("text", ["plain", "tab\there", "lines\nand\r\nmore", "ünïcödé ✓", ""])
def test_text_with_tabs_and_line_breaks_is_text(text: str) -> None:
    assert first_non_text_character(text) is None
    assert Note(text=text).text == text


@pytest.mark.parametrize(
    ("text", "position"),
    [("a\x00", 1), ("\x1b[31m", 0), ("x\x7f", 1), ("ok\x85", 2), ("\ud800", 0), ("a\x0bb", 1)],
)
def test_other_control_characters_are_found_where_they_are(text: str, position: int) -> None:
    assert first_non_text_character(text) == position


def test_a_model_refuses_a_control_character_naming_it_and_its_position() -> None:
    with pytest.raises(ValidationError) as refused:
        Note(text="restore\x00the volume")

    [error] = refused.value.errors()
    assert error["type"] == "control_character"
    assert "U+0000 is at position 7" in error["msg"]
