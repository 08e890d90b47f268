"""The folder a run writes its reports to, made and checked before the run changes anything.

An operator trial: with an unwritable folder a review committed its improvement issues and
a budget audit its trail entry, then failed writing the files with a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from taskforce.errors import DomainError

_ALLOWED = "a folder this user may write in, or one that can be made"


def writable_folder(path: Path, *, field: str) -> Path:
    """`path`, made if missing; refused naming `field` (where the path came from) when it
    cannot be made or written in."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DomainError(
            f"cannot make the folder {str(path)!r} ({exc.strerror or exc})",
            field=field,
            allowed=_ALLOWED,
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DomainError(f"cannot write in {str(path)!r}", field=field, allowed=_ALLOWED)
    return path
