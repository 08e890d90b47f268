"""A review's XLSX workbook — its KPIs, and the period's task and budget ledgers (任务台账,
资金台账) — and the export of the whole ledgers.

The review's workbook is a meeting document: its ledgers list the period's records only
(content.task_ledger / budget_ledger with the period; the rule is written in each sheet's
first row). `export_ledger` writes a whole ledger, every record, on demand.

`WorkbookJob` writes a review's workbooks in a process of its own, started before the KPIs
are read: reading and writing the ledgers (seconds at scale) then runs beside the KPI reads,
the charts and the HTML on a second core, and the KPI sheet, known last, is written last.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import resource
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, create_engine, event

from taskforce.errors import DomainError
from taskforce.kpi.compute import BY_CODE, KpiSet
from taskforce.policy.schema import Classification, Progress
from taskforce.reports.i18n import translator, zone_words
from taskforce.reports.workbook import LaterSheet, SheetView, write_workbooks
from taskforce.reviews import content
from taskforce.reviews.periods import Period


@contextlib.contextmanager
def readers(engine: Engine) -> Iterator[Engine]:
    """An engine for reads that may run beside other reads.

    Our SQLite engines begin every transaction IMMEDIATE (the write lock, taken up front so
    a writer waits instead of failing), which would run parallel reads one after another
    and hold writers off meanwhile. Reads need no lock: in WAL mode each SELECT of an
    autocommit connection sees one consistent snapshot. PostgreSQL: the engine itself.
    """
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield engine
        return
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # autocommit: no BEGIN, no lock
        dbapi_connection.execute("PRAGMA query_only=ON")

    try:
        yield engine
    finally:
        engine.dispose()


def task_sheet(frame: pd.DataFrame, locale: str, note: str | None = None) -> SheetView:
    """The task ledger (content.task_ledger) under the locale's headers and owner names."""
    t = translator(locale)
    frame = _coded_values_in_words(
        frame, t, {"level": "task_level", "colour": "colour", "done": "bool"}
    )
    names = [c for c in frame.columns if c not in ("owner_zh", "owner_en")]
    owner = "owner_zh" if locale == "zh-CN" else "owner_en"
    names.insert(4, owner)
    return SheetView.of(
        frame, {name: t("col.owner" if name == owner else f"col.{name}") for name in names}, note
    )


def budget_sheet(frame: pd.DataFrame, locale: str, note: str | None = None) -> SheetView:
    """The budget ledger (content.budget_ledger) under the locale's headers."""
    t = translator(locale)
    frame = _coded_values_in_words(frame, t, {"kind": "ledger_kind"})
    return SheetView.of(frame, {name: t(f"col.{name}") for name in frame.columns}, note)


def _coded_values_in_words(frame: pd.DataFrame, t, columns: dict[str, str]) -> pd.DataFrame:
    """Codes (goal, green, disbursement, True) as the locale's words (目标, 绿, 支出, 是):
    the workbook is read in a meeting, not by a program. A few distinct values per column,
    so one lookup each and a vectorised map; the caller's frame (shared by both locales)
    is left as it is."""
    words = {}
    for column, prefix in columns.items():
        if column in frame.columns:
            codes = frame[column]
            names = {v: t(f"{prefix}.{_code(v)}") for v in codes.dropna().unique()}
            words[column] = codes.map(names)
    return frame.assign(**words) if words else frame


def _code(value) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return str(getattr(value, "value", value))


def kpi_frame(current: KpiSet, locale: str) -> pd.DataFrame:
    """The workbook's KPI sheet: each KPI with its target, status, previous value, change.

    As the report shows them, still numbers: a rate in percent ("问题解决率 %": 44.4, not
    0.444), a count whole, a multiple to two decimals, the rest to one (reports/render.py:
    fmt_kpi); the other units are in the KPIs' names."""
    t = translator(locale)
    rows = []
    for k in current.kpis.values():
        unit = BY_CODE[k.code].unit
        rows.append(
            {
                t("kpi"): t(f"kpi.{k.code}") + (" %" if unit == "ratio" else ""),
                t("value"): _shown(k.value, unit),
                # Whether the target is a floor or a ceiling (≥ 80 % resolved, ≤ 1.8 × the
                # planned duration): the number alone does not say which side is met.
                t("target_rule"): t(f"target_rule.{k.target_rule}") if k.target_rule else None,
                t("target"): _shown(k.target, unit),
                t("status"): t(f"status.{k.status}") if k.status else None,
                t("previous"): _shown(k.previous, unit),
                t("change"): (
                    t(f"change.{k.change}") + (t(f"trend.{k.trend}") if k.trend else "")
                    if k.change
                    else None
                ),
                t("basis"): k.basis,
            }
        )
    # Counts stay whole numbers beside a missing one or a rate in the same column (a float
    # column would show 27.0: an operator trial read "2.0" warnings): the columns of values
    # are kept as Python numbers, each as its unit shows it.
    frame = pd.DataFrame(rows, dtype=object)
    return frame.astype({t("basis"): "Int64"})


