"""The embedded default target: ``tfoutbox://`` appends each message as one JSON line.

So the demo and the tests need no outside service. The file is
$TASKFORCE_OUTBOX_FILE (default var/outbox.jsonl) for ``tfoutbox://``, or an
absolute path after the placeholder host ``_``: ``tfoutbox://_/srv/outbox.jsonl``
(any other host is refused, so a typo never writes somewhere unexpected). Lines never interleave: one lock per file
within the process, an advisory file lock across processes, and each line is a
single append-mode write.

Which audience a line is for comes from `sending` (a context variable our
deliverer sets; Apprise copies the caller's context into its worker threads).
Used from the plain `apprise` CLI, the line lists the URL's tags instead.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import fcntl
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from apprise.decorators import notify

from taskforce.policy.loader import PROJECT_ROOT

SCHEME = "tfoutbox"
OUTBOX_FILE_ENV = "TASKFORCE_OUTBOX_FILE"
DEFAULT_OUTBOX_FILE = PROJECT_ROOT / "var" / "outbox.jsonl"


@dataclass(frozen=True)
class Sending:
    """What the deliverer knows about the message being sent right now."""

    audience: str
    key: str
    at: dt.datetime


sending: contextvars.ContextVar[Sending | None] = contextvars.ContextVar(
    "taskforce_sending", default=None
)

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def outbox_path(url_path: str | None = None) -> Path:
    if url_path and url_path not in ("", "/"):
        return Path(url_path)
    return Path(os.environ.get(OUTBOX_FILE_ENV) or DEFAULT_OUTBOX_FILE)


class OutboxUrlError(ValueError):
    pass


def _lock_for(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def append_line(path: Path, record: dict) -> None:
    """Append one JSON line, whole, even with many threads and processes writing."""
    line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_for(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(line)
            while view:  # os.write may write less than asked; finish the line under the lock
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)  # closing releases the flock


@notify(on=SCHEME, name="Task force local outbox (JSON lines)")
def _send_to_local_outbox(body, title, notify_type, meta, *args, **kwargs) -> bool:
    current = sending.get()
    if current is not None:
        audience, key, at = current.audience, current.key, current.at
    else:
        audience = ",".join(sorted(str(t) for t in meta.get("tag", ())))
        key, at = None, dt.datetime.now(dt.UTC)
    host = meta.get("host")
    if host not in (None, "", "_"):
        raise OutboxUrlError(
            f"{SCHEME}://{host}…: write {SCHEME}:// or {SCHEME}://_/absolute/path.jsonl"
        )
    append_line(
        outbox_path(meta.get("fullpath")),
        {
            "audience": audience,
            "key": key,
            "title": title,
            "body": body,
            "type": str(getattr(notify_type, "value", notify_type)),
            "time": at.astimezone(dt.UTC).isoformat(),
        },
    )
    return True
