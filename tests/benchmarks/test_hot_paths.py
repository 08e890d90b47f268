"""The hot paths made faster for issue 9 give the answers of the simple code they replaced."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from taskforce.loop.duplicates import _similar, most_similar
from taskforce.trail.service import _entry_bytes, _iso_utc

TITLE = st.text(alphabet="东西区审批数据共享融资税费漏损窗口ab AB-1", min_size=0, max_size=24)


@settings(max_examples=300, deadline=None)
@given(
    title=TITLE,
    titles=st.lists(TITLE, max_size=25),
    threshold=st.sampled_from([0.01, 0.5, 0.88, 1.0]),
)
def test_most_similar_is_the_brute_force_answer(title, titles, threshold):
    rows = list(enumerate(titles, 1))
    best = max(rows, key=lambda r: _similar(title, r[1]), default=None)
    expected = best[0] if best is not None and _similar(title, best[1]) >= threshold else None
    assert most_similar(title, rows, threshold) == expected


def _reference_bytes(eid, at, actor, action, stype, sid, payload, cls, fallback) -> bytes:
    """The entry bytes as first written: canonical JSON of the nine fields."""
    fields = [eid, at.astimezone(dt.UTC).isoformat(), actor, action, stype, sid, payload, cls]
    return json.dumps(
        [*fields, fallback], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


TEXT = st.text(max_size=30)  # any unicode: quotes, backslashes, control characters


@settings(max_examples=300, deadline=None)
@given(
    eid=st.integers(1, 10**12),
    at=st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(9999, 1, 1),
        timezones=st.just(dt.UTC),
    ),
    strings=st.lists(TEXT, min_size=6, max_size=6),
    fallback=st.booleans(),
)
def test_entry_bytes_are_canonical_json(eid, at, strings, fallback):
    actor, action, stype, sid, payload, cls = strings
    args = (eid, at, actor, action, stype, sid, payload, cls, fallback)
    assert _entry_bytes(*args) == _reference_bytes(*args)


@given(
    at=st.datetimes(
        min_value=dt.datetime(1000, 1, 1),
        max_value=dt.datetime(9999, 1, 1),
        timezones=st.just(dt.UTC),
    )
)
def test_stored_sqlite_text_gives_the_isoformat(at):
    stored = at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite text
    assert _iso_utc(stored) == at.isoformat()
    assert _iso_utc(at) == at.isoformat()
