"""Process-wide settings for a process that imports a lot and then does little: a flow run.

A flow-run process imports Prefect, pydantic, SQLAlchemy and the project before the run's
first line: about 240,000 objects the garbage collector tracks and that live until the
process ends. The collector's first full collection afterwards walks all of them — 0.17 s on
this project's 2-core machine, landing in whichever statement happened to allocate (it was
most of report-issue's added time as a PostgreSQL deployment run, issue 9). Freezing them
moves them out of the collector's sight; collections then walk only what the run creates.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_objects() -> bool:
    """Freeze every object alive now, once per process. Returns True if this call froze.

    Once, not on every call: in a process that runs many flows (the demo, the tests), objects
    frozen later would include the previous runs' garbage, which would then never be freed.
    """
    global _frozen
    if _frozen:
        return False
    gc.freeze()
    _frozen = True
    return True
