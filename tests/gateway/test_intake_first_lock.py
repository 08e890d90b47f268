"""The gateway's write lock lets a waiting intake batch go before the other writers."""

from __future__ import annotations

import threading

import pytest

from taskforce.gateway.group_commit import IntakeFirstLock

WAIT = 10  # seconds; only reached when the lock is broken


def _intake(lock: IntakeFirstLock, order: list[str], entered: threading.Event) -> threading.Thread:
    def run() -> None:
        with lock.intake():
            order.append("intake")
            entered.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert lock.wait_for_intake_waiting(WAIT)
    return thread


def test_a_writer_that_lets_go_and_takes_it_again_goes_after_a_waiting_intake_batch():
    lock, order, entered = IntakeFirstLock(), [], threading.Event()
    lock.__enter__()  # the dispatch thread, in one of its transactions
    intake = _intake(lock, order, entered)
    assert not entered.is_set()  # a batch waits for the transaction in progress
    lock.__exit__(None, None, None)
    with lock:  # ... and its next transaction, at once: a plain lock let it in first
        order.append("background")
    intake.join(WAIT)
    assert order == ["intake", "background"]


def test_an_intake_batch_waits_for_the_transaction_in_progress():
    lock, order, entered = IntakeFirstLock(), [], threading.Event()
    with lock:
        intake = _intake(lock, order, entered)
        assert not entered.is_set()
        order.append("background")
    intake.join(WAIT)
    assert order == ["background", "intake"]


def test_the_lock_is_free_again_after_an_error_on_either_side():
    lock = IntakeFirstLock()
    with pytest.raises(RuntimeError), lock.intake():
        raise RuntimeError("intake failed")
    with pytest.raises(RuntimeError), lock:
        raise RuntimeError("delivery failed")
    done = threading.Event()

    def both() -> None:
        with lock.intake():
            pass
        with lock:
            done.set()

    thread = threading.Thread(target=both)
    thread.start()
    thread.join(WAIT)
    assert done.is_set()
