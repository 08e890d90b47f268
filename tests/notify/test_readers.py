"""Who reads an audience: the lowest clearance among the members its tag reaches."""

from __future__ import annotations

from taskforce.notify.readers import Reader, audience_clearances, readers_in_org
from taskforce.policy import load_org
from taskforce.policy.schema import Classification

PUBLIC, INTERNAL, SECRET = Classification.public, Classification.internal, Classification.secret


def test_each_tag_takes_its_least_cleared_reader():
    clearances = audience_clearances(
        [
            Reader("E1", "executive", SECRET, director=True, on_call=True),
            Reader("E3", "executive", INTERNAL),
            Reader("W3", "wg:data", INTERNAL, contacts=("sms-W3",), on_call=True),
            Reader("W4", "wg:data", PUBLIC),
        ]
    )
    assert clearances["executive"] == INTERNAL
    assert clearances["director"] == SECRET and clearances["member-e1"] == SECRET
    assert clearances["oncall"] == INTERNAL  # E1 and W3
    assert clearances["wg:data"] == PUBLIC
    assert clearances["sms-w3"] == INTERNAL and clearances["member-w3"] == INTERNAL
    assert "leadership" not in clearances  # no reader known: the channel decides


def test_the_sample_organisation_keeps_wg_data_and_wg_finance_to_public_content():
    """config/org.yaml: W4 and W6 are cleared for public material only."""
    clearances = audience_clearances(readers_in_org(load_org()))
    assert clearances["wg:data"] == PUBLIC and clearances["wg:finance"] == PUBLIC
    assert clearances["wg:approval"] == INTERNAL
    assert clearances["leadership"] == SECRET
    assert clearances["member-w4"] == PUBLIC


def test_notify_check_names_where_content_will_arrive_as_references(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-m", "taskforce.cli", "notify", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env={"PATH": "/usr/bin:/bin", "TASKFORCE_OUTBOX_FILE": str(tmp_path / "outbox.jsonl")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())  # rich wraps long lines
    assert "wg:data reaches a member cleared for public" in out
    assert "wg:approval reaches" not in out  # every member internal, as the channel
    assert "every audience has a channel" in out
