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
import os

from taskforce.errors import DomainError

# The loggers Prefect's engines log a run's exceptions to (and send to the server's UI).
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
# Where Prefect logs a form refused before the flow's body runs: its own engine logger, which
# only the worker's terminal shows (flow_engine.py: "validate prior to context").
ENGINE_LOGGER = "prefect.engine"
PARAMETERS_REFUSED = "Validation of flow parameters failed"


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


class ParametersRefusedToRunLog(logging.Filter):
    """A form Prefect refused before the run's body (a check its schema cannot make: shares
    adding up to 100, a date the server took as text) left a red "Failed" in the UI and no
    reason in the run's log (an operator trial, session 19). This logs the reason once more
    to the run's own log, which the UI shows: one line, each problem by its field."""

    def filter(self, record: logging.LogRecord) -> bool:
        flow_run_id = os.environ.get("PREFECT__FLOW_RUN_ID")  # set by the worker / runner
        message = record.getMessage()
        if flow_run_id and message.startswith(PARAMETERS_REFUSED):
            # "…failed with error: Flow run received invalid parameters:\n - form.x: …"
            problems = [
                line.strip().removeprefix("- ") for line in message.split("\n")[1:] if line.strip()
            ]
            logging.getLogger("prefect.flow_runs").error(
                "The form was refused before the run started: %s. Start a new run with the "
                "form corrected; nothing was written.",
                "; ".join(problems) or message,
                extra={"flow_run_id": flow_run_id},
            )
        return True


def quiet_refusals() -> None:
    """Install the filters, once per process."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RefusalWithoutTraceback) for f in logger.filters):
            logger.addFilter(RefusalWithoutTraceback())
    engine = logging.getLogger(ENGINE_LOGGER)
    if not any(isinstance(f, ParametersRefusedToRunLog) for f in engine.filters):
        engine.addFilter(ParametersRefusedToRunLog())
