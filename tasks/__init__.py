"""Thin Prefect tasks over the core services.

Importing the package, as every flow module does, loads every model and configures the
ORM once (taskforce.models), as each flow-run process starts rather than inside its first
step, and tidies what a refused form or a wait writes to the run's log (tasks.refusals).
"""

import taskforce.models  # noqa: F401
from tasks.refusals import tidy_run_logs

tidy_run_logs()
