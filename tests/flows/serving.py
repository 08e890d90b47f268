"""Flows served as real deployments by a Prefect Runner in a thread of the test process:
each run starts in a process of its own, as a worker starts it."""

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from prefect.runner import Runner


@contextlib.contextmanager
def serving(*deployments) -> Iterator[None]:
    runner = Runner(query_seconds=1, pause_on_shutdown=False)
    for deployment in deployments:
        runner.add_deployment(deployment)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(runner.start(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(30)
        thread.join(30)
