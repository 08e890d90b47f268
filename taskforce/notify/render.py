"""Messages from templates (jinja2, en and zh-CN), redacted by classification, cut to size.

A template per event kind, `templates/<locale>/<event_kind>.j2`, with a
`title` and a `body` block; `_default.j2` serves a kind without its own.
A channel not cleared for a record's classification gets `_reference.j2`
instead, rendered from the event kind and the subject reference ONLY: the
record's title and context never reach that template, so they cannot leak (an
emergency page adds its urgency, in values from closed sets: `_urgency`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, get_args

import jinja2

from taskforce.money import MoneyError, format_yuan_alike, to_fen
from taskforce.org.names import owner_names
from taskforce.policy.loader import parse_yaml
from taskforce.policy.schema import Classification, LevelName, Notifications
from taskforce.reports.i18n import translator

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LOCALES = ("en", "zh-CN")
ELLIPSIS = "…"
# 公开 / 内部 / 秘密, the work plan's three levels: the reports' own terms (audience.*).
_CLASSIFICATION_ZH = {c: translator("zh-CN")(f"audience.{c.value}") for c in Classification}


class MessageSource(Protocol):
    """What rendering needs of an outbox row."""

    event_kind: str
    audience: str
    subject_type: str
    subject_id: str
    classification: Classification
    context: dict[str, Any]
    is_drill: bool


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str
    redacted: bool


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=False,  # plain text for chat, SMS and mail; nothing is HTML
        undefined=jinja2.ChainableUndefined,  # a missing context value renders empty
        keep_trailing_newline=False,
    )
    env.filters["yuan"] = _yuan
    env.filters["yuan_alike"] = _yuan_alike
    return env


def _yuan_alike(amounts: list, locale: str) -> list[str]:
    """`{% set a = [total, reserve]|yuan_alike(locale) %}`: amounts of yuan a context carries
    as text ("86000000.00"), written as the reports write them (8,600万元, CNY 86,000,000.00)
    and in one unit for one sentence (money.format_yuan_alike). Text that is no amount shows
    as it is: a message is never lost to its formatting."""
    try:
        fens = [to_fen(a if isinstance(a, str | int) else str(a)) for a in amounts]
    except MoneyError:
        return [f"{a} 元" if locale == "zh-CN" else f"CNY {a}" for a in amounts]
    return format_yuan_alike(fens, locale)


def _yuan(amount: Any, locale: str) -> str:
    """`{{ amount|yuan(locale) }}`: one amount, as `yuan_alike` writes it."""
    return _yuan_alike([amount], locale)[0]


@functools.cache
def labels(locale: str) -> dict[str, str]:
    return parse_yaml((TEMPLATES_DIR / locale / "labels.yaml").read_text(encoding="utf-8"))


@functools.cache
def _terms(locale: str):
    return translator(locale)


@functools.cache
def _names(locale: str):
    def name(code: str) -> str:
        # Read when a template asks (config/org.yaml, cached by its mtime), so a renamed
        # group reads as renamed.
        return owner_names(locale).get(code, code)

    return name


def _template(locale: str, name: str) -> jinja2.Template:
    env = _environment()
    try:
        return env.get_template(f"{locale}/{name}.j2")
    except jinja2.TemplateNotFound:
        return env.get_template(f"{locale}/_default.j2")


def _block(template: jinja2.Template, name: str, variables: dict[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(variables)))


def render_message(
    message: MessageSource,
    *,
    clearance: Classification,
    locale: str,
    limits: Notifications,
) -> Rendered:
    """The title and body one channel of `clearance` receives for `message`."""
    if locale not in LOCALES:
        raise ValueError(f"locale {locale!r} has no templates (allowed: {', '.join(LOCALES)})")
    names = labels(locale)
    label = names.get(message.event_kind, message.event_kind)
    subject = names.get("_subjects", {}).get(message.subject_type, message.subject_type)
    ref = f"{subject} {message.subject_id}"
    redacted = not message.classification.readable_by(clearance)
    if redacted:
        # Only these values: nothing of the record's title or context.
        variables: dict[str, Any] = {
            "label": label,
            "ref": ref,
            "subject_type": subject,
            "subject_id": message.subject_id,
            "classification": message.classification.value,
            "classification_zh": _CLASSIFICATION_ZH[message.classification],
            **_urgency(message),
        }
        template = _environment().get_template(f"{locale}/_reference.j2")
    else:
        variables = {
            **{k: v for k, v in (message.context or {}).items() if isinstance(k, str)},
            "label": label,
            "ref": (message.context or {}).get("number") or ref,
            "audience": message.audience,
            "subject_type": message.subject_type,
            "subject_id": message.subject_id,
            "classification": message.classification.value,
            # The reports' own terms for the codes a context carries (stage, outcome, colour,
            # status), so a message never shows a raw code: t("stage." ~ stage).
            "t": _terms(locale),
            # A group or unit as its readers name it (config/org.yaml), not by its code.
            "group_name": _names(locale),
        }
        template = _template(locale, message.event_kind)
    title = _tidy_title(_block(template, "title", variables))
    body = _tidy_body(_block(template, "body", variables))
    if message.is_drill:
        title = f"{names['_drill']} {title}"
    return Rendered(
        title=cut(title, limits.title_max_chars),
        body=cut(body or title, limits.body_max_chars),
        redacted=redacted,
    )


# The policy's level names (notify does not import the emergency package).
_LEVELS = frozenset(get_args(LevelName))


def _urgency(message: MessageSource) -> dict[str, Any]:
    """How urgent a page is, for its reference: its level, the minutes to acknowledge and
    which page this is. Values from closed sets only (a level name, whole numbers), checked
    here, so no text of the record can pass through: a secret level-I page must still read
    as one to an on-call member whose channel may not carry its content."""
    if message.event_kind != "emergency_page":
        return {}
    context = message.context or {}
    facts: dict[str, Any] = {}
    if context.get("level") in _LEVELS:
        facts["level"] = context["level"]
    for key in ("ack_within_minutes", "page_number"):
        value = context.get(key)
        if type(value) is int and 0 < value < 100_000:
            facts[key] = value
    return facts


def cut(text: str, limit: int) -> str:
    """At most `limit` characters; a cut text ends with an ellipsis so readers see it was cut."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _tidy_title(text: str) -> str:
    text = " ".join(text.split())
    return text.rstrip(":： ").strip()


def _tidy_body(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
