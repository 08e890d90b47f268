"""Run one report-issue flow in a child process and SIGKILL it at a chosen point.

Used by test_crash.py: `python crash_step.py before-commit|after-commit|none KEY`.
The kill is installed from outside the code under test, with SQLAlchemy
session events, so production code carries no test hooks.
"""

import asyncio
import os
import signal
import sys

from sqlalchemy import event
from sqlalchemy.orm import Session

from flows.loop import report_issue_flow
from taskforce.loop.forms import ReportIssueForm

point, key = sys.argv[1], sys.argv[2]


def _kill(*_args):
    os.kill(os.getpid(), signal.SIGKILL)


if point == "before-commit":
    event.listen(Session, "before_commit", _kill)
elif point == "after-commit":
    event.listen(Session, "after_commit", _kill)

result = asyncio.run(
    report_issue_flow(
        ReportIssueForm(title="崩溃测试问题", reporting_unit="tax"), idempotency_key=key
    )
)
print(result.model_dump_json())
