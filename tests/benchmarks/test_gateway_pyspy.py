"""The gateway figure's py-spy sampling (TASKFORCE_BENCH_GATEWAY_PYSPY) and its report."""

from __future__ import annotations

import pytest

from benchmarks import databases
from benchmarks.gateway_server import pyspy_report

# py-spy's raw format with --subprocesses --threads: process, thread, then the frames (root
# first), and the sample count.
RAW = """\
process 7:"python -m uvicorn";thread (11): MainThread;run (server.py:1);_NativeFastPath.__call__ (taskforce/gateway/app.py:545);digest (hmac.py:190) 30
process 7:"python -m uvicorn";thread (11): MainThread;run (server.py:1);_NativeFastPath.__call__ (taskforce/gateway/app.py:560) 10
process 7:"python -m uvicorn";thread (12): gateway-group-commit;_run (group_commit.py:9);Connection.wait (psycopg/connection.py:479) 56
thread (13): AnyIO worker thread;acquire (threading.py:1) 3
thread (14): AnyIO worker thread;acquire (threading.py:1) 1
"""


def test_the_report_shares_samples_by_thread_and_function(tmp_path, capsys):
    raw = tmp_path / "burst.txt"
    raw.write_text(RAW, encoding="utf-8")
    pyspy_report(raw)
    out = capsys.readouterr().out
    assert "100 samples" in out
    assert "56.0%  gateway-group-commit" in out
    assert "40.0%  MainThread" in out
    assert "4.0%  anyio workers" in out  # AnyIO's workers summed under one name
    main = out.split("===== MainThread", 1)[1].split("=====", 1)[0]
    # inclusive / own, of the thread's 40 samples; file names without their folders
    assert "100.0%  25.0%  _NativeFastPath.__call__ (app.py)" in main
    assert " 75.0%  75.0%  digest (hmac.py)" in main
    writer = out.split("===== gateway-group-commit", 1)[1]
    assert "100.0% 100.0%  Connection.wait (connection.py)" in writer
    assert "===== anyio workers" not in out  # under 5 % of the samples: listed, not opened


def test_the_intake_childs_threads_are_reported_apart_from_the_servers(tmp_path, capsys):
    raw = tmp_path / "burst.txt"
    raw.write_text(
        'process 7:"python -m uvicorn";thread (11): MainThread;run (server.py:1);'
        "native_intake (taskforce/gateway/app.py:240) 60\n"
        'process 7:"python -m uvicorn";process 9:"python -m uvicorn";thread (21): MainThread;'
        "_bootstrap (process.py:1);"
        "BaseProcess._bootstrap (multiprocessing/process.py:314);"
        "GroupCommit.write (taskforce/gateway/group_commit.py:260) 30\n"
        'process 7:"python -m uvicorn";process 9:"python -m uvicorn";'
        "thread (22): emergency-dispatch;"
        "page_many (taskforce/emergency/dispatch.py:1) 10\n",
        encoding="utf-8",
    )
    pyspy_report(raw)
    out = capsys.readouterr().out
    assert "60.0%  MainThread" in out and "30.0%  child process: MainThread" in out
    assert "10.0%  child process: emergency-dispatch" in out
    server = out.split("===== MainThread", 1)[1].split("=====", 1)[0]
    assert "GroupCommit.write" not in server and "native_intake (app.py)" in server


def test_the_report_of_an_empty_file_says_what_is_missing(tmp_path):
    empty = tmp_path / "burst.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(SystemExit, match="no samples in .*TASKFORCE_BENCH_GATEWAY_PYSPY"):
        pyspy_report(empty)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_quick_gateway_figure_samples_its_burst_with_py_spy(tmp_path, monkeypatch, capsys):
    """A real py-spy attached to the real server while the quick burst runs."""
    from benchmarks import run

    monkeypatch.setattr(databases, "BENCH_DIR", tmp_path)
    raw = tmp_path / "burst.txt"
    monkeypatch.setenv("TASKFORCE_BENCH_GATEWAY_PYSPY", str(raw))
    rate, _p99 = run.main(["--quick", "--only", "gateway"])
    assert rate.extra["accounting_ok"], rate.notes
    capsys.readouterr()
    pyspy_report(raw)
    out = capsys.readouterr().out
    assert "===== MainThread" in out, out
    main = out.split("===== MainThread", 1)[1].split("=====", 1)[0]
    assert "native_intake (app.py)" in main, out  # the server's event loop, not the child's