def _shown(value: float | None, unit: str) -> float | int | None:
    if value is None or value != value:  # missing (None or NaN)
        return None
    if unit == "ratio":
        return round(value * 100, 1)
    if unit == "count":
        return round(float(value))  # an int (numpy floats too, through float)
    return round(value, 2 if unit == "times" else 1)


def read_period_ledgers(
    conn,
    period: Period,
    audience: Classification,
    timezone: str,
    today: dt.date,
    progress: Progress,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The period's task nodes (due or completed in it, with today's colours) and ledger
    entries (dated in it)."""
    return (
        content.task_ledger(
            conn, audience, period, today=today, progress=progress, timezone=timezone
        ),
        content.budget_ledger(conn, period, audience),
    )


def review_sheets(
    tasks: pd.DataFrame,
    budget: pd.DataFrame,
    kpis: pd.DataFrame | LaterSheet,
    period: Period,
    timezone: str,
    locale: str,
    audience: Classification,
) -> dict:
    """The sheets of a review's workbook in one locale. The ledgers are views of the same
    frames in every locale (only the headers and the owner's name column differ), so
    writing the locales' workbooks together converts each ledger once."""
    t = translator(locale)
    span = {
        "period": period.label,
        "first": period.first_day.isoformat(),
        "last": period.last_day.isoformat(),
        "zone": zone_words(t, timezone),
    }
    # The reader of a sheet sees no report header: say what it lists and whose view it is.
    cleared = " " + t("sheet.audience_note", audience=t(f"audience.{audience.value}"))

    def note(key: str, frame: pd.DataFrame) -> str:
        return t(key, **span) + (" " + t("sheet.empty") if frame.empty else "") + cleared

    def kpi_sheet(frame: pd.DataFrame) -> SheetView:
        return SheetView.of(frame, note=t("sheet.kpis_note", **span) + cleared)

    return {
        t("sheet.kpis"): LaterSheet(lambda: kpi_sheet(kpis.get()))
        if isinstance(kpis, LaterSheet)
        else kpi_sheet(kpis),
        t("sheet.tasks"): task_sheet(tasks, locale, note=note("sheet.tasks_note", tasks)),
        t("sheet.budget"): budget_sheet(budget, locale, note=note("sheet.budget_note", budget)),
    }


def workbook_path(out_dir: Path, stem: str, locale: str, audience: Classification) -> Path:
    return Path(out_dir) / f"{stem}.{locale}.{audience.value}.xlsx"


def export_ledger(
    engine: Engine,
    ctx,
    out: Path,
    *,
    ledger: str = "tasks",
    audience: Classification | str | None = None,
    locale: str | None = None,
) -> int:
    """The whole task (or budget) ledger, every record the audience may read, as one XLSX
    workbook: what a review's workbook held before it listed only its period's items. A
    ledger longer than a sheet continues on "<name> (2)", … Returns the number of rows."""
    if ledger not in ("tasks", "budget"):
        raise DomainError(f"unknown ledger {ledger!r}", field="ledger", allowed="tasks, budget")
    _check_workbook_path(Path(out))
    aud = Classification(audience or ctx.policy.review.default_audience)
    locale = locale or ctx.policy.locale
    t = translator(locale)
    with readers(engine) as reader, reader.connect() as conn:
        if ledger == "tasks":
            frame = content.task_ledger(conn, aud, today=ctx.today(), progress=ctx.policy.progress)
            sheet = task_sheet(frame, locale)
        else:
            frame = content.budget_ledger(conn, None, aud)
            sheet = budget_sheet(frame, locale)
    write_workbooks({Path(out): {t(f"sheet.{ledger}"): sheet}}, timezone=ctx.policy.timezone)
    return len(frame)


def _check_workbook_path(out: Path) -> None:
    """Refused before any read: a folder, or a name that is not .xlsx (the file would be an
    XLSX workbook whatever it is called, and a .csv name would mislead whoever opens it)."""
    allowed = "a file path ending in .xlsx, in an existing folder"
    if out.is_dir():
        raise DomainError(f"{str(out)!r} is a folder", field="out", allowed=allowed)
    if out.suffix.lower() != ".xlsx":
        raise DomainError(f"{str(out)!r} is not an .xlsx file name", field="out", allowed=allowed)
    if not out.parent.is_dir():
        raise DomainError(f"no folder {str(out.parent)!r}", field="out", allowed=allowed)


# --- the workbooks in a process of their own ---------------------------------------------


@dataclass(frozen=True)
class _Order:
    url: str
    period: Period
    audience: Classification
    timezone: str
    today: dt.date  # the colours' day
    progress: Progress  # the colour rule's thresholds
    paths: dict[str, Path]  # locale -> workbook


class WorkbookJob:
    """A review's workbooks, written by a child process while the parent reads the KPIs.

    The child reads the period's ledgers and writes every sheet but the KPIs', then waits
    for the KPI sheets (`finish`). Each workbook is written beside its place and renamed
    into it when whole, so a failed or cancelled review leaves no half-written file.
    """

    def __init__(self, order: _Order) -> None:
        start = multiprocessing.get_context(_start_method())
        self._pipe, child_end = start.Pipe()
        self._process = start.Process(
            target=_child, args=(order, child_end), name="review-workbooks", daemon=True
        )
        self._process.start()
        child_end.close()
        self.paths = order.paths
        self.report: dict = {}

    @classmethod
    def start(
        cls,
        engine: Engine,
        ctx,
        period: Period,
        audience: Classification,
        paths: dict[str, Path],
    ) -> WorkbookJob | None:
        """The job, or None where a child cannot open the database (in-memory SQLite)."""
        url = engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return None
        address = url.render_as_string(hide_password=False)
        policy = ctx.policy
        return cls(
            _Order(address, period, audience, policy.timezone, ctx.today(), policy.progress, paths)
        )

    def send(self, kpis: dict[str, pd.DataFrame]) -> None:
        """Hand over the KPI sheets (by locale): the child completes the workbooks."""
        with contextlib.suppress(BrokenPipeError, EOFError, OSError):
            self._pipe.send(kpis)  # else the child is gone: finish() reports why

    def finish(self) -> dict:
        """Wait for the workbooks; the child's report (its peak RSS, the ledgers' rows).
        A failure in the child is raised here with its traceback."""
        try:
            report = self._pipe.recv()
        except EOFError:
            report = {"error": "the workbook process ended without a report"}
        finally:
            self._process.join()
            self._pipe.close()
        if "error" in report:
            raise RuntimeError(f"writing the review's workbooks failed:\n{report['error']}")
        self.report = report
        return report

    def cancel(self) -> None:
        """Stop the child, leaving no workbook (the review failed before its KPIs)."""
        self._process.terminate()
        self._process.join()
        self._pipe.close()
        _remove(_partial(path) for path in self.paths.values())


def _start_method() -> str:
    """fork where it is safe, spawn elsewhere. A forked child starts at once with every module
    already imported (a spawned one imports pandas, SQLAlchemy and ours again: seconds of
    CPU); but a fork copies the locks other threads may hold, so only a process running one
    thread forks."""
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


class _Cancelled(Exception):
    pass


def _child(order: _Order, pipe) -> None:
    from taskforce.db import make_engine

    partial = {locale: _partial(path) for locale, path in order.paths.items()}
    try:
        engine = make_engine(order.url)
        try:
            with readers(engine) as reader, reader.connect() as conn:
                tasks, budget = read_period_ledgers(
                    conn, order.period, order.audience, order.timezone, order.today, order.progress
                )
        finally:
            engine.dispose()
        received: dict = {}

        def kpis_of(locale: str):
            def get() -> pd.DataFrame:
                if not received:
                    message = pipe.recv()
                    if message is None:
                        raise _Cancelled
                    received.update(message)
                return received[locale]

            return LaterSheet(get)

        books = {
            partial[locale]: review_sheets(
                tasks, budget, kpis_of(locale), order.period, order.timezone, locale, order.audience
            )
            for locale in order.paths
        }
        write_workbooks(books, timezone=order.timezone)
        for locale, path in order.paths.items():
            os.replace(partial[locale], path)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        pipe.send(
            {
                "rss_mib": _peak_rss_mib(),
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "tasks": len(tasks),
                "budget": len(budget),
            }
        )
    except _Cancelled:
        _remove(partial.values())
    except BaseException:
        _remove(partial.values())
        with contextlib.suppress(BrokenPipeError, OSError):
            pipe.send({"error": traceback.format_exc()})
    finally:
        pipe.close()


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _peak_rss_mib() -> float | None:
    """This process's peak RSS (VmHWM), for the benchmark's account of memory."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _remove(paths) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
