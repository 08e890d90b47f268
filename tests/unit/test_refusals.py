"""tasks.refusals: a DomainError is logged without its traceback, anything else keeps it."""

import logging
import sys

import pytest

from taskforce.errors import DomainError, NotFound
from tasks.refusals import (
    ParametersRefusedToRunLog,
    RefusalWithoutTraceback,
    WaitIsNotAnError,
)


def _record(exc: BaseException, msg: str, *args) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize("exc", [DomainError("bad", field="f"), NotFound("none", field="g")])
def test_a_refusal_keeps_its_line_and_loses_its_traceback(exc):
    record = _record(exc, "Encountered exception during execution: %r", exc)
    assert RefusalWithoutTraceback().filter(record)
    assert record.exc_info is None and record.exc_text is None
    assert record.getMessage() == f"Encountered exception during execution: {exc!r}"
    assert "Traceback" not in logging.Formatter().format(record)


def test_the_engines_last_line_says_refused_not_crashed():
    exc = DomainError("no active member 'W9'", field="actor")
    record = _record(exc, "Engine execution exited with unexpected exception")
    RefusalWithoutTraceback().filter(record)
    assert record.getMessage() == ("Refused: DomainError: actor: no active member 'W9'")


def test_a_line_that_names_no_error_is_given_the_refusal():
    exc = NotFound("no issue TF-2026-00009", field="issue_number")
    record = _record(exc, "Task run failed")
    RefusalWithoutTraceback().filter(record)
    assert record.getMessage() == (
        "Task run failed: NotFound: issue_number: no issue TF-2026-00009"
    )


@pytest.mark.parametrize("exc", [RuntimeError("database gone"), KeyError("x"), ValueError("v")])
def test_any_other_exception_keeps_its_traceback(exc):
    record = _record(exc, "Encountered exception during execution: %r", exc)
    assert RefusalWithoutTraceback().filter(record)
    assert record.exc_info is not None
    assert "Traceback" in logging.Formatter().format(record)


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def run_log():
    captured = _Captured()
    logger = logging.getLogger("prefect.flow_runs")
    logger.addHandler(captured)
    yield captured.records
    logger.removeHandler(captured)


def _engine_record(problems: list[str]) -> logging.LogRecord:
    detail = "Flow run received invalid parameters:\n - " + "\n - ".join(problems)
    return logging.LogRecord(
        "prefect.engine",
        logging.ERROR,
        __file__,
        1,
        "%s %s",
        ("Validation of flow parameters failed with error:", detail),
        None,
    )


def test_parameters_refused_are_told_to_the_runs_own_log(run_log, monkeypatch):
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "6f1c1d5e-0000-4000-8000-000000000001")
    record = _engine_record(
        [
            "form.deadline: Input should be a valid date or datetime, invalid date separator, "
            "expected `-`",
            "form.title: too short",
        ]
    )
    assert ParametersRefusedToRunLog().filter(record)  # the engine's own line is kept
    (told,) = run_log
    assert told.flow_run_id == "6f1c1d5e-0000-4000-8000-000000000001"
    assert told.getMessage().startswith(
        "The form was refused before the run started: "
        "form.deadline: Input should be a valid date or datetime, invalid date separator, "
        "expected `-` (allowed: YYYY-MM-DD, e.g. 2027-01-29); form.title: too short. "
    )


def test_outside_a_flow_run_process_or_for_other_lines_nothing_is_told(run_log, monkeypatch):
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID", raising=False)
    ParametersRefusedToRunLog().filter(_engine_record(["form.title: too short"]))
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "6f1c1d5e-0000-4000-8000-000000000001")
    other = logging.LogRecord("prefect.engine", logging.INFO, __file__, 1, "Loaded", (), None)
    ParametersRefusedToRunLog().filter(other)
    assert run_log == []


@pytest.mark.parametrize(
    ("message", "level"),
    [
        ("Finished in state Suspended('Run suspended.', type=PAUSED)", logging.INFO),
        ("Finished in state Paused('Run paused.')", logging.INFO),
        ("Finished in state Failed('Flow run encountered an exception.')", logging.ERROR),
    ],
)
def test_a_wait_is_not_logged_as_an_error(message, level):
    record = logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, message, (), None)
    assert WaitIsNotAnError().filter(record)
    assert (record.levelno, record.levelname) == (level, logging.getLevelName(level))


def test_the_refusal_told_to_the_run_log_formats_as_prefects_console_does(run_log, monkeypatch):
    """Prefect's console format for a flow run's line needs its name: without one, each
    refusal printed ~90 lines of "--- Logging error ---" on the worker's terminal."""
    from prefect.logging.formatters import PrefectFormatter

    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "6f1c1d5e-0000-4000-8000-000000000001")
    ParametersRefusedToRunLog().filter(_engine_record(["form.title: too short"]))
    (told,) = run_log
    formatter = PrefectFormatter(
        format="%(message)s",
        flow_run_fmt="%(levelname)s | Flow run %(flow_run_name)r - %(message)s",
    )
    assert formatter.format(told).startswith(
        "ERROR | Flow run '6f1c1d5e-0000-4000-8000-000000000001' - The form was refused"
    )


@pytest.mark.parametrize("kind", [RefusalWithoutTraceback, ParametersRefusedToRunLog])
def test_a_record_whose_arguments_do_not_fit_is_passed_on_not_raised(kind, monkeypatch):
    """Logging reports such a record when it formats it; a filter must not raise instead."""
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "6f1c1d5e-0000-4000-8000-000000000001")
    record = _record(DomainError("bad"), "%s %s", "only one")
    record.args = ("Validation of flow parameters failed with error:",)  # one for "%s %s"
    record.msg = "%s %s"
    assert kind().filter(record)


def test_a_form_refused_before_the_run_loses_the_engines_traceback():
    """An operator trial: after the one-line reason (ParametersRefusedToRunLog), the engine
    logged "Engine execution exited with unexpected exception" and a ParameterTypeError's
    traceback."""
    from prefect.exceptions import ParameterTypeError

    exc = ParameterTypeError("Flow run received invalid parameters:\n - form.due_date: …")
    record = _record(exc, "Engine execution exited with unexpected exception")
    assert RefusalWithoutTraceback().filter(record)
    assert record.exc_info is None
    assert "Traceback" not in logging.Formatter().format(record)
    assert record.getMessage().startswith("Refused before the run started")
