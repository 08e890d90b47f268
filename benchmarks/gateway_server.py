"""The gateway as the intake figure serves it: `uvicorn --factory benchmarks.gateway_server:app`.

The production app (`taskforce.gateway.asgi`) with two differences, both for measuring:
the dispatcher answers at once instead of calling Prefect (dispatch runs in a background
thread after the 202 either way, so it is not on the measured path), and one more route,
`POST /bench/empty`, answers 202 with no work: the baseline, served by the same process
with the same server settings. Settings come from the environment (uvicorn imports this
in each worker process): TASKFORCE_DATABASE_URL and TASKFORCE_WEBHOOK_SECRET_MONITORING.

With TASKFORCE_BENCH_GATEWAY_GC_LOG=<file>, each garbage collection's generation, pause
and time is written there as JSON when the process exits. With
TASKFORCE_BENCH_GATEWAY_PROFILE=<directory>, every thread of the server process runs
under cProfile and writes `<thread name>-<pid>.prof` there when the process exits (read
them with `python -m pstats` or `python -m benchmarks.gateway_server --report <directory>`):
the event loop (HTTP, HMAC, JSON, validation) and the group-commit writer separately.
`python -m benchmarks.gateway_server --pyspy-report <file>` reads what py-spy sampled
during the burst instead (benchmarks/figures/gateway.py, TASKFORCE_BENCH_GATEWAY_PYSPY).
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import pstats
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Response
from starlette.types import ASGIApp

from taskforce.gateway.app import create_app, default_context, freeze_startup_objects

PROFILE_ENV = "TASKFORCE_BENCH_GATEWAY_PROFILE"
# `process` or `thread`: where the intake is written and paged (default: as the production
# gateway, config/taskforce.yaml gateway.intake_process), to compare the two in one run.
INTAKE_ENV = "TASKFORCE_BENCH_GATEWAY_INTAKE"
_PYSPY_ENV = "TASKFORCE_BENCH_GATEWAY_PYSPY"  # read by benchmarks/figures/gateway.py
GC_LOG_ENV = "TASKFORCE_BENCH_GATEWAY_GC_LOG"


def instant_dispatcher(public_id: str) -> str:
    """A Prefect that answers at once: the intake figure measures intake, not flow starts."""
    return f"bench-run-{public_id}"


def thread_cpu() -> list[tuple[str, int, float]]:
    """(name, native id, CPU seconds so far) of each live thread of this process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = []
    for thread in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        out.append((thread.name, thread.native_id, (int(fields[11]) + int(fields[12])) / tick))
    return out


def _profile_every_thread(directory: Path) -> Callable[[], None]:
    """cProfile in this thread now and in every thread started later; returns the dump."""
    directory.mkdir(parents=True, exist_ok=True)
    profiles: list[tuple[str, cProfile.Profile]] = []
    lock = threading.Lock()

    def start(name: str) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append((name, profile))
        profile.enable()

    def in_new_thread(_frame, _event, _arg):
        # threading.setprofile's hook runs once in each new thread: swap in cProfile there.
        sys.setprofile(None)
        start(threading.current_thread().name)

    def dump() -> None:
        with lock:
            for n, (name, profile) in enumerate(profiles):
                profile.disable()
                profile.dump_stats(directory / f"{name}-{os.getpid()}-{n}.prof")

    threading.setprofile(in_new_thread)
    start("event-loop")
    return dump


