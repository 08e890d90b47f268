"""Duplicate reports (首接负责制): a report whose title is near-identical to an open issue of
the same lead unit is linked to that issue instead of opening another.

Only to an issue the report's own classification may read: an internal report is never
linked to a secret issue (a classification audit: the link, its number and stage in the
report's log confirmed a guessed secret title to an internal reader); it opens an issue.

Similarity is difflib's ratio of the case-folded titles, at least
`loop.duplicate_title_similarity`; among several, the most similar one, the oldest on a tie.
Titles that name different numbers are different matters however alike the rest
(`title_numbers`): 1号泵站 and 2号泵站, 二期 and 三期, 2025年 and 2026年; 一号 and 1号 are one.
One report reads its lead unit's open titles (`find_duplicate`); an import of many rows reads
each lead unit's once and keeps them as it goes (`OpenTitles`).
"""

from __future__ import annotations

import contextlib
import difflib
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.loop.models import Issue, Stage
from taskforce.policy.schema import Classification
from taskforce.reports.audience import cleared_for


class Candidate(NamedTuple):
    """An open issue's title, prepared once for many comparisons."""

    id: int
    length: int  # of the title as stored (the length bounds are on it)
    folded: str
    folded_length: int
    chars: int  # a bit per distinct character (_char_mask)
    numbers: frozenset[str]  # title_numbers


# A bit per character ever seen, shared by all titles; new characters are added under a
# lock, so no two share a bit (the masks are summed, which is OR only for distinct bits).
_BIT_OF: dict[str, int] = {}
_NEW_CHARACTERS = threading.Lock()


def _char_mask(text: str) -> int:
    chars = set(text)
    try:
        return sum(map(_BIT_OF.__getitem__, chars))  # in C: most of a title's cost otherwise
    except KeyError:
        with _NEW_CHARACTERS:
            for ch in chars:
                if ch not in _BIT_OF:
                    _BIT_OF[ch] = 1 << len(_BIT_OF)
        return sum(map(_BIT_OF.__getitem__, chars))


# A number in a title: digits (full-width too, with , or . inside), or Chinese numerals
# after 第 or before a measure word (三号, 二期, 第一批). Chinese numerals elsewhere are words
# (统一, 进一步, 十四五), not numbers.
_CHINESE_NUMERALS = "零〇一二两三四五六七八九十百千万亿"
_MEASURE_WORDS = "号期批次届轮年月日季度个座栋层区段线条项台辆处所户家"
_NUMBER = re.compile(
    rf"\d+(?:[.,，]\d+)*"
    rf"|(?<=第)[{_CHINESE_NUMERALS}]+"
    rf"|[{_CHINESE_NUMERALS}]+(?=[{_MEASURE_WORDS}])"
)


_CHINESE_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_CHINESE_UNITS = {"十": 10, "百": 100, "千": 1000}
_CHINESE_SECTIONS = {"万": 10**4, "亿": 10**8}


def _chinese_number(token: str) -> int:
    """三 → 3, 十二 → 12, 二百零五 → 205, 一万二千 → 12000; digit by digit when there is no
    unit (二〇二六 → 2026), as years are written."""
    if not any(c in _CHINESE_UNITS or c in _CHINESE_SECTIONS for c in token):
        return int("".join(str(_CHINESE_DIGITS[c]) for c in token))
    total = section = digit = 0
    for c in token:
        if c in _CHINESE_DIGITS:
            digit = _CHINESE_DIGITS[c]
        elif c in _CHINESE_UNITS:
            section += (digit or 1) * _CHINESE_UNITS[c]  # 十二: the 一 of 一十 is not written
            digit = 0
        else:
            total = (total + section + digit) * _CHINESE_SECTIONS[c]
            section = digit = 0
    return total + section + digit


def _number_text(token: str) -> str:
    """The number as compared: digits without separators or leading zeros, whichever way
    written (１２, 12, 012 and 十二 are one number: an operator trial's 一号 and 1号)."""
    if not token[0].isdigit():
        return str(_chinese_number(token))
    digits = "".join(str(unicodedata.decimal(c, c)) for c in token if c not in ",，")
    whole, dot, fraction = digits.partition(".")
    return (whole.lstrip("0") or "0") + dot + fraction


def title_numbers(title: str) -> frozenset[str]:
    """The numbers a title names (see _NUMBER)."""
    return frozenset(_number_text(m.group()) for m in _NUMBER.finditer(title))


