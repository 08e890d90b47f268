"""Load and validate config files, with errors that name file, key and problem."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from taskforce.errors import problem_text
from taskforce.policy.schema import GroupKind, Organisation, Policy

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR_ENV = "TASKFORCE_CONFIG_DIR"

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A config file is missing or invalid. The message is one line per problem."""


def config_dir() -> Path:
    """The config folder: $TASKFORCE_CONFIG_DIR, else the project's config/."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or PROJECT_ROOT / "config")


# libyaml's loader parses the policy ~10x faster than the pure-Python one; every flow run
# process loads it once, so this is most of a deployment run's first-use cost. Same
# safe subset either way.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> object:
    """`yaml.safe_load`, with libyaml when it is there."""
    return yaml.load(text, Loader=_SafeLoader)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _load(path: Path, model: type[M]) -> M:
    shown = _display(path)
    if not path.is_file():
        raise ConfigError(
            f"{shown}: file not found (set {CONFIG_DIR_ENV} to another config folder)"
        )
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{shown}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: expected a mapping at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(shown, err) for err in exc.errors())) from None


# Keys an earlier version of config/ had: a file upgraded from it is told what became of
# them, not only that they are unknown.
RETIRED_KEYS = {
    "reviews.weekly_dispatch": "renamed reviews.dispatch_sweep (the sweep now runs daily)",
    "authority.escalation_chain": "removed (the chain is emergency.escalation_chain)",
    "emergency.flow_poll_seconds": "moved to emergency.drill.poll_seconds (only the drill "
    "still waits)",
    "emergency.flow_max_wait_minutes": "removed: an emergency-response run no longer waits "
    "for the answers; the every-minute sweep escalates and closes",
}


def _describe(shown: str, err: dict) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden" and key in RETIRED_KEYS:
        return f"{shown}: {key}: {RETIRED_KEYS[key]}"
    if err["type"] == "extra_forbidden":
        return f"{shown}: {key}: unknown key (check the spelling; see the file's comments for allowed keys)"
    if err["type"] == "missing":
        return f"{shown}: {key}: required key is missing"
    got = err.get("input")
    got_txt = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return f"{shown}: {key}: {problem_text(err)}{got_txt}"


@functools.cache
def _cached_policy(path: str, mtime: float) -> Policy:
    return _load(Path(path), Policy)


@functools.cache
def _cached_org(path: str, mtime: float) -> Organisation:
    return _load(Path(path), Organisation)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return -1.0


def load_policy(directory: Path | None = None) -> Policy:
    path = (directory or config_dir()) / "taskforce.yaml"
    return _cached_policy(str(path), _mtime(path))


def load_org(directory: Path | None = None) -> Organisation:
    path = (directory or config_dir()) / "org.yaml"
    return _cached_org(str(path), _mtime(path))


def check_policy_against_org(
    policy: Policy, org: Organisation, directory: Path | None = None
) -> None:
    """What each file is valid on its own but the two disagree on: a group code of
    config/taskforce.yaml that config/org.yaml has no group for (a typo such as `wg-typo` in
    review.conducted_by notified no one). ConfigError, one line per problem."""
    folder = directory or config_dir()
    shown, org_shown = _display(folder / "taskforce.yaml"), _display(folder / "org.yaml")
    groups = sorted(g.code for g in org.groups)
    allowed = ", ".join(groups) + ", or working_group (every working group)"
    problems = [
        f"{shown}: review.conducted_by.{cadence}: {code!r} is not a group of "
        f"{org_shown} (allowed: {allowed})"
        for cadence, codes in policy.review.conducted_by.items()
        for code in codes
        if code != GroupKind.working_group.value and code not in groups
    ]
    if problems:
        raise ConfigError("\n".join(problems))
