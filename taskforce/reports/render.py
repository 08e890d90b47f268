"""Render a report from reports/templates/: the same content as self-contained HTML and as Markdown.

    files = render_report("review", context, "zh-CN", Classification.internal, out_dir)
    # {"html": out_dir/review.zh-CN.internal.html, "md": out_dir/review.zh-CN.internal.md}

A template `<name>` is the pair `<name>.html.j2` / `<name>.md.j2`; HTML
templates extend `_base.html.j2` (print CSS, no external scripts or fonts).
The context is checked before rendering: a record whose `classification` is
above the audience stops the render (`NotCleared`), so no file is written.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from taskforce.money import format_yuan, format_yuan_alike
from taskforce.policy.schema import Classification
from taskforce.reports.audience import assert_cleared
from taskforce.reports.i18n import TEMPLATES_DIR, translator


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_number(value, digits: int = 1) -> str:
    if _missing(value):
        return "—"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and digits <= 1):
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def fmt_percent(value, digits: int = 1) -> str:
    return "—" if _missing(value) else f"{value * 100:.{digits}f}%"


def fmt_kpi(value, unit: str) -> str:
    """A KPI's value in its unit: ratios as percent, the rest as numbers."""
    if unit == "ratio":
        return fmt_percent(value)
    if unit == "times":
        return "—" if _missing(value) else f"{value:.2f}"
    if unit == "count":
        return fmt_number(value, 0)
    return fmt_number(value, 1)


def md_cell(value) -> str:
    """Text safe inside a Markdown table cell."""
    text = "—" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


@functools.cache
def _environment(templates_dir: Path, html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        number=fmt_number,
        percent=fmt_percent,
        kpi=fmt_kpi,
        md=md_cell,
        yuan=lambda fen, locale="zh-CN": "—" if fen is None else format_yuan(int(fen), locale),
        # [a, b] | yuan_alike(locale): amounts of one sentence in one unit.
        yuan_alike=lambda fens, locale="zh-CN": format_yuan_alike(
            [int(f or 0) for f in fens], locale
        ),
        decimal=lambda v: str(Decimal(v)),
    )
    return env


def render_report(
    template: str,
    context: dict[str, Any],
    locale: str,
    audience: Classification | str,
    out_dir: Path,
    *,
    stem: str | None = None,
    templates_dir: Path = TEMPLATES_DIR,
) -> dict[str, Path]:
    """Write `<stem>.<locale>.<audience>.html` and `.md` into out_dir; returns {"html": …, "md": …}.

    The context may hold `charts`: {chart_id: svg markup from taskforce.reports.charts};
    they are inlined as they are (the only unescaped content).
    """
    audience = Classification(audience)
    assert_cleared(context, audience)
    t = translator(locale, templates_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or template
    base = {
        **context,
        "t": t,
        "locale": locale,
        "audience": audience.value,
        "charts": {k: Markup(v) for k, v in context.get("charts", {}).items()},
    }
    files = {}
    for fmt, html in (("html", True), ("md", False)):
        env = _environment(Path(templates_dir), html)
        text = env.get_template(f"{template}.{fmt}.j2").render(**base)
        path = out_dir / f"{stem}.{locale}.{audience.value}.{fmt}"
        path.write_text(text, encoding="utf-8")
        files[fmt] = path
    return files
