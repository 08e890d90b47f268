"""What every figure gets and gives back: the run's bench, and result rows for the table."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from taskforce.context import Context


@dataclass
class Bench:
    """One run: the working copy of the dataset, the scene's clock, a scratch folder."""

    backend: str
    url: str
    engine: Engine
    scale: float
    counts: dict[str, int]
    ctx: Context
    workdir: Path
    status: Callable[[str], None] = print  # one line of what is being measured now


@dataclass
class Result:
    figure: str
    ours: float
    baseline: float | None
    unit: str = "s"
    goal: str = ""
    met: bool | None = None  # None: no goal, or not judged at this scale
    ratio: float | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            self.ratio = self.ours / self.baseline


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    gc.collect()
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def median_time(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    times = [timed(fn)[0] for _ in range(repeat)]
    return statistics.median(times), times
