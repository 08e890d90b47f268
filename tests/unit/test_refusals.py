"""tasks.refusals: a DomainError is logged without its traceback, anything else keeps it."""

import logging
import sys

import pytest

from taskforce.errors import DomainError, NotFound
from tasks.refusals import RefusalWithoutTraceback


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


def test_a_line_that_names_no_error_is_given_the_refusal():
    exc = DomainError("no active member 'W9'", field="actor")
    record = _record(exc, "Engine execution exited with unexpected exception")
    RefusalWithoutTraceback().filter(record)
    assert record.getMessage() == (
        "Engine execution exited with unexpected exception: "
        "DomainError: actor: no active member 'W9'"
    )


@pytest.mark.parametrize("exc", [RuntimeError("database gone"), KeyError("x"), ValueError("v")])
def test_any_other_exception_keeps_its_traceback(exc):
    record = _record(exc, "Encountered exception during execution: %r", exc)
    assert RefusalWithoutTraceback().filter(record)
    assert record.exc_info is not None
    assert "Traceback" in logging.Formatter().format(record)
