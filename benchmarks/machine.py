"""The machine a table was measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
from pathlib import Path


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        return None
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(postgres_url: str | None = None) -> dict[str, str]:
    info = {
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": f"{_memory_gib()} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    try:
        import prefect

        info["prefect"] = prefect.__version__
    except ImportError:
        pass
    if postgres_url:
        try:
            import psycopg

            with psycopg.connect(postgres_url, connect_timeout=3) as conn:
                info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        except Exception as exc:  # the table still prints without it
            info["postgresql"] = f"unavailable ({type(exc).__name__})"
    return info
