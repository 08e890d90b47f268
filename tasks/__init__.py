"""Thin Prefect tasks over the core services.

Importing the package, as every flow module does, loads every model and configures the
ORM once (taskforce.models), as each flow-run process starts rather than inside its first
step, and has a refused form's DomainError logged without its traceback (tasks.refusals).
"""

import taskforce.models  # noqa: F401
from tasks.refusals import quiet_refusals

quiet_refusals()
