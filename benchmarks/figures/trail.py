"""Trail verification of every entry, against reading the same rows and hashing them in a bare loop.

The baseline reads the stored columns with a plain DBAPI cursor and SHA-256s
each row's bytes chained on the previous digest: the I/O and hashing any
verification must do, without the canonical re-serialisation and the checks.
A second baseline, hashing pre-built canonical bytes only, is in the notes.

The baseline is one process; `verify` checks id ranges in one worker process per core
(`taskforce.trail.parallel`), so the notes give the number of processes it used and the
time of the sequential walk (`verify_sequential`, one process) measured in the same run.
"""

from __future__ import annotations

import hashlib
import resource
import time

from benchmarks.core import Bench, Result, timed
from taskforce.trail.service import GENESIS, verify, verify_sequential

NAME = "trail"
GOAL_SECONDS_PER_MILLION = 5.0
GOAL_RATIO = 1.5
COLUMNS = (
    "id, at, actor, action, subject_type, subject_id, payload, classification, "
    "calendar_fallback, prev_hash, hash"
)


def _read_and_hash(bench: Bench) -> int:
    raw = bench.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"SELECT {COLUMNS} FROM trail_entry ORDER BY id")
        prev, count, sha = GENESIS, 0, hashlib.sha256
        while rows := cur.fetchmany(50_000):
            for row in rows:
                body = "\x1f".join(map(str, row[:9])).encode()
                prev = sha(prev.encode() + b"\n" + body).hexdigest()
                count += 1
        return count
    finally:
        raw.close()


def _bodies(bench: Bench) -> list[bytes]:
    raw = bench.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f"SELECT {COLUMNS} FROM trail_entry ORDER BY id")
        return ["\x1f".join(map(str, row[:9])).encode() for row in cur.fetchall()]
    finally:
        raw.close()


def _hash_only(bodies: list[bytes]) -> str:
    prev, sha = GENESIS, hashlib.sha256
    for body in bodies:
        prev = sha(prev.encode() + b"\n" + body).hexdigest()
    return prev


def _time_hash_only(bench: Bench) -> float:
    bodies = _bodies(bench)
    seconds, _ = timed(lambda: _hash_only(bodies))
    return seconds


def _verify(bench: Bench, walk=verify):
    with bench.engine.connect() as conn:
        from sqlalchemy.orm import Session

        with Session(bind=conn) as session:
            return walk(session)


def _cpu_seconds() -> tuple[float, float]:
    """CPU time of this process and of its finished children (the verification's workers)."""
    own = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own, children.ru_utime + children.ru_stime


def run(bench: Bench) -> list[Result]:
    bench.status("trail: baseline read + bare hash loop")
    cpu_before = time.process_time()
    base, count = timed(lambda: _read_and_hash(bench))
    base_cpu = time.process_time() - cpu_before
    hash_only = _time_hash_only(bench)
    bench.status(f"trail: verify {count:,} entries")
    own_before, children_before = _cpu_seconds()
    ours, verification = timed(lambda: _verify(bench))
    own_after, children_after = _cpu_seconds()
    # Wall time on a shared machine depends on the other load; CPU seconds show the work done.
    ours_cpu = (own_after - own_before) + (children_after - children_before)
    bench.status("trail: the sequential walk, one process")
    sequential, walked = timed(lambda: _verify(bench, verify_sequential))
    processes = verification.processes
    goal = GOAL_SECONDS_PER_MILLION * max(count, 1) / 1_000_000
    ratio = ours / base
    return [
        Result(
            "trail verification",
            ours,
            base,
            goal=f"≤ {goal:.2f} s ({GOAL_SECONDS_PER_MILLION:g} s per 1M), ratio ≤ {GOAL_RATIO}",
            met=verification.ok and ours <= goal and ratio <= GOAL_RATIO,
            notes=f"{verification.entries:,} entries, ok={verification.ok}; "
            f"{processes} worker process(es) (baseline: 1); "
            f"sequential walk, 1 process: {sequential:.2f} s; "
            f"CPU time: ours {ours_cpu:.2f} s over all processes, baseline {base_cpu:.2f} s; "
            f"hashing alone (bytes pre-built): {hash_only:.2f} s",
            extra={
                "entries": verification.entries,
                "ok": verification.ok and walked == verification,
                "same_as_sequential": walked == verification,
                "processes": processes,
                "sequential": sequential,
                "cpu_seconds": ours_cpu,
                "baseline_cpu_seconds": base_cpu,
                "hash_only": hash_only,
            },
        )
    ]
