"""A review's workbook lists its period's items (a meeting document); the whole ledgers are
an export of their own (`taskforce review export-ledger`).

The rule (content.task_ledger / budget_ledger with a period): a task node is in the review's
任务台账 if it is due in the period (first_day <= due_date <= last_day) or was completed in
it (completed_at in [local midnight of first_day, local midnight after last_day), local
time Asia/Shanghai); a ledger entry is in the 资金台账 if it is dated in the period.
November 2026 in Shanghai is [2026-10-31 16:00 UTC, 2026-11-30 16:00 UTC).
"""

from __future__ import annotations

import datetime as dt
import zipfile

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from taskforce.context import Context
from taskforce.policy.schema import Classification
from taskforce.reviews import content
from taskforce.reviews.ledgers import export_ledger
from taskforce.reviews.periods import parse_period
from taskforce.reviews.service import run_review
from tests.reviews import factories as f

NOVEMBER = parse_period("monthly", "2026-11")
d = dt.date

# title -> (due date, completed at (UTC) or None, in November's ledger?)
ITEMS = {
    "due on the first day": (d(2026, 11, 1), None, True),
    "due on the last day": (d(2026, 11, 30), None, True),
    "due the day after": (d(2026, 12, 1), None, False),
    "due the day before": (d(2026, 10, 31), None, False),
    "due earlier, completed in the period": (d(2026, 10, 15), f.utc(2026, 11, 5, 3), True),
    # 00:00 on 1 November in Shanghai: the period's first instant.
    "completed at the first instant": (d(2026, 10, 20), f.utc(2026, 10, 31, 16), True),
    # 23:59 on 31 October in Shanghai (15:59 UTC): before the period.
    "completed a minute before": (d(2026, 10, 20), f.utc(2026, 10, 31, 15, 59), False),
    # 23:59 on 30 November in Shanghai: still in.
    "completed at the last minute": (d(2026, 10, 20), f.utc(2026, 11, 30, 15, 59), True),
    # 00:00 on 1 December in Shanghai: the first instant after the period.
    "completed at the first instant after": (d(2026, 10, 20), f.utc(2026, 11, 30, 16), False),
    "due later, completed in the period": (d(2026, 12, 20), f.utc(2026, 11, 20), True),
}
# entry date -> in November's 资金台账?
ENTRIES = {
    d(2026, 10, 31): False,
    d(2026, 11, 1): True,
    d(2026, 11, 30): True,
    d(2026, 12, 1): False,
}


@pytest.fixture
def ctx(engine, policy, clock):
    with Session(engine) as s, s.begin():
        parent = f.issue(s, reported_at=f.utc(2026, 9, 1), title="the internal issue")
        for title, (due, completed, _in) in ITEMS.items():
            f.action_item(s, parent, start=d(2026, 9, 1), due=due, completed_at=completed,
                          title=title)  # fmt: skip
        hidden = f.issue(s, reported_at=f.utc(2026, 9, 1), title="the secret issue",
                         classification=Classification.secret)  # fmt: skip
        f.action_item(s, hidden, start=d(2026, 9, 1), due=d(2026, 11, 15), title="secret item")
        f.fiscal_year(s, 2026, 100_000_000)
        line = f.budget_line(s, year=2026, amount_fen=50_000_000, issue_id=parent.id)
        secret_line = f.budget_line(s, year=2026, amount_fen=1_000_000, issue_id=hidden.id,
                                    classification=Classification.secret)  # fmt: skip
        for on in ENTRIES:
            f.ledger(s, line, on=on, amount_fen=100_000, description=f"entry {on}")
        f.ledger(s, secret_line, on=d(2026, 11, 15), amount_fen=1, description="secret entry")
    clock.set(f.utc(2026, 12, 1, 1))
    return Context(policy=policy, clock=clock)


def test_the_period_task_ledger_at_its_boundaries(engine, ctx):
    with engine.connect() as conn:
        frame = content.task_ledger(
            conn,
            Classification.internal,
            NOVEMBER,
            today=ctx.today(),
            progress=ctx.policy.progress,
            timezone=ctx.policy.timezone,
        )
    assert sorted(frame.task) == sorted(t for t, (_d, _c, inside) in ITEMS.items() if inside)


