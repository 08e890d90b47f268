"""Open an emergency, hand it to the gateway's BackgroundDispatch, and SIGKILL the process
around its first page: `python crash_dispatch.py DB_URL before-page|after-page KEY`.

Used by test_page_first.py. The emergency is committed first (the gateway's intake);
then the kill is installed from outside the code under test, with SQLAlchemy session
events, so production code carries no test hooks: `before-page` dies as the page's
transaction commits (nothing of the page written), `after-page` just after it (the page
written, not sent). The dispatcher is never reached.
"""

import os
import signal
import sys

from sqlalchemy import event
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.db import get_engine, unit_of_work
from taskforce.emergency import service
from taskforce.emergency.dispatch import BackgroundDispatch
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.models import Level

db_url, point, key = sys.argv[1], sys.argv[2], sys.argv[3]
engine = get_engine(db_url)
ctx = Context.default()


def _kill(*_args):
    os.kill(os.getpid(), signal.SIGKILL)


def never_called(public_id: str) -> str:
    raise AssertionError("the process should have died before starting a flow run")


with unit_of_work(engine) as session:
    opened = service.open_emergency(
        session,
        ctx,
        EmergencyIntake(level=Level.I, title="崩溃测试应急", working_group="wg:data"),
        source="monitoring",
        dedup_key=key,
        actor="gateway:monitoring",
    )
print(opened.emergency_id, flush=True)
event.listen(Session, "before_commit" if point == "before-page" else "after_commit", _kill)
background = BackgroundDispatch(engine, lambda: ctx, never_called)
background.submit(opened.emergency_id, actor="gateway:monitoring")
background.close(timeout=120)
sys.exit(3)  # not reached: the page's commit kills the process
