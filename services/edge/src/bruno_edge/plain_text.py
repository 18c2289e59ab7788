"""What counts as text in a request: no control characters but tab and line breaks.

A NUL in a title or a document is a client's bug or an attack; it is refused (a 422 naming the
character) rather than stripped, because silently changing the text would also change its
content hash.

    class Note(BaseModel):
        title: Annotated[str, PlainText]      # "a\x00" is a validation error naming U+0000
"""

from __future__ import annotations

import re

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

# Not text: control characters (Unicode category Cc: C0, DEL, C1) other than tab, line feed
# and carriage return, and lone surrogates (no UTF-8 form). Refused, never stripped: a NUL
# in a title or a document is a client's bug or an attack, and silently changing the text
# would also change its content hash.
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def first_non_text_character(value: str) -> int | None:
    r"""The position of the first character that is not text (see ``_NOT_TEXT``), or None.

    >>> first_non_text_character("tab\tand\nline feed"), first_non_text_character("a\x00")
    (None, 1)
    """
    found = _NOT_TEXT.search(value)
    return None if found is None else found.start()


def plain_text(value: str) -> str:
    """``value`` unchanged, or a validation error naming its first control character."""
    position = first_non_text_character(value)
    if position is not None:
        raise PydanticCustomError(
            "control_character",
            "String should not contain control characters; U+{code} is at position {position}",
            {"code": f"{ord(value[position]):04X}", "position": position},
        )
    return value


PlainText = AfterValidator(plain_text)
"""Refuses control characters other than tab, line feed and carriage return (a 422)."""
