"""taskforce.process: a flow-run process freezes its start-up objects once.

Run in a child process: freezing is for the rest of a process's life.
"""

import subprocess
import sys

CHILD = """
import gc
import flows.loop  # what a deployment run's process imports before the run
from taskforce.process import freeze_startup_objects

tracked = len(gc.get_objects())
assert gc.get_freeze_count() == 0
assert freeze_startup_objects() is True
frozen = gc.get_freeze_count()
assert frozen >= tracked, (frozen, tracked)
assert len(gc.get_objects()) < 1000, len(gc.get_objects())  # a full collection walks these

# Later objects stay collectable: a second call freezes nothing more.
garbage = [[i] for i in range(10_000)]
assert freeze_startup_objects() is False
assert gc.get_freeze_count() == frozen
cycle = []
cycle.append(cycle)
del cycle
assert gc.collect() >= 1  # the cycle made after the freeze is still found and freed
print("ok", tracked, frozen)
"""


def test_startup_objects_are_frozen_once_and_later_garbage_is_still_collected():
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
    _, tracked, _frozen = done.stdout.split()
    assert int(tracked) > 50_000  # Prefect and the project: why freezing is worth it


def test_the_collector_is_paused_for_a_bulk_job_and_resumed_after_it_even_on_error():
    import gc

    from taskforce.process import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: still paused inside, not resumed by the inner exit
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    try:
        with collector_paused():
            raise ValueError("the job failed")
    except ValueError:
        pass
    assert gc.isenabled()


def test_a_collector_disabled_before_the_job_stays_disabled_after_it():
    import gc

    from taskforce.process import collector_paused

    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


GARBAGE_CHILD = """
import sys, weakref
from taskforce.process import freeze_startup_objects

class Node:
    pass

node = Node()
node.itself = node  # a cycle: only the collector frees it
ref = weakref.ref(node)
del node
freeze_startup_objects(collect_first=sys.argv[1] == "collect")
print("freed" if ref() is None else "kept")
"""


def test_a_server_frees_start_up_garbage_before_freezing_and_a_flow_run_does_not_wait_for_it():
    def child(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", GARBAGE_CHILD, mode], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert child("collect") == "freed"
    assert child("no-collect") == "kept"  # frozen with the rest: the price of skipping it
