"""`taskforce emergency list`: what the office needs to answer an emergency's forms."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from taskforce.cli import app
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.paging import first_page
from taskforce.policy.schema import Classification
from tests.emergency.test_service import _open as open_one


@pytest.fixture
def ctx(policy, clock):
    return Context(policy=policy, clock=clock)


def _open(engine, ctx, key, level, title, classification=Classification.internal):
    return open_one(
        engine, ctx, level, key, title=title, classification=classification
    ).emergency_id


def _list(*args: str) -> str:
    # A terminal wide enough for a row per line (rich folds columns to fit 80).
    result = CliRunner().invoke(app, ["emergency", "list", *args], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    return result.output


def test_open_emergencies_are_listed_with_who_is_paged_and_the_answer(engine, ctx, clock):
    assert "no open emergency 无未结应急事件" in _list()
    paged = _open(engine, ctx, "a", "II", "政务外网中断")
    with unit_of_work(engine) as s:
        first_page(s, ctx, paged, actor="test", reason="test")
    clock.advance(minutes=5)
    secret = _open(engine, ctx, "b", "I", "涉密系统泄露", Classification.secret)
    clock.advance(minutes=5)
    over = _open(engine, ctx, "c", "III", "已处理的告警")
    with unit_of_work(engine) as s:
        service.acknowledge(s, ctx, paged, actor="E1")
        service.resolve(s, ctx, over, actor="W3")

    shown = _list()
    # Newest first; the resolved one only with --all; ids whole, to copy into the forms.
    assert shown.index(secret) < shown.index(paged) and over not in shown
    assert "未结应急事件 Open emergencies (2)" in shown
    row = next(line for line in shown.splitlines() if paged in line)
    assert "已确认" in row and "执行小组 ×1" in row and "政务外网中断" in row
    # A secret title is withheld unless the reader says it is cleared for it.
    assert "涉密系统泄露" not in shown and "（秘密，不显示）" in shown
    assert "涉密系统泄露" in _list("--clearance", "secret")
    everything = _list("--all", "--limit", "2")
    assert over in everything and paged not in everything and "(2+)" in everything


def test_on_a_terminal_of_80_columns_each_emergency_is_a_block_with_its_title_whole(engine, ctx):
    """At 80 columns the table folded the title a character per line (an operator trial)."""
    title = "数据中心断电 [/primary] Data centre power loss"  # rich markup in a title, too
    shown_id = _open(engine, ctx, "n", "I", title)
    result = CliRunner().invoke(app, ["emergency", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"  {title}" in lines
    assert any(line.startswith(f"{shown_id}  I级  ") for line in lines)
    wide = _list()
    assert title in wide  # the table takes it as text, not as markup


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--clearance", "top"], "'top' is not one of"),
        (["--limit", "0"], "should be greater than or equal to 1"),
    ],
)
def test_bad_options_are_refused_by_name(engine, args, complaint):
    result = CliRunner().invoke(app, ["emergency", "list", *args])
    assert result.exit_code == 2 and complaint in " ".join(result.output.split())


def test_a_closed_drill_is_not_said_to_be_turned_into_an_issue(engine, ctx):
    """An operator trial: `emergency list --all` showed a closed drill as 已结案（已转问题）,
    though a drill closes without an issue (its drill report is its follow-up)."""
    real = _open(engine, ctx, "r", "III", "真实告警")
    drill = open_one(engine, ctx, "III", "d", title="演练告警", is_drill=True).emergency_id
    with unit_of_work(engine) as s:
        for public_id in (real, drill):
            service.resolve(s, ctx, public_id, actor="W3")
        service.close_resolved(s, ctx)
    shown = _list("--all")
    rows = {i: next(line for line in shown.splitlines() if i in line) for i in (real, drill)}
    assert "已结案（已转问题）" in rows[real], rows
    assert "已结案" in rows[drill] and "已转问题" not in rows[drill], rows
