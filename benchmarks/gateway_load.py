"""The intake figure's load generator: N pre-built HTTP requests over C keep-alive connections.

Run as its own process (`python -m benchmarks.gateway_load IN OUT`), so it shares no
interpreter with the server. It is deliberately lean: the requests are raw bytes built
(and signed) beforehand, and a response is read as a status line, headers and a
Content-Length body, so the client costs tens of microseconds per request and the
server, not the client, is what is measured. Its own CPU time is reported to show that.

IN is JSON: {"port", "concurrency", "requests": [raw request as latin-1 text, ...]}.
OUT gets per request [status, seconds from send to full response, body], in request order,
plus the wall time of the whole run and the client's CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time


async def _worker(port: int, requests: list[bytes], next_index, results: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (i := next_index()) is not None:
            started = time.perf_counter()
            writer.write(requests[i])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            results[i] = (status, time.perf_counter() - started, body.decode())
    finally:
        writer.close()


async def drive(port: int, requests: list[bytes], concurrency: int) -> tuple[list, float]:
    results: list = [None] * len(requests)
    counter = iter(range(len(requests)))

    def next_index():
        return next(counter, None)

    started = time.perf_counter()
    await asyncio.gather(
        *(_worker(port, requests, next_index, results) for _ in range(concurrency))
    )
    return results, time.perf_counter() - started


def main(argv: list[str]) -> None:
    source, target = argv
    with open(source, encoding="utf-8") as f:
        spec = json.load(f)
    requests = [r.encode("latin-1") for r in spec["requests"]]
    results, wall = asyncio.run(drive(spec["port"], requests, spec["concurrency"]))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open(target, "w", encoding="utf-8") as out:
        json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "results": results}, out)


if __name__ == "__main__":
    main(sys.argv[1:])