def test_the_period_task_ledger_respects_the_audience(engine, ctx):
    kw = {"today": ctx.today(), "progress": ctx.policy.progress, "timezone": ctx.policy.timezone}
    with engine.connect() as conn:
        internal = content.task_ledger(conn, Classification.internal, NOVEMBER, **kw)
        secret = content.task_ledger(conn, Classification.secret, NOVEMBER, **kw)
        public = content.task_ledger(conn, Classification.public, NOVEMBER, **kw)
    assert "secret item" not in set(internal.task)
    assert set(secret.task) == set(internal.task) | {"secret item"}
    assert public.empty


def test_the_period_budget_ledger_at_its_boundaries(engine, ctx):
    with engine.connect() as conn:
        internal = content.budget_ledger(conn, NOVEMBER, Classification.internal)
        secret = content.budget_ledger(conn, NOVEMBER, Classification.secret)
    assert list(internal.date) == [on for on, inside in ENTRIES.items() if inside]
    assert "secret entry" in set(secret.description)
    assert "secret entry" not in set(internal.description)


def test_the_review_workbook_holds_the_period_and_says_so(engine, ctx, tmp_path):
    out = run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path, locales=["en"])
    wb = load_workbook(out.files["en.xlsx"])
    rows = list(wb["Task ledger"].iter_rows(values_only=True))
    note = rows[0][0]
    assert "2026-11 (2026-11-01 to 2026-11-30, Beijing time)" in note
    assert "due in the period, or completed in it" in note
    assert "The executive office can export the full task ledger" in note
    assert "No records" not in note
    assert rows[1][3] == "Task"
    assert sorted(r[3] for r in rows[2:]) == sorted(t for t, v in ITEMS.items() if v[2])
    assert wb["Task ledger"].freeze_panes == "A3"  # note and header stay in view
    assert wb["Task ledger"].auto_filter.ref.startswith("A2:")
    budget = list(wb["Budget ledger"].iter_rows(values_only=True))
    assert "Budget ledger entries dated in 2026-11" in budget[0][0]
    assert [r[0].date() for r in budget[2:]] == [on for on, inside in ENTRIES.items() if inside]


def test_an_empty_period_ledger_says_it_has_no_records(engine, ctx, tmp_path):
    """A month without ledger entries showed headers only: blank or broken?"""
    ctx.clock.set(dt.datetime(2027, 3, 2, 1, tzinfo=dt.UTC))
    out = run_review(engine, ctx, "monthly", "2027-02", out_root=tmp_path, locales=["zh-CN"])
    wb = load_workbook(out.files["zh-CN.xlsx"])
    budget = list(wb["资金台账"].iter_rows(values_only=True))
    assert "本期无记录。" in budget[0][0] and len(budget) == 2  # the note and the header


def test_the_full_ledger_export_holds_every_item(engine, ctx, tmp_path):
    path = tmp_path / "ledger.xlsx"
    rows = export_ledger(engine, ctx, path, audience="internal", locale="en")
    assert rows == len(ITEMS)
    sheet = list(load_workbook(path)["Task ledger"].iter_rows(values_only=True))
    assert sheet[0][3] == "Task"  # no note: the export is the whole ledger
    assert sorted(r[3] for r in sheet[1:]) == sorted(ITEMS)

    budget = tmp_path / "budget.xlsx"
    assert export_ledger(engine, ctx, budget, ledger="budget", audience="secret") == 5
    assert load_workbook(budget).sheetnames == ["资金台账"]  # the policy's locale: zh-CN


def test_the_export_command(engine, ctx, tmp_path):
    from taskforce.cli import app

    path = tmp_path / "full.xlsx"
    result = CliRunner().invoke(
        app, ["review", "export-ledger", "--out", str(path), "--audience", "secret"]
    )
    assert result.exit_code == 0, result.output
    assert f"{len(ITEMS) + 1:,} rows" in result.output
    sheet = list(load_workbook(path)["任务台账"].iter_rows(values_only=True))
    assert len(sheet) == 1 + len(ITEMS) + 1  # the secret item too, for a secret audience

    bad = CliRunner().invoke(app, ["review", "export-ledger", "--out", str(path), "--locale", "fr"])
    assert bad.exit_code == 2
    assert "locale" in bad.output and "zh-CN" in bad.output


