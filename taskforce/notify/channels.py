"""Channels: the Apprise services of config/apprise.yml, with a name and a clearance each.

config/apprise.yml is Apprise's own YAML format (the `apprise` CLI can read it
once the secrets are filled in). Two tag conventions carry what Apprise's
format has no field for; both are required on every URL entry:

* ``channel-<name>`` — the channel's name. Delivery results are recorded under
  it (never the URL, which may hold a secret).
* ``clearance-<public|internal|secret>`` — the highest classification whose
  content the channel may carry; anything above gets a reference only.

Every other tag is an audience (``leadership``, ``wg:data``, ``member-e1`` …).
Apprise lowercases tags, so audiences match case-insensitively.

Secrets never live in the file: write ``{{ NAME }}`` where one belongs and set
the environment variable NAME. A missing variable stops start-up with an error
naming the channel and the variable (Apprise would skip the entry silently).
Values are URL-quoted when they stand in a URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from apprise import AppriseConfig
from apprise.common import OverflowMode
from apprise.plugins.base import NotifyBase

from taskforce.notify import local_outbox  # noqa: F401  (registers the tfoutbox:// scheme)
from taskforce.policy.loader import ConfigError, config_dir, parse_yaml
from taskforce.policy.schema import Classification

CHANNELS_FILE = "apprise.yml"
CHANNEL_TAG = "channel-"
CLEARANCE_TAG = "clearance-"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ChannelConfigError(ConfigError):
    """config/apprise.yml is unusable; the message names the channel and the problem."""


@dataclass(frozen=True)
class Channel:
    name: str
    clearance: Classification
    audiences: frozenset[str]
    service: NotifyBase = field(repr=False, compare=False)

    def may_read(self, classification: Classification) -> bool:
        return classification.readable_by(self.clearance)


@dataclass(frozen=True)
class ChannelSet:
    channels: tuple[Channel, ...]
    source: str = CHANNELS_FILE

    def for_audience(self, audience: str) -> list[Channel]:
        """Every channel tagged with the audience, in file order."""
        wanted = audience.lower()
        return [c for c in self.channels if wanted in c.audiences]

    def by_name(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    @property
    def audiences(self) -> set[str]:
        return set().union(*(c.audiences for c in self.channels)) if self.channels else set()


def load_channels(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overflow: str = "truncate",
) -> ChannelSet:
    """Read config/apprise.yml, fill secrets from the environment, load it into Apprise.

    `overflow` is applied to every channel that does not set its own
    ``overflow=`` (Apprise's default, "upstream", would send oversize text as is).
    """
    path = path or config_dir() / CHANNELS_FILE
    shown = _display(path)
    env = os.environ if environ is None else environ
    if not path.is_file():
        raise ChannelConfigError(f"{shown}: file not found")
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ChannelConfigError(f"{shown}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("urls"), list) or not raw["urls"]:
        raise ChannelConfigError(f"{shown}: expected Apprise YAML with a non-empty 'urls' list")

    entries: list[tuple[str, Classification, bool]] = []
    resolved_urls: list[Any] = []
    problems: list[str] = []
    for number, entry in enumerate(raw["urls"], start=1):
        url, tokens = _split_entry(entry)
        if url is None:
            problems.append(f"{shown}: urls entry #{number}: expected 'url' or 'url: {{tag: …}}'")
            continue
        tags = _tags_of(tokens)
        name, clearance, error = _name_and_clearance(tags)
        label = f"channel {name!r}" if name else f"urls entry #{number}"
        if error:
            problems.append(f"{shown}: {label}: {error}")
            continue
        missing = sorted({n for n in _placeholders(url) | _placeholders(tokens) if not env.get(n)})
        if missing:
            problems.append(
                f"{shown}: {label}: secret not set: environment variable "
                f"{', '.join(missing)} (never write secrets into the file)"
            )
            continue
        explicit_overflow = "overflow=" in url or (
            isinstance(tokens, dict) and "overflow" in tokens
        )
        new_url = _fill(url, env, quote_values=True)
        new_tokens = _fill(tokens, env, quote_values=False)
        resolved_urls.append({new_url: new_tokens} if new_tokens is not None else new_url)
        entries.append((name, clearance, explicit_overflow))
    names = [n for n, _, _ in entries]
    for dupe in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{shown}: channel {dupe!r}: defined more than once")
    if problems:
        raise ChannelConfigError("\n".join(problems))

    resolved = dict(raw, urls=resolved_urls)
    config = AppriseConfig()
    if not config.add_config(yaml.safe_dump(resolved, allow_unicode=True), format="yaml"):
        raise ChannelConfigError(f"{shown}: Apprise could not read the configuration")
    services = config.services()
    by_name: dict[str, NotifyBase] = {}
    for service in services:
        tags = {str(t) for t in service.tags}
        channel_tags = [t.removeprefix(CHANNEL_TAG) for t in tags if t.startswith(CHANNEL_TAG)]
        for name in channel_tags:
            by_name.setdefault(name, service)
    channels: list[Channel] = []
    for name, clearance, explicit_overflow in entries:
        service = by_name.get(name)
        if service is None:
            problems.append(
                f"{shown}: channel {name!r}: Apprise could not load its URL "
                "(unknown scheme or bad URL; run `apprise --details` for the schemes)"
            )
            continue
        if not explicit_overflow:
            service.overflow_mode = OverflowMode(overflow)
        audiences = frozenset(
            str(t) for t in service.tags if not str(t).startswith((CHANNEL_TAG, CLEARANCE_TAG))
        )
        channels.append(Channel(name, clearance, audiences, service))
    if problems:
        raise ChannelConfigError("\n".join(problems))
    return ChannelSet(tuple(channels), source=shown)


def coverage_problems(channels: ChannelSet, audiences: set[str]) -> list[str]:
    """Audiences that no channel carries (a message to them could never be delivered)."""
    have = channels.audiences
    return sorted(a for a in audiences if a.lower() not in have)


def _split_entry(entry: Any) -> tuple[str | None, Any]:
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, dict):
        for key, value in entry.items():
            if isinstance(key, str) and "://" in key:
                return key, value
    return None, None


def _tags_of(tokens: Any) -> set[str]:
    found: set[str] = set()
    blocks = tokens if isinstance(tokens, list) else [tokens]
    for block in blocks:
        if not isinstance(block, dict):
            continue
        value = block.get("tag", block.get("tags"))
        if isinstance(value, str):
            found |= {t for t in re.split(r"[\s,;]+", value) if t}
        elif isinstance(value, list):
            found |= {str(t).strip() for t in value if str(t).strip()}
    return {t.lower() for t in found}


def _name_and_clearance(tags: set[str]) -> tuple[str, Classification, str | None]:
    names = sorted(t.removeprefix(CHANNEL_TAG) for t in tags if t.startswith(CHANNEL_TAG))
    levels = sorted(t.removeprefix(CLEARANCE_TAG) for t in tags if t.startswith(CLEARANCE_TAG))
    name = names[0] if len(names) == 1 else ""
    if len(names) != 1:
        return name, Classification.public, "needs exactly one tag 'channel-<name>'"
    if not _CHANNEL_NAME.match(name):
        return name, Classification.public, "channel name: use a-z, 0-9, '-' and '_'"
    allowed = ", ".join(c.value for c in Classification)
    if len(levels) != 1 or levels[0] not in {c.value for c in Classification}:
        return name, Classification.public, f"needs exactly one tag 'clearance-<{allowed}>'"
    return name, Classification(levels[0]), None


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value)) if value else set()
    return set()


def _fill(value: Any, env: Mapping[str, str], *, quote_values: bool) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match) -> str:
            secret = env[match.group(1)]
            return quote(secret, safe="") if quote_values else secret

        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, dict):
        return {k: _fill(v, env, quote_values=quote_values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, env, quote_values=quote_values) for v in value]
    return value


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
