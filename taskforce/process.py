"""Process-wide settings for a process that imports a lot and then does little: a flow run.

A flow-run process imports Prefect, pydantic, SQLAlchemy and the project before the run's
first line: about 240,000 objects the garbage collector tracks and that live until the
process ends. The collector's first full collection afterwards walks all of them — 0.17 s on
this project's 2-core machine, landing in whichever statement happened to allocate (it was
most of report-issue's added time as a PostgreSQL deployment run, issue 9). Freezing them
moves them out of the collector's sight; collections then walk only what the run creates.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_frozen = False


def freeze_startup_objects(*, collect_first: bool = False) -> bool:
    """Freeze every object alive now, once per process. Returns True if this call froze.

    `collect_first` frees the garbage of start-up before (frozen garbage is never freed): a
    server's one-off cost; a flow run skips it, since that collection is what it avoids.

    Once, not on every call: in a process that runs many flows (the demo, the tests), objects
    frozen later would include the previous runs' garbage, which would then never be freed.
    """
    global _frozen
    if _frozen:
        return False
    if collect_first:
        gc.collect()
    gc.freeze()
    _frozen = True
    return True


_pause_lock = threading.Lock()
_pauses = 0
_was_enabled = True


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bounded bulk job (a sweep, a review).

    Why: such a job builds hundreds of thousands of rows, dicts and tuples that live until it
    ends; each time enough of them accumulate the collector walks everything tracked, again
    and again (a sixth of a sweep's time at a tenth of the benchmark's scale). They are freed
    by reference counting when the job drops them; cycles made meanwhile wait for the
    collector's next run after the job. Nested and concurrent uses share one pause.
    """
    global _pauses, _was_enabled
    with _pause_lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
