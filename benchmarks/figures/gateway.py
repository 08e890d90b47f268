"""Gateway intake: accepted webhooks per second with 32 concurrent clients, and p99 time to 202.

The gateway runs as in production: uvicorn in its own process on a free 127.0.0.1 port,
the production app (`benchmarks/gateway_server.py`), on the run's copy of the dataset. The
baseline is `POST /bench/empty` of the same app in the same server process: a route that
answers 202 and does nothing. The client (`benchmarks/gateway_load.py`) is a separate
process sending pre-signed native webhooks over 32 keep-alive connections; the same
client, the same bodies and the same headers drive both.

What "accepted" covers: the request is authenticated (HMAC over timestamp and body),
validated, and the emergency (or, for a repeat, its repeat count, event and trail entry) is
committed before the 202. Starting the emergency-response flow run is not on the request
path in production (a background thread does it after the 202; see
`taskforce/emergency/dispatch.py: BackgroundDispatch`), and here that thread's dispatcher
answers at once instead of calling Prefect: the emergency_path figure measures flow starts.

Afterwards the database must account for every 202: one emergency per distinct dedup key
sent, each 202's emergency id among them, and `repeats` summing to the duplicates sent.
A mismatch fails the figure.

Then the figure waits for the dispatch thread to page the whole burst and reports, in its
notes, when the last first page was delivered (how long on-call waits in an alert storm),
and on PostgreSQL the database server's CPU per request (it shares the two cores).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text

from benchmarks.core import Bench, Result
from benchmarks.gateway_server import intake_in_process
from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from taskforce.policy import load_policy

NAME = "gateway"
ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 32
DUPLICATE_SHARE = 0.2  # of requests repeat a dedup key sent earlier in the run
GOAL_PER_SECOND = 1000
GOAL_P99_MS = 50
GOAL_RATIO = 0.5
SECRET = "bench-gateway-secret"
SOURCE = "monitoring"
WORKERS_ENV = "TASKFORCE_BENCH_GATEWAY_WORKERS"
# A file: py-spy samples the server's threads during the burst (not the empty endpoint's run)
# and writes collapsed stacks there; `python -m benchmarks.gateway_server --pyspy-report <file>`
# sums them per thread. Sampling: it sees into C calls and costs the threads nothing between
# samples, unlike cProfile (TASKFORCE_BENCH_GATEWAY_PROFILE); sleeping threads are not sampled.
PYSPY_ENV = "TASKFORCE_BENCH_GATEWAY_PYSPY"
# With TASKFORCE_BENCH_GATEWAY_PYSPY_GIL=1, only samples of the thread holding the interpreter
# lock: how the one lock of the server process is shared out among its threads.
PYSPY_GIL_ENV = "TASKFORCE_BENCH_GATEWAY_PYSPY_GIL"
PYSPY_RATE = 250  # samples per second and thread (the burst runs about a fifth slower)
# uvicorn's --loop and --http (default `auto`: uvloop and httptools when installed), e.g.
# asyncio and h11 to compare the server stacks in one environment.
LOOP_ENV, HTTP_ENV = "TASKFORCE_BENCH_GATEWAY_LOOP", "TASKFORCE_BENCH_GATEWAY_HTTP"


def _requests(count: int, run_id: str, port: int, seed: int) -> tuple[list[str], list[str]]:
    """`count` signed native triggers (raw HTTP, latin-1 text) and the dedup key of each."""
    rng = random.Random(seed)
    now = str(int(time.time()))
    keys: list[str] = []
    raw: list[str] = []
    level_of: dict[str, str] = {}
    for i in range(count):
        if keys and rng.random() < DUPLICATE_SHARE:
            key = rng.choice(keys)
        else:
            key = f"bench-gw-{run_id}-{i}"
        # A duplicate is the same alert delivered again, at its level: a more severe level
        # on an open key raises the emergency (service._raise_level), another path.
        level = level_of.setdefault(key, rng.choice(["I", "II", "III"]))
        body = json.dumps(
            {
                "dedup_key": key,
                "level": level,
                "title": f"基准测试告警 {key}",
                "description": "disk usage above 95 % on db-3",
                "details": {"host": f"db-{i % 7}", "value": 95 + i % 5},
            },
            ensure_ascii=False,
        ).encode()
        head = (
            f"POST /v1/emergencies/{SOURCE} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"{TIMESTAMP_HEADER}: {now}\r\n"
            f"{SIGNATURE_HEADER}: {sign(SECRET, now, body)}\r\n\r\n"
        ).encode()
        raw.append((head + body).decode("latin-1"))
        keys.append(key)
    return raw, keys


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_loop_and_http() -> str:
    """The server's stack: as set, or what uvicorn's `auto` picks here (uvloop/httptools
    when installed)."""
    import importlib.util

    loop = os.environ.get(LOOP_ENV, "auto")
    http = os.environ.get(HTTP_ENV, "auto")
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"loop {loop}, http {http}"


class _Server:
    def __init__(self, bench: Bench, workers: int, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "TASKFORCE_DATABASE_URL": bench.url,
            "TASKFORCE_WEBHOOK_SECRET_MONITORING": SECRET,
            # The project first; anything already on the path stays (e.g. a directory
            # with uvloop/httptools, to compare server stacks without installing them).
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "benchmarks.gateway_server:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(workers),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--backlog",
                    "2048",
                    "--timeout-keep-alive",
                    str(load_policy().gateway.keep_alive_seconds),
                    "--loop",
                    os.environ.get(LOOP_ENV, "auto"),
                    "--http",
                    os.environ.get(HTTP_ENV, "auto"),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the gateway exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # a real process starting up: wall-clock polling is the point
        self.stop()
        raise RuntimeError(f"the gateway did not start: {log.read_text()[-2000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's processes so far (uvicorn and its workers)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended while we looked
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == self.popen.pid or ppid == self.popen.pid:
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    def threads(self) -> dict[tuple[str, int], float]:
        """CPU seconds so far per (thread name, native id) of the server (one worker only)."""
        try:
            listed = httpx.get(self.url + "/bench/threads", timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return {(name, tid): cpu for name, tid, cpu in listed}

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)  # uvicorn drains the dispatch queue
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


class _Sampler:
    """py-spy recording the server's processes from now until `stop` (PYSPY_ENV). Without
    --idle it keeps the samples of threads that are not sleeping: running, or (with --gil)
    holding the interpreter lock; a thread waiting for the lock sleeps and is not counted."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        out.unlink(missing_ok=True)  # an earlier run's file must not pass for this one's
        self.log = out.with_name(out.name + ".log")
        self._log = self.log.open("wb")
        self.popen = subprocess.Popen(
            [
                *_pyspy(),
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--threads",
                "--nonblocking",  # py-spy's default pauses the process at every sample
                "--rate",
                str(PYSPY_RATE),
                "--format",
                "raw",
                "--output",
                str(out),
                *(["--gil"] if os.environ.get(PYSPY_GIL_ENV) == "1" else []),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        time.sleep(1.0)  # py-spy attaching to a live process: no signal to wait on but time
        if self.popen.poll() is not None:
            self._log.close()
            raise RuntimeError(f"py-spy did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            self.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        finally:
            self._log.close()
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote nothing: {self.log.read_text()[-2000:]}")


def _pyspy() -> list[str]:
    """py-spy beside this interpreter (the `bench` extra), else on the PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return [str(beside)]
    import shutil

    found = shutil.which("py-spy")
    if found is None:
        raise RuntimeError(
            f"{PYSPY_ENV} is set but py-spy is not installed: pip install -e '.[bench]'"
        )
    return [found]


def _drive(bench: Bench, requests: list[str], port: int, tag: str) -> dict:
    spec = bench.workdir / f"gateway-{tag}-in.json"
    out = bench.workdir / f"gateway-{tag}-out.json"
    spec.write_text(
        json.dumps({"port": port, "concurrency": CONCURRENCY, "requests": requests}),
        encoding="utf-8",
    )
    subprocess.run(
        [sys.executable, "-m", "benchmarks.gateway_load", str(spec), str(out)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.read_text(encoding="utf-8"))


def _percentile_ms(latencies: list[float], pct: int) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[pct - 1] * 1000


def _p99_ms(latencies: list[float]) -> float:
    return _percentile_ms(latencies, 99)


def _account(bench: Bench, run_id: str, keys: list[str], results: list) -> tuple[bool, str, dict]:
    """Every 202 in the database, duplicates collapsed exactly."""
    accepted = [
        (k, json.loads(body))
        for k, (status, _t, body) in zip(keys, results, strict=True)
        if status == 202
    ]
    failed = len(keys) - len(accepted)
    distinct = {k for k, _ in accepted}
    with bench.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT public_id, dedup_key, repeats, status FROM emergency "
                "WHERE source = :source AND dedup_key LIKE :prefix"
            ),
            {"source": SOURCE, "prefix": f"bench-gw-{run_id}-%"},
        ).all()
    in_db = {r.public_id for r in rows}
    answered_ids = {body["emergency_id"] for _k, body in accepted}
    created = sum(body["created"] for _k, body in accepted)
    repeats = sum(r.repeats for r in rows)
    per_key = {r.dedup_key for r in rows}
    checks = {
        "one emergency per distinct key": len(rows) == len(distinct) and per_key == distinct,
        "every 202's emergency id is in the database": answered_ids == in_db,
        "created answers = emergencies": created == len(rows),
        "repeats = duplicates accepted": repeats == len(accepted) - len(distinct),
        "no request refused": failed == 0,
    }
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    ok = all(checks.values())
    detail = (
        f"{len(keys):,} requests, {len(accepted):,} answered 202, {failed} not; "
        f"{len(distinct):,} distinct dedup keys ({len(accepted) - len(distinct):,} duplicates) → "
        f"{len(rows):,} emergencies, repeats {repeats:,}; "
        + (
            "accounting exact"
            if ok
            else "ACCOUNTING MISMATCH: "
            + ", ".join(name for name, passed in checks.items() if not passed)
        )
    )
    return ok, detail, {"checks": checks, "statuses": statuses}


def _first_pages(bench: Bench, run_id: str, started: dt.datetime, wall: float) -> tuple[str, dict]:
    """How long on-call waited for the burst's first pages: when the last of them was
    delivered, from the first webhook. (Delivery runs after the 202, in the dispatch thread,
    and the server is stopped only once that thread has drained its queue.)"""
    from sqlalchemy import select

    from taskforce.emergency.models import Emergency
    from taskforce.notify.delivery import EMERGENCY_PAGE
    from taskforce.notify.models import OutboxMessage

    with bench.engine.connect() as conn:
        rows = conn.execute(
            select(OutboxMessage.status, OutboxMessage.delivered_at)
            .join(Emergency, Emergency.public_id == OutboxMessage.subject_id)
            .where(
                OutboxMessage.event_kind == EMERGENCY_PAGE,
                OutboxMessage.subject_type == "emergency",
                Emergency.source == SOURCE,
                Emergency.dedup_key.like(f"bench-gw-{run_id}-%"),
            )
        ).all()
    delivered = [r.delivered_at for r in rows if r.delivered_at is not None]
    last = (max(delivered) - started).total_seconds() if delivered else None
    text_ = (
        f"first pages: {len(delivered):,} of {len(rows):,} delivered, the last "
        + (f"{last:.1f} s after the first webhook" if last is not None else "never")
        + f" (the burst's intake took {wall:.1f} s)"
    )
    return text_, {"pages": len(rows), "pages_delivered": len(delivered), "last_page_s": last}


DRAIN_TIMEOUT_SECONDS = 300


def _wait_for_dispatch(bench: Bench, run_id: str) -> bool:
    """Wait until the dispatch thread has dispatched every emergency of the burst and sent
    its first pages (a page that failed waits for its retry and does not count). False
    when that took longer than DRAIN_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if undrained(bench, run_id) == 0:
            return True
        time.sleep(0.5)  # a real server draining its queue: wall-clock polling is the point
    return False


def undrained(bench: Bench, run_id: str) -> int:
    """The run's emergencies not yet dispatched plus their first pages not yet sent."""
    from taskforce.notify.delivery import EMERGENCY_PAGE

    query = text(
        "SELECT (SELECT count(*) FROM emergency WHERE source = :source AND dedup_key LIKE "
        ":prefix AND status = 'pending_dispatch') + (SELECT count(*) FROM outbox_message o "
        "JOIN emergency e ON e.public_id = o.subject_id WHERE o.subject_type = 'emergency' "
        "AND o.event_kind = :page AND o.status = 'pending' AND e.source = :source "
        "AND e.dedup_key LIKE :prefix)"
    )
    params = {"source": SOURCE, "prefix": f"bench-gw-{run_id}-%", "page": EMERGENCY_PAGE}
    with bench.engine.connect() as conn:
        return conn.execute(query, params).scalar_one()


def database_cpu_seconds(backend: str) -> float | None:
    """User + system CPU of this machine's PostgreSQL processes so far (live backends, and the
    exited ones the postmaster has reaped); None on SQLite, which runs inside the gateway.
    Counts every `postgres` process here: meaningful on an otherwise idle server, as the
    figure's own is (its connections come from the gateway's pool)."""
    if backend != "postgresql":
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if (stat.parent / "comm").read_text().strip() != "postgres":
                continue
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def run(bench: Bench) -> list[Result]:
    count = 6000 if bench.scale >= 0.5 else (2000 if bench.scale >= 0.05 else 300)
    workers = int(os.environ.get(WORKERS_ENV, "1"))
    run_id = uuid.uuid4().hex[:8]
    bench.status(f"gateway: starting uvicorn ({workers} worker(s), {_server_loop_and_http()})")
    server = _Server(bench, workers, bench.workdir / "gateway-server.log")
    try:
        warm, _ = _requests(200, f"{run_id}w", server.port, seed=1)
        _drive(bench, warm, server.port, "warm")
        _drive(
            bench,
            [r.replace(f"/v1/emergencies/{SOURCE}", "/bench/empty", 1) for r in warm],
            server.port,
            "warm-empty",
        )
        # The warm-up opened emergencies, and the dispatch thread pages them for seconds
        # after: the baseline is measured once that is done, on a server with nothing else to
        # do (before session 14 it ran beside those pages, and its rate was a third lower).
        bench.status("gateway: waiting for the warm-up's dispatch and first pages")
        if not _wait_for_dispatch(bench, f"{run_id}w"):
            raise RuntimeError(
                f"the warm-up's emergencies were not paged within {DRAIN_TIMEOUT_SECONDS} s"
            )
        requests, keys = _requests(count, run_id, server.port, seed=9)
        bench.status(f"gateway: {count:,} requests to the empty endpoint, {CONCURRENCY} clients")
        cpu_before = server.cpu_seconds()
        empty = _drive(
            bench,
            [r.replace(f"/v1/emergencies/{SOURCE}", "/bench/empty", 1) for r in requests],
            server.port,
            "empty",
        )
        cpu_empty = server.cpu_seconds() - cpu_before
        bench.status(f"gateway: {count:,} signed webhooks, {CONCURRENCY} clients")
        cpu_before, threads_before = server.cpu_seconds(), server.threads()
        database_before = database_cpu_seconds(bench.backend)
        sampler = (
            _Sampler(server.popen.pid, Path(os.environ[PYSPY_ENV]))
            if os.environ.get(PYSPY_ENV)
            else None
        )
        try:
            burst_started = dt.datetime.now(dt.UTC)
            ours = _drive(bench, requests, server.port, "ours")
            # Taken at once: the background dispatch of the last requests is not intake.
            cpu_ours = server.cpu_seconds() - cpu_before
            database_after = database_cpu_seconds(bench.backend)
            threads_after = server.threads()
        finally:
            if sampler is not None:
                sampler.stop()
        cpu_database = None if database_before is None else database_after - database_before
        per_thread: dict[str, float] = {}
        for (name, tid), cpu in threads_after.items():
            # A thread that started during the run counts from zero.
            key = "anyio workers" if name.startswith("AnyIO") else name
            per_thread[key] = per_thread.get(key, 0) + cpu - threads_before.get((name, tid), 0)
        bench.status("gateway: waiting for the burst's dispatch and first pages")
        drained = _wait_for_dispatch(bench, run_id)
    finally:
        server.stop()
    ok, detail, extra = _account(bench, run_id, keys, ours["results"])
    pages, pages_extra = _first_pages(bench, run_id, burst_started, ours["wall"])
    if not drained:
        pages += f"; NOT DRAINED within {DRAIN_TIMEOUT_SECONDS} s"
    extra.update(pages_extra)
    accepted = sum(1 for s, _t, _b in ours["results"] if s == 202)
    rate = accepted / ours["wall"]
    base_rate = sum(1 for s, _t, _b in empty["results"] if s == 202) / empty["wall"]
    p99 = _p99_ms([t for _s, t, _b in ours["results"]])
    base_p99 = _p99_ms([t for _s, t, _b in empty["results"]])
    ratio = rate / base_rate
    setup = (
        f"uvicorn {workers} worker(s), {_server_loop_and_http()}, intake "
        f"{'in a child process' if intake_in_process() else 'in a thread'}, {CONCURRENCY} clients, "
        f"client CPU {ours['cpu']:.1f} s over {ours['wall']:.1f} s wall; "
        f"server CPU per request {cpu_ours / count * 1000:.2f} ms "
        f"(empty endpoint {cpu_empty / count * 1000:.2f} ms); by thread: "
        + ", ".join(
            f"{name} {cpu / count * 1000:.2f} ms"
            for name, cpu in sorted(per_thread.items(), key=lambda kv: -kv[1])
            if cpu > 0
        )
        + (
            ""
            if cpu_database is None
            else f"; PostgreSQL server CPU per request {cpu_database / count * 1000:.2f} ms"
        )
    )
    return [
        Result(
            "gateway intake, accepted webhooks/s (32 clients)",
            rate,
            base_rate,
            unit="/s",
            goal=f"≥ {GOAL_PER_SECOND:,}/s, ratio ≥ {GOAL_RATIO}, every 202 in the database",
            met=rate >= GOAL_PER_SECOND and ratio >= GOAL_RATIO and ok,
            ratio=ratio,
            notes=f"{detail}; {setup}; dispatch after the 202 in a background thread "
            "(a dispatcher that answers at once; flow starts are the emergency_path figure); "
            + pages
            + ("; py-spy sampled the burst (slower by about a fifth)" if sampler else ""),
            extra={
                "accounting_ok": ok,
                **extra,
                "workers": workers,
                "requests": count,
                "server_cpu_ms_per_request": cpu_ours / count * 1000,
                "empty_server_cpu_ms_per_request": cpu_empty / count * 1000,
                "database_cpu_ms_per_request": (
                    None if cpu_database is None else cpu_database / count * 1000
                ),
                "server_cpu_ms_per_request_by_thread": {
                    name: cpu / count * 1000 for name, cpu in per_thread.items()
                },
            },
        ),
        Result(
            "gateway intake, p99 time to 202",
            p99,
            base_p99,
            unit="ms",
            goal=f"≤ {GOAL_P99_MS} ms",
            met=p99 <= GOAL_P99_MS,
            notes=f"p50 {statistics.median(t for _s, t, _b in ours['results']) * 1000:.1f} ms, "
            f"p90 {_percentile_ms([t for _s, t, _b in ours['results']], 90):.1f} ms "
            f"(empty endpoint p50 "
            f"{statistics.median(t for _s, t, _b in empty['results']) * 1000:.1f} ms)",
        ),
    ]
