"""One module per process (README). Importing any of them imports `tasks`, which tidies
what a refused form writes to the run's log (tasks/refusals.py): a flow module that did not
(`raise-warning`, `handle-warning`) logged three tracebacks for a refused form."""

import tasks  # noqa: F401
