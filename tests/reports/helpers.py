"""Reading every byte a report wrote, XLSX included (its XML parts, unzipped)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def all_text(paths) -> dict[str, str]:
    out = {}
    for path in map(Path, paths):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                out[str(path)] = "\n".join(z.read(n).decode("utf-8") for n in z.namelist())
        else:
            out[str(path)] = path.read_text(encoding="utf-8")
    return out
