"""Thin Prefect tasks over the core services.

Importing the package loads every model and configures the ORM once (taskforce.models),
as each flow-run process starts rather than inside its first step.
"""

import taskforce.models  # noqa: F401
