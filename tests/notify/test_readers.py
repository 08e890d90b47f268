"""Who reads an audience: the lowest clearance among the members its tag reaches."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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
    # No reader known behind a tag: nobody is known to be cleared (fail closed).
    assert "leadership" not in clearances and clearances.of("leadership") == PUBLIC
    assert clearances.of("Member-E1") == SECRET  # Apprise matches tags in lower case


def test_the_sample_organisation_keeps_wg_data_and_wg_finance_to_public_content():
    """config/org.yaml: W4 and W6 are cleared for public material only."""
    clearances = audience_clearances(readers_in_org(load_org()))
    assert clearances["wg:data"] == PUBLIC and clearances["wg:finance"] == PUBLIC
    assert clearances["wg:approval"] == INTERNAL
    assert clearances["leadership"] == SECRET
    assert clearances["member-w4"] == PUBLIC


ROOT = Path(__file__).resolve().parents[2]


def _notify_check(tmp_path, **env: str) -> str:
    """`taskforce notify check` as an operator runs it: its output on one line (rich wraps)."""
    done = subprocess.run(
        [sys.executable, "-m", "taskforce.cli", "notify", "check"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "TASKFORCE_OUTBOX_FILE": str(tmp_path / "outbox.jsonl"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def test_notify_check_names_where_content_will_arrive_as_references(tmp_path):
    out = _notify_check(tmp_path)
    assert "wg:data reaches a member cleared for public" in out
    assert "wg:approval reaches" not in out  # every member internal, as the channel
    assert "every audience has a channel" in out


def test_notify_check_names_a_channel_tag_that_reaches_no_member(tmp_path):
    """A mistyped contact tag reaches nobody of config/org.yaml: the check says that its
    classified records will arrive as references only (notify/readers.py, fail closed)."""
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    channels = config / "apprise.yml"
    text = channels.read_text(encoding="utf-8")
    assert "        - member-W3\n" in text
    channels.write_text(
        text.replace("        - member-W3\n", "        - member-W3\n        - sms-w33\n", 1),
        encoding="utf-8",
    )

    out = _notify_check(tmp_path, TASKFORCE_CONFIG_DIR=str(config))

    assert "sms-w33 (channel local) reaches no member of config/org.yaml" in out
    assert "member-W3 (channel" not in out  # a tag that reaches W3 is no note