def _dump_after_shutdown(app: ASGIApp, dump: Callable[[], None]) -> ASGIApp:
    """The app, dumping the profiles once its lifespan has shut down (uvicorn re-raises the
    SIGTERM it caught after shutdown, so atexit handlers never run)."""

    async def wrapped(scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)

        async def send_then_dump(message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                dump()
            await send(message)

        return await app(scope, receive, send_then_dump)

    return wrapped


def _log_gc_pauses(path: Path) -> Callable[[], None]:
    """Record each garbage collection's generation and pause; returns the writer of the log."""
    # (generation, pause, when, objects frozen at the time)
    pauses: list[tuple[int, float, float, int]] = []
    started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            now = time.perf_counter()
            pauses.append((info["generation"], now - started.pop(), now, gc.get_freeze_count()))

    gc.callbacks.append(on_gc)

    def dump() -> None:
        path.write_text(json.dumps(pauses))

    return dump


def intake_in_process() -> bool:
    """As the production gateway (gateway.intake_process), unless INTAKE_ENV says."""
    chosen = os.environ.get(INTAKE_ENV) or (
        "process" if default_context().policy.gateway.intake_process else "thread"
    )
    if chosen not in ("process", "thread"):
        raise SystemExit(f"{INTAKE_ENV} must be process or thread, not {chosen!r}")
    return chosen == "process"


def app() -> FastAPI | ASGIApp:
    dumps: list[Callable[[], None]] = []
    if os.environ.get(PROFILE_ENV):
        dumps.append(_profile_every_thread(Path(os.environ[PROFILE_ENV])))
    if os.environ.get(GC_LOG_ENV):
        dumps.append(_log_gc_pauses(Path(os.environ[GC_LOG_ENV])))
    gateway = create_app(
        dispatcher=instant_dispatcher,
        background_dispatch=True,
        intake_process=intake_in_process(),
    )

    @gateway.post("/bench/empty", status_code=202, include_in_schema=False)
    async def empty() -> Response:
        return Response(status_code=202)

    @gateway.get("/bench/threads", include_in_schema=False)
    async def threads() -> list[tuple[str, int, float]]:
        return thread_cpu()

    freeze_startup_objects()  # as create_production_app does
    if not dumps:
        return gateway
    return _dump_after_shutdown(gateway, lambda: [dump() for dump in dumps])


def report(directory: Path, top: int = 25) -> None:
    """The profiles of one run, summed per thread kind, by own time."""
    kinds: dict[str, list[Path]] = {}
    for path in sorted(directory.glob("*.prof")):
        kinds.setdefault(path.name.rsplit("-", 2)[0], []).append(path)
    for kind, paths in kinds.items():
        stats = pstats.Stats(*map(str, paths))
        print(f"===== {kind}: {stats.total_tt:.2f} s in {len(paths)} profile(s)")
        stats.sort_stats("tottime").print_stats(top)


def pyspy_report(path: Path, top: int = 25) -> None:
    """py-spy's collapsed stacks of one burst (TASKFORCE_BENCH_GATEWAY_PYSPY): the samples of
    each thread, then, for each thread with at least 5 % of them, the functions by the share
    of the thread's samples they were on the stack (inclusive) and on top of it (own)."""
    per_thread: dict[str, Counter] = {}
    own: dict[str, Counter] = {}
    samples: Counter = Counter()
    lines = path.read_text(encoding="utf-8").splitlines()
    # With --subprocesses each stack starts with its process and its parents ("process 7:…;
    # process 9:…;thread (…): …"). The gateway's intake child (gateway.intake_process) has
    # threads named as the server's (MainThread): a process started by multiprocessing has
    # its threads shown as "child process: <name>".
    children = {_process_of(line) for line in lines if "BaseProcess._bootstrap" in line}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        process = _process_of(stack)
        thread, *frames = stack.split(";")
        # "thread (123): gateway-group-commit" -> the name; "process 1:..." lines come first
        # with --subprocesses, the thread after them.
        while frames and not thread.startswith("thread "):
            thread, *frames = frames
        name = thread.split(": ", 1)[-1].rstrip('"')
        name = "anyio workers" if name.startswith("AnyIO") else name
        if process in children:
            name = f"child process: {name}"
        n = int(count)
        samples[name] += n
        labels = [_frame_label(f) for f in frames]
        per_thread.setdefault(name, Counter()).update({label: n for label in set(labels)})
        if labels:
            own.setdefault(name, Counter())[labels[-1]] += n
    total = sum(samples.values())
    if not total:
        raise SystemExit(f"no samples in {path}: was it written by a run with {_PYSPY_ENV} set?")
    # py-spy without --idle drops the samples of sleeping threads (waiting for I/O, a lock, or
    # the interpreter lock); with --gil it keeps only the lock's holder.
    print(f"{total:,} samples (threads not sleeping), by thread:")
    for name, n in samples.most_common():
        print(f"  {n / total:6.1%}  {name}")
    for name, n in samples.most_common():
        if n < total * 0.05:
            break
        print(f"\n===== {name}: {n:,} samples; inclusive / own share of the thread's samples")
        for label, k in per_thread[name].most_common(top):
            print(f"  {k / n:6.1%} {own[name][label] / n:6.1%}  {label}")


def _process_of(stack: str) -> str | None:
    """'process 7:"…";process 9:"…";thread (…): …' -> 'process 9' (None without one)."""
    process = None
    for part in stack.split(";"):
        if not part.startswith("process "):
            break
        process = part.split(":", 1)[0]
    return process


def _frame_label(frame: str) -> str:
    """'send (uvicorn/protocols/http/httptools_impl.py:567)' -> 'send (httptools_impl.py)'."""
    function, _, where = frame.partition(" (")
    return f"{function} ({where.rsplit('/', 1)[-1].split(':', 1)[0]})" if where else function


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:
        report(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 25)
    elif sys.argv[1:2] == ["--pyspy-report"]:
        if len(sys.argv) < 3 or not Path(sys.argv[2]).is_file():
            sys.exit(
                f"--pyspy-report needs the file py-spy wrote ({_PYSPY_ENV}=<file> on a "
                "gateway run); not found: " + (sys.argv[2] if len(sys.argv) > 2 else "(none)")
            )
        pyspy_report(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 25)
