"""What an operator's text may hold: forms' titles are one visible line, notes are text.

An operator trial reported issues titled with zero-width spaces only (an issue no list
shows a title for), with a right-to-left override (a title that reads backwards, the
"Trojan source" trick), with a NUL (which no PostgreSQL text column can hold: the step
failed there with a database error) and with line breaks in a title. Used as annotated
types, so a refusal names the field (`sub_projects.0.action_items.0.title`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# Embeddings, overrides and isolates: they reorder what a reader sees.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_BREAKS = frozenset("\n\r\u0085\u2028\u2029")
# What `as_text` drops, as one character class: Unicode's control characters (category
# Cc is exactly U+0000-U+001F and U+007F-U+009F) but tab and line breaks, and the
# bidirectional controls. Why a pattern: the gateway cleans every webhook's title and
# description, and a loop over the characters in Python was a tenth of its event loop's
# time (benchmarks/RESULTS.md, session 24); `tests/unit/test_text.py` checks the class
# against `unicodedata` for every character.
_DROPPED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Line breaks, tabs and spaces: `as_one_line` makes each run of them one space.
_BLANK_RUNS = re.compile(r"[ \t\n\r\u0085\u2028\u2029]+")


def _control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" and ch not in "\t\n\r"


def check_text(value: str) -> str:
    """Refuse characters no reader can see the effect of (control characters but tab and
    line breaks, bidirectional overrides)."""
    for ch in value:
        if ch == "\x00":
            raise ValueError("must not contain NUL (\\u0000)")
        if _control(ch) or ch in _BIDI_CONTROLS:
            raise ValueError(
                f"must not contain the invisible control character U+{ord(ch):04X} "
                f"({unicodedata.name(ch, 'control')})"
            )
    return value


def check_one_line(value: str) -> str:
    """`check_text`, on one line, with at least one visible character."""
    check_text(value)
    if any(ch in _LINE_BREAKS or ch == "\t" for ch in value):
        raise ValueError("must be one line (no line breaks or tabs)")
    if not has_visible(value):
        raise ValueError("must not be empty (it has no visible character)")
    return value


def has_visible(value: str) -> bool:
    return any(_visible(ch) for ch in value)


def _visible(ch: str) -> bool:
    # Separators (spaces of every width) and format characters (zero-width space, joiner,
    # byte-order mark) print nothing.
    return unicodedata.category(ch)[0] not in ("Z", "C")


def as_text(value: str) -> str:
    """`value` with what `check_text` refuses dropped: for text the system copies from
    elsewhere (a monitoring system's emergency, a spreadsheet cell), not typed in a form."""
    return _DROPPED.sub("", value)


def as_one_line(value: str) -> str:
    """`as_text` on one line: line breaks and tabs become spaces, runs of spaces one."""
    return _BLANK_RUNS.sub(" ", as_text(value)).strip()


Text = Annotated[str, AfterValidator(check_text)]
OneLine = Annotated[str, AfterValidator(check_one_line)]
