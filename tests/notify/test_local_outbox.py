"""The embedded default target: tfoutbox:// appends whole JSON lines, thread-safe."""

from __future__ import annotations

import threading

from apprise import Apprise

from taskforce.notify.delivery import deliver_pending
from taskforce.notify.local_outbox import append_line
from tests.notify.conftest import outbox_lines, put


def test_many_threads_append_whole_lines_without_interleaving(tmp_path):
    path = tmp_path / "outbox.jsonl"
    threads_n, lines_n = 16, 150
    start = threading.Barrier(threads_n)

    def write(thread: int) -> None:
        start.wait()
        for i in range(lines_n):
            # Long lines make a torn write visible if locking were wrong.
            append_line(path, {"thread": thread, "i": i, "body": "数据" * 2000})

    workers = [threading.Thread(target=write, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    lines = outbox_lines(path)  # json.loads fails on any interleaved line
    assert len(lines) == threads_n * lines_n
    assert {(x["thread"], x["i"]) for x in lines} == {
        (t, i) for t in range(threads_n) for i in range(lines_n)
    }


def test_the_scheme_through_apprise_under_concurrent_notifies(tmp_path):
    path = tmp_path / "via-apprise.jsonl"
    apprise = Apprise()
    assert apprise.add(f"tfoutbox://_{path}")
    results = []

    def send(n: int) -> None:
        results.append(bool(apprise.notify(body=f"body {n}", title=f"title {n}")))

    workers = [threading.Thread(target=send, args=(n,)) for n in range(40)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    assert all(results) and len(results) == 40
    lines = outbox_lines(path)
    assert sorted(x["title"] for x in lines) == sorted(f"title {n}" for n in range(40))


def test_a_stray_host_is_refused_rather_than_writing_somewhere_unexpected(tmp_path):
    apprise = Apprise()
    apprise.add("tfoutbox:///etc/passwd-like")  # parsed as host "etc"
    assert not apprise.notify(body="b", title="t")


def test_delivery_through_the_shipped_config_writes_audience_title_body_time(
    engine, ctx, tmp_path, monkeypatch
):
    path = tmp_path / "outbox.jsonl"
    monkeypatch.setenv("TASKFORCE_OUTBOX_FILE", str(path))
    put(engine, ctx, key="k", audiences=["executive", "member-E1"], context={"title": "Hello"})

    report = deliver_pending(engine, ctx)  # channels from config/apprise.yml

    assert report.delivered == 2
    lines = sorted(outbox_lines(path), key=lambda x: x["audience"])
    assert [x["audience"] for x in lines] == ["executive", "member-E1"]
    assert all("Hello" in x["title"] and x["body"] for x in lines)
    assert {x["time"] for x in lines} == {ctx.now().isoformat()}
    assert {x["key"] for x in lines} == {"k:executive@local", "k:member-E1@local"}
