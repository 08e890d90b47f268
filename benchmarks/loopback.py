"""A loopback notification receiver and a config folder that sends every audience to it.

A threaded HTTP server recording Apprise's json:// posts, and a copy of config/ whose
apprise.yml has one URL carrying every audience tag. The emergency-path figure and the
end-to-end tests (tests/e2e/stack.py) both use it. Each post is recorded with its arrival
time on this process's `time.perf_counter()` clock.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from taskforce.notify.delivery import DELIVERY_HEADER

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    at: float  # arrival, on this process's time.perf_counter() clock
    path: str
    delivery: str  # X-Taskforce-Delivery: "<outbox key>@<channel>"
    body: dict


class Receiver:
    """An HTTP server that records every JSON POST and wakes waiters; it can go down and
    come back on its port (the e2e tests' receiver outage)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.messages: list[Received] = []
        self._arrived = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._arrived:
                    receiver.messages.append(
                        Received(at, self.path, self.headers.get(DELIVERY_HEADER, ""), body)
                    )
                    receiver._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # keep the caller's output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def deliveries(self, key_part: str) -> list[Received]:
        with self._arrived:
            return [m for m in self.messages if key_part in m.delivery]

    def wait_first(self, match, timeout: float) -> float | None:
        """Arrival time of the first post for which `match(delivery, path, body)` holds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for m in self.messages:
                    if match(m.delivery, m.path, m.body):
                        return m.at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._arrived.wait(left)


def make_config(folder: Path, receiver_url: str, policy_overrides: dict[str, int]) -> Path:
    """config/ with every audience sent to the receiver, and some policy numbers replaced."""
    config = folder / "config"
    shutil.copytree(ROOT / "config", config)
    shipped = yaml.safe_load((ROOT / "config" / "apprise.yml").read_text(encoding="utf-8"))
    tags = sorted(
        {
            t
            for entry in shipped["urls"]
            for spec in entry.values()
            for t in spec["tag"]
            if not t.startswith(("channel-", "clearance-"))
        }
    )
    port = receiver_url.rsplit(":", 1)[1]
    apprise = {
        "version": 1,
        "urls": [
            {
                f"json://127.0.0.1:{port}/notify": {
                    "tag": ["channel-receiver", "clearance-secret", *tags],
                    "cto": 1,
                    "rto": 5,
                }
            }
        ],
    }
    (config / "apprise.yml").write_text(yaml.safe_dump(apprise), encoding="utf-8")
    policy = (config / "taskforce.yaml").read_text(encoding="utf-8")
    for key, value in policy_overrides.items():
        policy, n = re.subn(rf"(?m)^(\s+{key}:)\s*\d+", rf"\g<1> {value}", policy)
        if n != 1:
            raise ValueError(f"config/taskforce.yaml: {key} found {n} times, expected once")
    (config / "taskforce.yaml").write_text(policy, encoding="utf-8")
    return config
