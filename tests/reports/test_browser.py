"""The HTML report in a real browser: Debian's headless Chromium loads it with no console
errors, every chart is an SVG element of the page, and a screenshot goes to test-output/.

CJK text needs a CJK font (fonts-noto-cjk); .ci/run installs it with chromium.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from taskforce.context import Context
from taskforce.reviews.service import run_review
from tests.reviews import factories as f

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
CONSOLE = re.compile(r":CONSOLE[:(]")


def chromium(url: str, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("headless Chromium is required: apt-get install -y chromium fonts-noto-cjk")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *mode,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


def test_console_check_sees_errors(tmp_path):
    """The check below is not vacuous: a page that errors is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<p>x</p><script>console.error("boom")</script><img src="missing.png">')
    run = chromium(page.as_uri(), tmp_path, "--dump-dom")
    assert any("boom" in m for m in console_messages(run.stderr))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "period", "charts"),
    [
        ("monthly", "2026-11", ["chart-colours", "chart-trend", "chart-burndown", "chart-funnel"]),
        (
            "semiannual",
            "2026-H2",
            ["chart-colours", "chart-trend", "chart-burndown", "chart-funnel", "chart-risk-matrix"],
        ),
    ],
)
def test_report_loads_in_chromium(engine, policy, clock, tmp_path, kind, period, charts):
    with Session(engine) as s, s.begin():
        f.november_dataset(s)
        f.risk(s, code="R-MGT-01", probability=4, impact=5)
        f.risk(s, code="R-TEC-02", probability=2, impact=3)
    clock.set(f.utc(2027, 1, 1, 1))
    ctx = Context(policy=policy, clock=clock)
    out = run_review(engine, ctx, kind, period, out_root=tmp_path / "out", locales=["zh-CN"])
    page = Path(out.files["zh-CN.html"])

    dom = chromium(page.as_uri(), tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    for chart in charts:
        # Parsed by the browser as an SVG element of the page, with drawn content.
        assert re.search(rf'<svg[^>]*id="{chart}"[^>]*>.*?<path', dom.stdout, re.S), chart
    assert "<title>月度复盘" in dom.stdout or kind != "monthly"

    OUTPUT.mkdir(exist_ok=True)
    backend = engine.dialect.name
    shot = OUTPUT / f"{kind}-{period}.zh-CN.{backend}.png"
    run = chromium(page.as_uri(), tmp_path, "--window-size=1100,4000", f"--screenshot={shot}")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_messages(run.stderr) == []
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
