"""What flow and task runs log, captured in the test's own process (the run's Logs tab)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


@contextmanager
def run_records(level: int = logging.INFO) -> Iterator[list[logging.LogRecord]]:
    """The records flow and task runs log at `level` or above inside the block. The suite's
    own level is WARNING (tests/conftest.py): lowered for the block, then restored."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        yield records
    finally:
        for logger, previous in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(previous)
