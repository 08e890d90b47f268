"""Profile one hot path on a copy of a generated dataset, with pyinstrument (the `bench`
extra; cProfile when it is not installed).

    python -m benchmarks.profile sweep|trail|report-issue [--scale F] [--db sqlite|postgresql]
                                 [--profiler pyinstrument|cprofile] [--top N]

`report-issue` profiles the loop step's first call in a fresh process (what a deployment
run's process pays) and prints the time of a second, warm call beside it.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

from benchmarks import databases
from benchmarks.dataset import NOW, Scale, ensure
from taskforce.clock import ManualClock
from taskforce.context import Context
from taskforce.db import unit_of_work
from taskforce.policy import load_policy

WHAT = ("sweep", "trail", "report-issue")


def _worker_address(engine) -> str:
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return url.database
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _hot_path(what: str, engine, ctx: Context, workers: int = 0) -> Callable[[], object]:
    if what == "sweep":
        from taskforce.loop.sweep import dispatch_sweep

        def sweep():
            with unit_of_work(engine) as session:
                return dispatch_sweep(session, ctx, board=False).summary()

        return sweep
    if what == "trail":
        from taskforce.trail.parallel import check_range
        from taskforce.trail.service import verify_sequential

        def trail():
            if workers == 1:
                with Session(engine) as session:
                    return verify_sequential(session)
            # What each worker process of the parallel verification runs, here over the
            # whole chain in this process, so the profile sees inside it.
            return check_range(engine.dialect.name, _worker_address(engine), 0, None, 50_000)

        return trail

    # Imported here, outside the profile: a deployment run's process imports the flow
    # module before the run starts.
    from taskforce.loop.forms import ReportIssueForm
    from tasks.loop import report_issue as step  # as the flow calls it

    def report_issue():
        form = ReportIssueForm(
            title=f"性能剖析上报问题 {uuid.uuid4().hex[:8]}", reporting_unit="finance"
        )
        return step.fn(form, "profile", f"profile:{uuid.uuid4()}").issue_number

    return report_issue


def _profiled(fn: Callable[[], object], profiler: str, top: int) -> tuple[float, object, str]:
    if profiler == "pyinstrument":
        from pyinstrument import Profiler

        p = Profiler(interval=0.001)
        started = time.perf_counter()
        with p:
            outcome = fn()
        took = time.perf_counter() - started
        return took, outcome, p.output_text(unicode=True, color=False, show_all=False)
    p = cProfile.Profile()
    started = time.perf_counter()
    p.enable()
    outcome = fn()
    p.disable()
    took = time.perf_counter() - started
    out = io.StringIO()
    stats = pstats.Stats(p, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return took, outcome, out.getvalue()


def _default_profiler() -> str:
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return "cprofile"
    return "pyinstrument"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=WHAT)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--profiler", choices=["pyinstrument", "cprofile"])
    parser.add_argument("--top", type=int, default=25, help="rows of a cProfile listing")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="trail: 1 profiles the sequential walk; otherwise one worker's chunk check",
    )
    args = parser.parse_args(argv)
    profiler = args.profiler or _default_profiler()
    scale = Scale(args.scale, args.seed)
    pristine, _counts, _ = ensure(args.db, scale)
    copy = f"profile-{scale.key}-{os.getpid()}"
    url, engine = databases.working_copy(args.db, pristine, copy)
    os.environ["TASKFORCE_DATABASE_URL"] = url  # the report-issue step opens its own engine
    ctx = Context(policy=load_policy(), clock=ManualClock(NOW))
    try:
        fn = _hot_path(args.what, engine, ctx, args.workers)
        took, outcome, listing = _profiled(fn, profiler, args.top)
        print(f"{args.what}: {took:.2f} s under {profiler} -> {outcome}")
        if args.what in ("sweep", "report-issue"):
            started = time.perf_counter()
            again = fn()
            print(f"second run (no profiler): {time.perf_counter() - started:.2f} s -> {again}")
        print(listing)
    finally:
        engine.dispose()
        databases.drop(args.db, copy)


if __name__ == "__main__":
    main()