@pytest.mark.parametrize(
    ("out", "problem"),
    [
        ("{tmp}", "is a folder"),
        ("", "is a folder"),  # "" is the working folder
        ("{tmp}/ledger.csv", "is not an .xlsx file name"),
        ("{tmp}/missing/ledger.xlsx", "no folder"),
    ],
)
def test_the_export_refuses_an_out_path_it_cannot_write(engine, ctx, tmp_path, out, problem):
    from taskforce.cli import app

    before = sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(app, ["review", "export-ledger", "--out", out.format(tmp=tmp_path)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())  # rich wraps a long path at the terminal's width
    assert "out:" in said and problem in said
    assert ".xlsx" in said  # what is allowed
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_the_workbook_process_writes_the_files_written_in_process(
    engine, ctx, tmp_path, monkeypatch, start
):
    """run_review writes its workbooks in a child process at scale: the same bytes, whether
    the child is forked (a process with one thread) or spawned."""
    from taskforce.reviews import ledgers

    monkeypatch.setattr(ledgers, "_start_method", lambda: start)
    inline = run_review(
        engine, ctx, "monthly", "2026-11", out_root=tmp_path / "a", workbook_process=False
    )
    child = run_review(
        engine, ctx, "monthly", "2026-11", out_root=tmp_path / "b", workbook_process=True
    )
    for locale in ("zh-CN", "en"):
        # The same parts, byte for byte (the KPI sheet, known last, is stored last).
        with (
            zipfile.ZipFile(child.files[f"{locale}.xlsx"]) as ours,
            zipfile.ZipFile(inline.files[f"{locale}.xlsx"]) as theirs,
        ):
            assert sorted(ours.namelist()) == sorted(theirs.namelist())
            for name in theirs.namelist():
                assert ours.read(name) == theirs.read(name), name
    assert not list((tmp_path / "b").rglob("*.partial"))


def test_a_failed_review_leaves_no_workbook(engine, ctx, tmp_path, monkeypatch):
    from taskforce.reviews import service

    def broken(*_args, **_kwargs):
        raise RuntimeError("the KPIs could not be read")

    monkeypatch.setattr(service, "compute_kpis", broken)
    with pytest.raises(RuntimeError, match="could not be read"):
        run_review(
            engine, ctx, "monthly", "2026-11", out_root=tmp_path / "out", workbook_process=True
        )
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_an_unknown_locale_is_refused_before_anything_starts(engine, ctx, tmp_path):
    from taskforce.errors import DomainError

    with pytest.raises(DomainError, match="locale"):
        run_review(engine, ctx, "monthly", "2026-11", out_root=tmp_path / "out", locales=["fr"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("level", [Classification.internal, Classification.secret])
def test_a_reserve_draws_text_is_shown_only_to_those_cleared_for_its_emergency(engine, level):
    """A classification audit: a draw's default text is "emergency <id>: <title>", on the
    reserve line (internal), so a secret emergency's title reached the internal review's
    资金台账. Above the audience its text is withheld; its amount still counts."""
    from taskforce.budget.models import LedgerKind
    from taskforce.emergency.models import Emergency, Level
    from taskforce.reports.audience import WITHHELD

    with Session(engine) as s, s.begin():
        f.fiscal_year(s, 2026, 100_000_000)
        reserve = f.budget_line(s, year=2026, amount_fen=10_000_000, is_reserve=True)
        f.emergency(s, level=Level.II, opened_at=f.utc(2026, 11, 3), title="冷却泄漏",
                    classification=level)  # fmt: skip
        emergency = s.scalars(select(Emergency)).one()
        draw = f.ledger(s, reserve, on=d(2026, 11, 3), amount_fen=100_000,
                        kind=LedgerKind.reserve_draw,
                        description=f"emergency {emergency.public_id}: 冷却泄漏")  # fmt: skip
        draw.emergency_id, draw.payee = emergency.id, "应急物资供应商"
        public_id = emergency.public_id
    with engine.connect() as conn:
        internal = content.budget_ledger(conn, NOVEMBER, Classification.internal)
        secret = content.budget_ledger(conn, NOVEMBER, Classification.secret)
    assert list(secret.description) == [f"emergency {public_id}: 冷却泄漏"]
    assert list(secret.payee) == ["应急物资供应商"]
    shown = level == Classification.internal
    assert list(internal.description) == [secret.description[0] if shown else WITHHELD]
    assert list(internal.payee) == ["应急物资供应商" if shown else WITHHELD]
    assert list(internal.amount) == list(secret.amount) == [1000]
