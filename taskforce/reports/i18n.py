"""Report texts in zh-CN and en, from reports/templates/i18n/<locale>.yaml (data, not code)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from taskforce.errors import DomainError
from taskforce.policy.loader import PROJECT_ROOT, parse_yaml

TEMPLATES_DIR = PROJECT_ROOT / "reports" / "templates"
LOCALES = ("zh-CN", "en")

Translate = Callable[..., str]


@functools.cache
def catalogue(locale: str, templates_dir: Path = TEMPLATES_DIR) -> dict[str, str]:
    if locale not in LOCALES:
        raise DomainError(f"unknown locale {locale!r}", field="locale", allowed=", ".join(LOCALES))
    path = templates_dir / "i18n" / f"{locale}.yaml"
    return {str(k): str(v) for k, v in parse_yaml(path.read_text(encoding="utf-8")).items()}


def translator(locale: str, templates_dir: Path = TEMPLATES_DIR) -> Translate:
    """t("kpi.satisfaction") → the text; t("act.title", kpi=...) fills {placeholders}.

    A missing key shows the key itself, so a forgotten translation is visible
    in the report rather than an error in a scheduled run.
    """
    texts = catalogue(locale, templates_dir)

    def t(key: str, /, **values) -> str:
        text = texts.get(key, key)
        return text.format(**values) if values else text

    return t


def zone_words(t: Translate, timezone: str) -> str:
    """北京时间 for Asia/Shanghai, as the office says it; another zone by its name."""
    words = t(f"zone.{timezone}")
    return words if words != f"zone.{timezone}" else t("zone.other", timezone=timezone)
