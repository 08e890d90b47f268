"""A refused form is a line in its run's log, not three tracebacks.

Prefect logs an exception with its traceback at each level it passes: the task run, the
flow run and, for a synchronous flow, the engine once more. For a DomainError (bad input,
already named by field, problem and what is allowed) that buried the one line an operator
needs under about 120 lines headed "Engine execution exited with unexpected exception",
which during an emergency reads like a crash (an operator trial, session 19). The filter
keeps each line and drops the traceback for a DomainError only: any other exception, a bug
or a lost database, keeps its traceback.
"""

from __future__ import annotations

import logging

from taskforce.errors import DomainError

# The loggers Prefect's engines log a run's exceptions to (and send to the server's UI).
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


class RefusalWithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DomainError):
            message = record.getMessage()
            if str(exc) not in message:  # "Engine execution exited with …" names no error
                message = f"{message}: {type(exc).__name__}: {exc}"
            record.msg, record.args = message, ()
            record.exc_info, record.exc_text = None, None
        return True


def quiet_refusals() -> None:
    """Install the filter on Prefect's run loggers, once per process."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RefusalWithoutTraceback) for f in logger.filters):
            logger.addFilter(RefusalWithoutTraceback())
