"""config/apprise.yml: tag conventions, secrets from the environment, clear start-up errors."""

from __future__ import annotations

import pytest

from taskforce.notify.channels import ChannelConfigError, coverage_problems, load_channels
from taskforce.notify.routing import known_audiences
from taskforce.policy import load_org
from taskforce.policy.schema import Classification


def _write(tmp_path, text: str):
    path = tmp_path / "apprise.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_config_covers_every_audience_with_the_local_outbox(policy):
    channels = load_channels(overflow=policy.notifications.overflow)

    assert [c.name for c in channels.channels] == ["local"]
    assert channels.channels[0].clearance == Classification.internal
    assert channels.channels[0].service.overflow_mode.value == "truncate"
    assert coverage_problems(channels, known_audiences(policy, load_org())) == []
    for audience in ("leadership", "wg:data", "oncall", "member-E1", "MEMBER-x3", "director"):
        assert channels.for_audience(audience), audience


def test_a_missing_secret_is_a_start_up_error_naming_the_channel_and_variable(tmp_path):
    path = _write(
        tmp_path,
        """
version: 1
urls:
  - json://bot:{{ TF_IM_TOKEN }}@127.0.0.1:9/hook:
      tag: [channel-secure-im, clearance-secret, leadership]
""",
    )
    with pytest.raises(ChannelConfigError) as err:
        load_channels(path, environ={})
    assert "channel 'secure-im'" in str(err.value) and "TF_IM_TOKEN" in str(err.value)

    channels = load_channels(path, environ={"TF_IM_TOKEN": "p@ss/word"})
    [channel] = channels.channels
    assert channel.clearance == Classification.secret
    assert channel.service.password == "p@ss/word"  # quoted in the URL, intact for Apprise
    assert "p@ss" not in channel.service.url(privacy=True)


def test_every_url_needs_a_channel_name_and_a_clearance(tmp_path):
    path = _write(
        tmp_path,
        """
urls:
  - json://127.0.0.1:9/a:
      tag: [clearance-internal, executive]
  - json://127.0.0.1:9/b:
      tag: [channel-b, executive]
  - json://127.0.0.1:9/c:
      tag: [channel-c, clearance-top, executive]
""",
    )
    with pytest.raises(ChannelConfigError) as err:
        load_channels(path, environ={})
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert "urls entry #1" in lines[0] and "channel-<name>" in lines[0]
    assert "channel 'b'" in lines[1] and "clearance-<public, internal, secret>" in lines[1]
    assert "channel 'c'" in lines[2]


def test_an_unloadable_url_or_a_duplicate_name_is_named(tmp_path):
    path = _write(
        tmp_path,
        """
urls:
  - nosuchscheme://x:
      tag: [channel-odd, clearance-public, executive]
""",
    )
    with pytest.raises(ChannelConfigError, match="channel 'odd': Apprise could not load"):
        load_channels(path, environ={})
    path = _write(
        tmp_path,
        """
urls:
  - json://127.0.0.1:9/a: {tag: [channel-x, clearance-public, executive]}
  - json://127.0.0.1:9/b: {tag: [channel-x, clearance-public, leadership]}
""",
    )
    with pytest.raises(ChannelConfigError, match="channel 'x': defined more than once"):
        load_channels(path, environ={})


def test_overflow_is_set_deliberately_unless_the_url_sets_its_own(tmp_path):
    path = _write(
        tmp_path,
        """
urls:
  - json://127.0.0.1:9/a: {tag: [channel-a, clearance-public, executive]}
  - json://127.0.0.1:9/b?overflow=split: {tag: [channel-b, clearance-public, executive]}
""",
    )
    channels = load_channels(path, environ={}, overflow="truncate")
    modes = {c.name: c.service.overflow_mode.value for c in channels.channels}
    assert modes == {"a": "truncate", "b": "split"}


def test_audiences_never_include_the_convention_tags(make_channels):
    channels = make_channels(("hook", "secret", "json://127.0.0.1:9/x", ["Executive", "wg:data"]))
    assert channels.channels[0].audiences == frozenset({"executive", "wg:data"})
    assert channels.for_audience("clearance-secret") == []
