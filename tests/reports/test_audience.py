"""A public report never shows internal or secret records (SPEC §7), in any file it writes:
HTML (with its inline SVG charts), Markdown, XLSX."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.policy.schema import Classification
from taskforce.reports import NotCleared, render_report
from taskforce.reviews.periods import ReviewKind
from taskforce.reviews.service import run_review
from tests.reports.helpers import all_text
from tests.reviews import factories as f

NOW = f.utc(2027, 1, 1, 1)  # after every period below: a named period must have ended
PERIODS = {
    ReviewKind.weekly: "2026-W47",
    ReviewKind.monthly: "2026-11",
    ReviewKind.quarterly: "2026-Q4",
    ReviewKind.semiannual: "2026-H2",
}

# Between them every list a review can show (weekly: overdue, compliance; quarterly: cases).
KINDS_WITH_LISTS = (ReviewKind.weekly, ReviewKind.quarterly, ReviewKind.semiannual)


@pytest.fixture
def markers(engine):
    with Session(engine) as s, s.begin():
        return f.classified_dataset(s)


def _run_all(engine, policy, clock, audience, tmp_path, kinds=tuple(PERIODS)) -> dict[str, str]:
    clock.set(NOW)
    ctx = Context(policy=policy, clock=clock)
    texts = {}
    for kind in kinds:
        label = PERIODS[kind]
        out = run_review(engine, ctx, kind, label, audience=audience, out_root=tmp_path)
        assert {p.rsplit(".", 1)[-1] for p in out.files.values()} == {"html", "md", "xlsx"}
        texts.update(all_text(out.files.values()))
    return texts


def test_public_reports_show_no_internal_or_secret_text(engine, policy, clock, markers, tmp_path):
    texts = _run_all(engine, policy, clock, Classification.public, tmp_path)
    assert len(texts) == 4 * 2 * 3  # four reviews × two locales × html, md, xlsx
    for path, text in texts.items():
        for marker in markers["secret"] + markers["internal"]:
            assert marker not in text, f"{marker} leaked into {path}"
    # The test can fail: the public records are there.
    everything = "\n".join(texts.values())
    for marker in markers["public"]:
        assert marker in everything, f"public {marker} missing from every report"


def test_internal_reports_show_internal_but_never_secret(engine, policy, clock, markers, tmp_path):
    texts = _run_all(engine, policy, clock, Classification.internal, tmp_path, KINDS_WITH_LISTS)
    everything = "\n".join(texts.values())
    for marker in markers["secret"]:
        assert marker not in everything
    assert all(
        m in everything for m in markers["internal"] if "warning" not in m and "emergency" not in m
    )


def test_secret_report_shows_secret_records(engine, policy, clock, markers, tmp_path):
    texts = _run_all(engine, policy, clock, Classification.secret, tmp_path, KINDS_WITH_LISTS)
    everything = "\n".join(texts.values())
    assert f.SECRET + "-issue" in everything
    assert "R-SECRET-ZQX" in everything  # in the risk matrix SVG and the register


def test_renderer_refuses_a_record_above_its_audience(tmp_path):
    context = {"rows": [{"title": "x", "classification": "secret"}]}
    with pytest.raises(NotCleared, match=r"context.rows\[0\]"):
        render_report("review", context, "en", "internal", tmp_path)
    assert list(tmp_path.iterdir()) == []
