"""Profile one figure's hot path on a copy of a generated dataset (cProfile; pyinstrument and
py-spy are not installed here).

    python -m benchmarks.profile sweep|trail [--scale F] [--db sqlite|postgresql] [--top N]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

from sqlalchemy.orm import Session

from benchmarks import databases
from benchmarks.dataset import NOW, Scale, ensure
from taskforce.clock import ManualClock
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.loop.sweep import dispatch_sweep
from taskforce.policy import load_policy
from taskforce.trail.service import verify


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["sweep", "trail"])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    scale = Scale(args.scale, args.seed)
    pristine, _counts, _ = ensure(args.db, scale)
    _url, engine = databases.working_copy(args.db, pristine, f"profile-{scale.key}")
    ctx = Context(policy=load_policy(), clock=ManualClock(NOW))

    def hot_path():
        if args.what == "sweep":
            with unit_of_work(engine) as session:
                return dispatch_sweep(session, ctx, board=False).summary()
        with Session(engine) as session:
            return verify(session)

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    outcome = hot_path()
    profiler.disable()
    print(f"{args.what}: {time.perf_counter() - started:.2f} s under cProfile -> {outcome}")
    if args.what == "sweep":
        started = time.perf_counter()
        again = hot_path()
        print(f"second run (no profiler): {time.perf_counter() - started:.2f} s -> {again}")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    engine.dispose()


if __name__ == "__main__":
    main()