def name_different_numbers(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two titles' numbers make them different matters: each names a number the other
    lacks (1号 and 2号). A title without numbers, or with some of the other's only (泵站故障,
    or 1号泵站故障 again as 2026年1号泵站故障), may still be the same matter: its similarity
    decides."""
    return bool(a) and bool(b) and not (a <= b or b <= a)


def candidate(issue_id: int, title: str) -> Candidate:
    folded = title.casefold()
    return Candidate(
        issue_id, len(title), folded, len(folded), _char_mask(folded), title_numbers(folded)
    )


def _similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.casefold(), b.casefold()).ratio()


def title_length_bounds(length: int, threshold: float) -> tuple[int, int]:
    """Lengths a title must have to be `threshold`-similar to one of `length` characters.

    Similarity 2·matches/(la+lb) cannot reach t unless lb lies within la·t/(2−t) … la·(2−t)/t,
    so the other titles are dropped before any comparison (one character of slack for case
    folding that changes a length).
    """
    return int(length * threshold / (2 - threshold)) - 1, int(
        length * (2 - threshold) / threshold
    ) + 1


def find_duplicate(
    session: Session, ctx: Context, lead_unit_id: int, title: str, clearance: Classification
) -> Issue | None:
    """An open issue of the same lead unit, readable at `clearance` (the report's own
    classification), whose title is near-identical."""
    threshold = ctx.policy.loop.duplicate_title_similarity
    shortest, longest = title_length_bounds(len(title), threshold)
    rows = session.execute(
        select(Issue.id, Issue.title)
        .where(
            Issue.lead_unit_id == lead_unit_id,
            Issue.stage != Stage.closed,
            Issue.classification.in_(cleared_for(clearance)),
            func.length(Issue.title).between(shortest, longest),
        )
        .order_by(Issue.id)  # the oldest wins a tie, as in OpenTitles
    ).all()
    best = most_similar(title, rows, threshold)
    return session.get(Issue, best) if best is not None else None


def most_similar(title: str, rows: Iterable[tuple[int, str]], threshold: float) -> int | None:
    """The id of the (first) most similar title of (id, title) rows, if it reaches the
    threshold: the same answer as max(rows, key=_similar) then the threshold."""
    return best_match(title, (candidate(i, t) for i, t in rows), threshold)


def best_match(title: str, candidates: Iterable[Candidate], threshold: float) -> int | None:
    """most_similar over prepared candidates (those outside the length bounds are skipped).

    Without the full ratio for titles whose cheap upper bounds (characters the title has
    and the other lacks, real_quick_ratio, quick_ratio) cannot reach the threshold or beat
    the best so far: with thousands of open issues per lead unit, the full ratio of every
    title was most of a report's time (benchmarks/RESULTS.md).
    """
    query = title.casefold()
    size = len(query)
    query_chars = _char_mask(query)
    query_numbers = title_numbers(query)
    shortest, longest = title_length_bounds(len(title), threshold)
    matcher = difflib.SequenceMatcher(None)
    matcher.set_seq1(query)
    best_id, best_ratio, floor = None, -1.0, threshold  # floor: max(threshold, best_ratio)
    for row_id, length, other, other_length, other_chars, other_numbers in candidates:
        if length < shortest or length > longest:
            continue
        # (Two truth tests first: most titles name no number, and a call costs more.)
        if query_numbers and other_numbers and name_different_numbers(query_numbers, other_numbers):
            continue
        # Each character of the title that the other lacks occurs at least once unmatched:
        # one AND and a bit count (a set difference per title was most of an import's time).
        unmatched = (query_chars & ~other_chars).bit_count()
        if 2.0 * (size - unmatched) < floor * (size + other_length):
            continue
        matcher.set_seq2(other)
        if matcher.real_quick_ratio() < floor or matcher.quick_ratio() < floor:
            continue
        ratio = matcher.ratio()
        if ratio > best_ratio:
            best_id, best_ratio = row_id, ratio
            floor = max(threshold, ratio)
    return best_id if best_ratio >= threshold else None


class OpenTitles:
    """The open issues' titles of each lead unit (and clearance), read once, for many reports
    in a row.

    An import reports each of its rows in a transaction of its own; reading the lead unit's
    thousands of open titles again for every row was most of its time (47 of 55 ms a row at
    full size: benchmarks/RESULTS.md, session 8). A row's new issue is staged by
    `report_issue` and kept when the row's `with open_titles.row():` block, which holds its
    transaction, ends without an error; so a later row of the file finds an earlier one and
    never a rolled-back one. Issues
    others report during the import are not seen by it: the file is compared with the
    issues open when each lead unit was first read, and with its own earlier rows.
    """

    def __init__(self) -> None:
        self._by_unit: dict[tuple[int, Classification], list[Candidate]] = {}
        self._staged: list[tuple[int, Classification, Candidate]] = []

    def find(
        self,
        session: Session,
        ctx: Context,
        lead_unit_id: int,
        title: str,
        clearance: Classification,
    ) -> Issue | None:
        """find_duplicate, against the unit's titles (readable at `clearance`) read once."""
        best = best_match(
            title,
            self._titles(session, lead_unit_id, clearance),
            ctx.policy.loop.duplicate_title_similarity,
        )
        issue = session.get(Issue, best) if best is not None else None
        # Closed since the unit was read (by another process): no longer a duplicate target.
        return issue if issue is not None and issue.stage != Stage.closed else None

    def stage(
        self, lead_unit_id: int, issue_id: int, title: str, classification: Classification
    ) -> None:
        self._staged.append((lead_unit_id, classification, candidate(issue_id, title)))

    @contextlib.contextmanager
    def row(self) -> Iterator[None]:
        """One report's block: what it staged is kept if the block (its transaction, commit
        included) ends without an error, and dropped otherwise."""
        self._staged.clear()
        try:
            yield
        except BaseException:
            self._staged.clear()
            raise
        for unit_id, classification, entry in self._staged:
            for (unit, clearance), titles in self._by_unit.items():
                # (a list not read yet reads the new issue with the others when first wanted)
                if unit == unit_id and classification.readable_by(clearance):
                    titles.append(entry)
        self._staged.clear()

    def _titles(self, session: Session, unit_id: int, clearance: Classification) -> list[Candidate]:
        if (unit_id, clearance) not in self._by_unit:
            rows = session.execute(
                select(Issue.id, Issue.title)
                .where(
                    Issue.lead_unit_id == unit_id,
                    Issue.stage != Stage.closed,
                    Issue.classification.in_(cleared_for(clearance)),
                )
                .order_by(Issue.id)
            ).all()
            self._by_unit[unit_id, clearance] = [candidate(i, t) for i, t in rows]
        return self._by_unit[unit_id, clearance]
