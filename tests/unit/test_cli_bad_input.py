"""What an operator typing a wrong thing at the command line gets: one line that names the
field and what is allowed, a non-zero exit, no traceback, and nothing written.

Each case runs the real CLI in a process of its own (as the operator does)."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from taskforce.budget.models import FiscalYear
from taskforce.clock import ManualClock
from taskforce.context import Context
from taskforce.db import make_engine, unit_of_work
from taskforce.errors import DomainError
from taskforce.loop.models import Issue
from taskforce.migrate import upgrade
from taskforce.org.service import sync_organisation
from taskforce.policy.loader import load_org
from taskforce.registers.models import Review
from taskforce.reviews.service import resolve_period
from taskforce.trail.models import TrailEntry
from tests.conftest import ROOT


def _cli(*args: str, url: str, tmp_path, reports=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "taskforce.cli", *args],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "TASKFORCE_DATABASE_URL": url,
            "TASKFORCE_REPORTS_DIR": str(reports or tmp_path / "reports"),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )


def _database(path, *, organisation: bool = True) -> tuple[str, object]:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    if organisation:
        with unit_of_work(engine) as session:
            sync_organisation(session, load_org())
    return url, engine


def _count(engine, model) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model))


def _no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]


def test_an_unreachable_database_is_one_line_with_the_password_hidden(tmp_path):
    url = "postgresql://taskforce:hunter2@127.0.0.1:1/taskforce"  # nothing listens on port 1
    done = _cli("summary", url=url, tmp_path=tmp_path)
    assert done.returncode == 2
    _no_traceback(done)
    assert "cannot reach the database at postgresql://taskforce:***@127.0.0.1:1/taskforce" in (
        done.stderr
    )
    assert "hunter2" not in done.stdout + done.stderr


def test_a_url_of_no_known_database_names_what_is_allowed(tmp_path):
    done = _cli("summary", url="mysqll://x/y", tmp_path=tmp_path)
    assert done.returncode == 2
    _no_traceback(done)
    assert "TASKFORCE_DATABASE_URL is not a database URL" in done.stderr
    assert "postgresql://user:password@host:port/database" in done.stderr


@pytest.mark.parametrize(
    ("total", "says"),
    [
        ("abc", "is not an amount of money"),
        ("1.000.000", "is not an amount of money"),
        ("NaN", "is not a finite amount"),
        ("0", "greater than 0"),
        ("86000000.001", "more than two decimal places"),
        ("-5", "greater than 0"),  # typer took it for an option: "No such option: -5"
        ("1e7", "'1e7' is not an amount as typed"),
        ("1,0,0", "'1,0,0' is not an amount as typed"),
    ],
)
def test_set_year_refuses_an_amount_that_is_not_one_and_writes_nothing(tmp_path, total, says):
    url, engine = _database(tmp_path / "tf.db")
    done = _cli(
        "budget", "set-year", "2027", total, "--decided-by", "L1", "--actor", "E1",
        url=url, tmp_path=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    _no_traceback(done)
    out = " ".join(done.stderr.split())  # rich wraps long lines
    assert "refused: total:" in out and says in out
    assert "Decimal(" not in out  # the value as typed, not Python's repr
    assert _count(engine, FiscalYear) == 0


def test_the_budget_commands_refuse_an_actor_the_office_does_not_know(tmp_path):
    """`--actor` defaulted to the login name ("root"), which went on the decision trail as
    the one who recorded the year or imported the payments. It is now asked for, and must
    be a member of config/org.yaml; a refusal writes nothing."""
    url, engine = _database(tmp_path / "tf.db")
    year = ("budget", "set-year", "2027", "86000000.00", "--decided-by", "L1")
    done = _cli(*year, url=url, tmp_path=tmp_path)
    assert done.returncode == 2 and "--actor" in done.stderr  # asked for, not guessed
    done = _cli(*year, "--actor", "root", url=url, tmp_path=tmp_path)
    assert done.returncode == 2
    _no_traceback(done)
    out = " ".join(done.stderr.split())
    assert "refused: actor: no active member 'root'" in out
    # Each code with its name: the operator who knows 周晓东, not "E1", finds the code here.
    assert "E1 周晓东" in out
    assert _count(engine, FiscalYear) == 0
    export = tmp_path / "export.csv"
    export.write_text("voucher_no,date,line_code,kind,amount,payee,description,external_ref\n")
    done = _cli("budget", "import", str(export), "--actor", "nobody", url=url, tmp_path=tmp_path)
    assert done.returncode == 2 and "no active member 'nobody'" in " ".join(done.stderr.split())
    assert _count(engine, TrailEntry) == 0
    done = _cli(*year, "--actor", "E1", url=url, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _count(engine, FiscalYear) == 1


def test_files_that_are_not_ledgers_are_refused_by_name(tmp_path):
    url, engine = _database(tmp_path / "tf.db")
    not_excel = tmp_path / "export.xlsx"
    not_excel.write_text("not a workbook")
    empty = tmp_path / "ledger.csv"
    empty.write_text("")

    done = _cli("budget", "import", str(not_excel), "--actor", "C1", url=url, tmp_path=tmp_path)
    assert done.returncode == 2
    _no_traceback(done)
    assert "not a readable Excel workbook" in " ".join(done.stderr.split())

    for path, says in ((not_excel, "is not a readable Excel workbook"), (empty, "is empty")):
        done = _cli("import-issues", str(path), url=url, tmp_path=tmp_path)
        assert done.returncode == 2
        _no_traceback(done)
        assert f"refused: path: {path.name} {says}" in done.stderr
        assert done.stdout == ""  # no progress bar drawn into a pipe
    assert _count(engine, Issue) == 0


def test_a_pattern_in_an_error_is_shown_whole(tmp_path):
    """Rich took '[a-z0-9]' in a message for markup and printed '^*$'; a value in brackets,
    as an operator may type it, is shown as typed."""
    url, _ = _database(tmp_path / "tf.db")
    ledger = tmp_path / "ledger.csv"
    ledger.write_text("title,reporting_unit,description\nA pump failed,[a-z0-9],desc\n")
    done = _cli("import-issues", str(ledger), url=url, tmp_path=tmp_path)
    assert done.returncode == 1
    assert "unknown unit '[a-z0-9]'" in " ".join(done.stdout.split())


def test_import_issues_names_the_rows_it_linked_as_duplicates(tmp_path):
    """An operator trial: "2 linked as duplicates" said neither which rows nor to what."""
    url, _ = _database(tmp_path / "tf.db")
    ledger = tmp_path / "ledger.csv"
    ledger.write_text(
        "title,reporting_unit,description\n"
        "Permit queue too long,finance,a\nRoad repairs slow,finance,b\n"
        "Permit queue too long,finance,c\n"
    )
    done = _cli("import-issues", str(ledger), url=url, tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert "2 imported, 1 linked as duplicates" in out
    assert re.search(r"row 4: linked to TF-\d{4}-00001 as a duplicate report \(no new issue\)", out)
    assert "row 2:" not in out and "row 3:" not in out


def test_a_review_of_a_period_not_ended_is_refused_and_opens_no_issue(tmp_path):
    url, engine = _database(tmp_path / "tf.db")
    done = _cli("review", "run", "monthly", "--period", "2030-01", url=url, tmp_path=tmp_path)
    assert done.returncode == 2
    _no_traceback(done)
    out = " ".join(done.stderr.split())
    assert "period: 2030-01 has not ended yet" in out and "a finished monthly period" in out
    assert _count(engine, Issue) == 0 and _count(engine, Review) == 0


def test_a_review_of_a_period_before_the_programme_is_refused_and_opens_no_issue(tmp_path):
    """1999-01 had no targets to miss; its review opened two improvement issues."""
    url, engine = _database(tmp_path / "tf.db")
    done = _cli("review", "run", "monthly", "--period", "1999-01", url=url, tmp_path=tmp_path)
    assert done.returncode == 2
    _no_traceback(done)
    out = " ".join(done.stderr.split())
    assert "period: 1999-01 ended before the programme started on 2026-01-01" in out
    assert "a monthly period from 2026-01 on" in out
    assert _count(engine, Issue) == 0 and _count(engine, Review) == 0


@pytest.mark.parametrize(
    ("kind", "label", "refused"),
    [
        ("monthly", "2025-12", True),
        ("monthly", "2026-01", False),  # the programme's first month
        ("quarterly", "2025-Q4", True),
        ("quarterly", "2026-Q1", False),
        ("weekly", "2025-W52", True),  # ends Sunday 2025-12-28
        ("weekly", "2026-W01", False),  # Monday 2025-12-29 to Sunday 2026-01-04
        ("semiannual", "2025-H2", True),
    ],
)
def test_the_programme_start_bounds_the_periods_reviewed(policy, kind, label, refused):
    ctx = Context(policy=policy, clock=ManualClock(dt.datetime(2026, 11, 27, tzinfo=dt.UTC)))
    if not refused:
        assert resolve_period(kind, label, ctx).label == label
        return
    with pytest.raises(DomainError, match="ended before the programme started") as error:
        resolve_period(kind, label, ctx)
    assert error.value.field == "period"


def test_a_named_period_may_be_reviewed_from_the_instant_it_ends(policy):
    """November 2026 ends at midnight Shanghai time, 2026-11-30 16:00 UTC."""
    end = dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC)
    before = Context(policy=policy, clock=ManualClock(end - dt.timedelta(microseconds=1)))
    with pytest.raises(DomainError, match="2026-11 has not ended yet") as refused:
        resolve_period("monthly", "2026-11", before)
    assert refused.value.field == "period"
    assert "the last complete one, 2026-10" in str(refused.value)
    at_end = Context(policy=policy, clock=ManualClock(end))
    assert resolve_period("monthly", "2026-11", at_end).label == "2026-11"
    # A scheduled run (no period named) reviews the last complete one, as before.
    assert resolve_period("monthly", None, before).label == "2026-10"


def test_a_database_without_its_organisation_says_to_run_init(tmp_path):
    url, _ = _database(tmp_path / "tf.db", organisation=False)
    hint = "the database has no organisation yet: run `taskforce init`"

    done = _cli("review", "run", "monthly", "--period", "2026-10", url=url, tmp_path=tmp_path)
    assert done.returncode == 2
    _no_traceback(done)
    assert hint in " ".join(done.stderr.split())

    ledger = tmp_path / "ledger.csv"
    ledger.write_text("title,reporting_unit,description\nA pump failed,finance,desc\n")
    done = _cli("import-issues", str(ledger), url=url, tmp_path=tmp_path)
    assert done.returncode == 1
    assert hint in " ".join(done.stdout.split())


def test_init_says_what_it_loaded_in_words(tmp_path):
    """Not a Python dict (`loaded {'units': 12, ...}`: an operator trial)."""
    done = _cli("init", url=f"sqlite:///{tmp_path / 'init.db'}", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())  # rich wraps long lines
    org = load_org()
    counts = f"{len(org.units)} units, {len(org.groups)} groups, {len(org.members)} members"
    assert f"loaded {counts}" in out and "{" not in out.split("loaded")[1][:40]


def test_a_folder_reports_cannot_be_written_in_is_refused_before_anything_is_recorded(tmp_path):
    """An operator trial: `budget audit --out /proc/nope` committed its trail entry, then
    failed with a traceback (exit 1, which means "found a problem"); a review with
    TASKFORCE_REPORTS_DIR there committed its duplicate-linked improvement reports first."""
    url, engine = _database(tmp_path / "tf.db")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    trail = _count(engine, TrailEntry)
    for args, field in [
        (("budget", "audit", "--week", "2026-W10", "--out", str(blocked / "out")), "out"),
        (("budget", "performance", "--half", "2026-H1", "--out", str(blocked)), "out"),
    ]:
        done = _cli(*args, url=url, tmp_path=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        _no_traceback(done)
        # One line however long (a re-trial: off a terminal it was cut at 80 columns).
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        said = done.stderr.strip()
        assert f"refused: {field}: cannot make the folder" in said and str(blocked) in said
        assert "allowed: a folder this user may write in" in said
    review = _cli(
        "review",
        "run",
        "monthly",
        "--period",
        "2026-10",
        url=url,
        tmp_path=tmp_path,
        reports=blocked,
    )
    assert review.returncode == 2, review.stdout + review.stderr
    _no_traceback(review)
    assert review.stderr.strip().startswith("refused: TASKFORCE_REPORTS_DIR: cannot make")
    assert len(review.stderr.strip().splitlines()) == 1, review.stderr
    assert _count(engine, TrailEntry) == trail and _count(engine, Review) == 0
    assert _count(engine, Issue) == 0


def test_a_budget_audit_of_a_database_without_its_organisation_is_refused(tmp_path):
    """It found nothing and passed: exit 0, "未发现问题：台账合规" (an operator trial)."""
    url, engine = _database(tmp_path / "tf.db", organisation=False)
    for args in (("budget", "audit", "--week", "2026-W10"), ("budget", "performance")):
        done = _cli(*args, url=url, tmp_path=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "the database has no organisation yet: run `taskforce init`" in " ".join(
            done.stderr.split()
        )
    assert _count(engine, TrailEntry) == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("review", "run", "monthly", "--period", ""), "period: '' is not a monthly period"),
        (("budget", "audit", "--week", ""), "week: '' is not an ISO week"),
        (("budget", "performance", "--half", ""), "half: '' is not a half-year"),
    ],
)
def test_an_empty_period_typed_is_refused_not_taken_as_the_last_one(tmp_path, args, says):
    """An operator trial: `--period ''` built the last complete period's review, as if no
    period had been given (a variable left empty in a script)."""
    url, engine = _database(tmp_path / "tf.db")
    done = _cli(*args, url=url, tmp_path=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    _no_traceback(done)
    assert says in " ".join(done.stderr.split())
    assert _count(engine, TrailEntry) == 0 and _count(engine, Review) == 0


def test_the_performance_audit_says_what_it_found_before_where_its_files_are(tmp_path):
    """A re-trial: `budget performance` printed its files' paths only."""
    url, _ = _database(tmp_path / "tf.db")
    year = ("budget", "set-year", "2026", "86000000.00", "--decided-by", "L1", "--actor", "E1")
    assert _cli(*year, url=url, tmp_path=tmp_path).returncode == 0
    done = _cli("budget", "performance", "--half", "2026-H1", url=url, tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first == (
        "2026-H1: 0 lines; executed 0.00 % (CNY 0.00 of CNY 0.00 approved by 2026-06-30)"
    ), first
