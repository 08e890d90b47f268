"""What a run's log (the Prefect UI's Logs tab) says when a form is refused, or a run waits.

Found by an operator trial (session 19); each filter is installed on Prefect's own loggers
in every flow-run process (tasks/__init__.py):

- `RefusalWithoutTraceback`: Prefect logs an exception with its traceback at each level it
  passes (the task run, the flow run and, for a synchronous flow, the engine once more). For
  a DomainError (bad input, already named by field, problem and what is allowed) that
  buried the one line an operator needs under about 120 lines headed "Engine execution
  exited with unexpected exception", which during an emergency reads like a crash. The
  lines stay, without the traceback, for a DomainError only: any other exception (a bug, a
  lost database) keeps its traceback.
- `ParametersRefusedToRunLog`: a form refused before the flow's body left no reason in the
  run's log at all.
- `WaitIsNotAnError`: every wait of `issue-lifecycle` read "ERROR | Finished in state
  Suspended".
"""

from __future__ import annotations

import logging
import os

from prefect.context import FlowRunContext
from prefect.exceptions import ParameterTypeError

from taskforce.errors import DomainError, problem_text

# The loggers Prefect's engines log a run's exceptions to (and send to the server's UI).
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
# Where Prefect logs a form refused before the flow's body runs: its own engine logger, which
# only the worker's terminal shows (flow_engine.py: "validate prior to context").
ENGINE_LOGGER = "prefect.engine"
PARAMETERS_REFUSED = "Validation of flow parameters failed"
ENGINE_EXITED = "Engine execution exited with unexpected exception"


def _message(record: logging.LogRecord) -> str | None:
    # A filter runs where logging does not catch errors: a record whose arguments do not fit
    # its format ("%s %s" with one) must still be logged as logging would, not raise.
    try:
        return record.getMessage()
    except Exception:
        return None


class RefusalWithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ParameterTypeError):
            # A form refused before the run's body: `ParametersRefusedToRunLog` has said why,
            # by field, on one line; the engine then logged its traceback (an operator trial).
            record.msg = "Refused before the run started: the form (the line before says why)"
            record.args, record.exc_info, record.exc_text = (), None, None
            return True
        if isinstance(exc, DomainError) and (message := _message(record)) is not None:
            if message.startswith(ENGINE_EXITED):
                # The run's last line: a refusal, not the crash these words suggest.
                message = f"Refused: {type(exc).__name__}: {exc}"
            elif str(exc) not in message:
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
        # Prefect logs it as ("%s %s", "Validation of flow parameters failed …", error).
        first = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if not (flow_run_id and isinstance(first, str) and first.startswith(PARAMETERS_REFUSED)):
            return True
        if FlowRunContext.get() is not None:
            # A subflow's parameters, refused inside its parent's run: the parent's own log
            # has the subflow's failure; PREFECT__FLOW_RUN_ID names the parent, not it.
            return True
        message = _message(record) or first
        # "…failed with error: Flow run received invalid parameters:\n - form.x: …"
        problems = [
            _with_format(line.strip().removeprefix("- "))
            for line in message.split("\n")[1:]
            if line.strip()
        ]
        logging.getLogger("prefect.flow_runs").error(
            "The form was refused before the run started: %s. Start a new run with the "
            "form corrected; nothing was written.",
            "; ".join(problems) or message,
            # The run's name is not known yet here; Prefect's console format needs one.
            extra={"flow_run_id": flow_run_id, "flow_run_name": flow_run_id},
        )
        return True


class WaitIsNotAnError(logging.Filter):
    """Prefect logs an async flow's every end but Completed at ERROR, so each wait of
    `issue-lifecycle` for its next form read "ERROR | Finished in state Suspended": the
    run is waiting, as it should, and says so at INFO."""

    WAITING = ("Finished in state Suspended", "Finished in state Paused")

    def filter(self, record: logging.LogRecord) -> bool:
        # Prefect's line is an f-string logged without arguments.
        if (
            record.levelno == logging.ERROR
            and isinstance(record.msg, str)
            and record.msg.startswith(self.WAITING)
        ):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


def _with_format(problem: str) -> str:
    # Prefect's line is "form.responsible: Value error, shares …": pydantic's words dropped.
    field, colon, message = problem.partition(": ")
    if colon:
        problem = field + colon + problem_text({"msg": message})
    # pydantic says what it could not read ("invalid date separator, expected `-`", even for
    # 2027年1月29日), not what it takes.
    if "should be a valid date" in problem:
        return f"{problem} (allowed: YYYY-MM-DD, e.g. 2027-01-29)"
    return problem


def tidy_run_logs() -> None:
    """Install the filters, once per process."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        for kind in (RefusalWithoutTraceback, WaitIsNotAnError):
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())
    engine = logging.getLogger(ENGINE_LOGGER)
    for kind in (ParametersRefusedToRunLog, RefusalWithoutTraceback):
        if not any(isinstance(f, kind) for f in engine.filters):
            engine.addFilter(kind())
