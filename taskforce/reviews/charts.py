"""The charts of a review, drawn from its KPIs (aggregates only: no record text)."""

from __future__ import annotations

import pandas as pd
from matplotlib.ticker import MaxNLocator

from taskforce.kpi.compute import BY_CODE, KpiSet, approved_budget_fen
from taskforce.kpi.frames import Frames
from taskforce.policy.schema import Policy
from taskforce.reports.charts import (
    PALETTE,
    bar_chart,
    fit_margins,
    line_chart,
    matrix_chart,
    new_figure,
    relabelled,
    small_multiples,
    styled,
    svg_chart,
)
from taskforce.reports.i18n import Translate
from taskforce.reviews.periods import Period, ReviewKind, parse_period, share_of_year


def _display(value: float | None, unit: str) -> float | None:
    if value is None:
        return None
    return value * 100 if unit == "ratio" else value


def colour_chart(current: KpiSet, t: Translate) -> str:
    colours = current.details.get("colours", {})
    order = ["green", "yellow", "red"]
    return bar_chart(
        [t(f"colour.{c}") for c in order],
        [colours.get(c, 0) for c in order],
        chart_id="chart-colours",
        title=t("section.colours"),
        colours=[PALETTE[c] for c in order],
    )


def trend_chart(history: list[KpiSet], t: Translate) -> str:
    return trend_charts(history, {"": t})[""]


def trend_charts(history: list[KpiSet], translators: dict[str, Translate]) -> dict[str, str]:
    """The trend chart (a panel per KPI) of each locale, drawn once.

    The locales' charts differ only in the panels' titles: the grid is fixed and a title is
    centred on its panel whatever its length, so the chart is drawn with placeholder titles
    and each locale's titles are put in their place (the same SVG as drawing it per locale;
    tests/reports compare the two). The 20 panels are the most expensive chart of a review.
    """
    labels = [h.period for h in history]
    codes = list(history[-1].kpis)
    panels = []
    for i, (code, kpi) in enumerate(history[-1].kpis.items()):
        unit = BY_CODE[code].unit
        values = [_display(h.kpis[code].value, unit) for h in history]
        panels.append((_placeholder(i), values, _display(kpi.target, unit)))
    title = _placeholder(len(panels))
    svg = small_multiples(labels, panels, chart_id="chart-trend", title=title, columns=4)
    out = {}
    for locale, t in translators.items():
        names = [
            t(f"kpi.{code}") + (" %" if BY_CODE[code].unit == "ratio" else "") for code in codes
        ]
        out[locale] = relabelled(
            svg, {_placeholder(i): name for i, name in enumerate([*names, t("section.trend")])}
        )
    return out


def _placeholder(index: int) -> str:
    return f"TFLABEL{index:03d}X"  # plain ASCII: written into the SVG as it is


def burndown_rows(frames: Frames, period: Period, current: KpiSet, timezone: str) -> list[dict]:
    """The fiscal year's execution month by month, up to the period's end: the budget
    approved by each month's end (by the period's end in its own month), the spending to
    then, and the even pace — what would have been spent of that budget at the share of the
    year elapsed. All three on the same base, month by month: lines approved in June are
    neither "remaining" nor "behind pace" in March.
    """
    year = current.details["budget"]["year"]
    ledger = frames.ledger
    spent = ledger[
        (ledger.fiscal_year == year)
        & (ledger.kind == "disbursement")
        & (ledger.entry_date <= pd.Timestamp(period.last_day))
    ]
    by_month = spent.groupby(spent.entry_date.dt.month).amount_fen.sum()
    period_ends = pd.Timestamp(period.ends_at(timezone))
    rows, cumulative = [], 0
    for month in range(1, period.last_day.month + 1):
        cumulative += int(by_month.get(month, 0))
        whole_month = parse_period(ReviewKind.monthly, f"{year}-{month:02d}")
        until = min(pd.Timestamp(whole_month.ends_at(timezone)), period_ends)
        approved = approved_budget_fen(frames, year, until)
        elapsed = share_of_year(min(whole_month.last_day, period.last_day))
        rows.append(
            {
                "month": f"{year}-{month:02d}",
                "approved_fen": approved,
                "spent_fen": cumulative,
                "remaining_fen": approved - cumulative,
                # A pace, not an amount: to the thousand yuan (100,000 fen).
                "ideal_fen": round(approved * elapsed / 100_000) * 100_000,
            }
        )
    return rows


def burndown_chart(rows: list[dict], t: Translate) -> str:
    to_10k = 1_000_000  # fen per 10,000 yuan (万元): the unit budget tables use
    year = rows[0]["month"][:4] if rows else ""
    return line_chart(
        [r["month"][5:] for r in rows],
        {
            t("approved"): [r["approved_fen"] / to_10k for r in rows],
            t("spent"): [r["spent_fen"] / to_10k for r in rows],
            t("ideal"): [r["ideal_fen"] / to_10k for r in rows],
        },
        chart_id="chart-burndown",
        title=f"{t('section.burndown')} {year}".strip(),
        ylabel="万元" if t("lang") == "zh-CN" else "CNY 10k",
        xlabel=t("axis.month_of", year=year),
        colours={
            t("approved"): PALETTE["blue"],
            t("spent"): PALETTE["orange"],
            t("ideal"): PALETTE["grey"],
        },
        dashed=[t("ideal")],
    )


@styled
def funnel_chart(stages: list[dict], t: Translate) -> str:
    fig = new_figure(6.4, 2.8, layout=None)
    ax = fig.add_subplot()
    names = [t(f"stage.{s['stage']}") for s in stages][::-1]
    opened = [s["open"] for s in stages][::-1]
    late = [s["overdue"] for s in stages][::-1]
    bars = ax.barh(names, opened, color=PALETTE["blue"], label=t("open"))
    over = ax.barh(names, late, color=PALETTE["red"], label=t("overdue"))
    ax.bar_label(bars, padding=2)
    # A stage with nothing overdue has a zero-width red bar: its centred label would be a
    # white "0" on the axis line, so it gets none.
    ax.bar_label(
        over, labels=[str(n) if n else "" for n in late], label_type="center", color="white"
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="lower right", frameon=False)
    fit_margins(fig, ax)
    return svg_chart(fig, chart_id="chart-funnel", title=t("section.funnel"))


def risk_matrix(risks: list[dict], policy: Policy, t: Translate) -> str:
    size = policy.risk.matrix_size
    cells: dict[tuple[int, int], list[str]] = {}
    off: list[str] = []  # rated on a larger matrix before config shrank it: named, not lost
    for r in risks:
        if r["probability"] > size or r["impact"] > size:
            off.append(r["code"])
        cells.setdefault((r["probability"], r["impact"]), []).append(r["code"])
    xlabel = t("axis.impact")
    if off:
        xlabel += "\n" + t("risk.off_matrix", size=size, codes=", ".join(sorted(off)))
    return matrix_chart(
        size,
        cells,
        dict(policy.risk.warning_thresholds),
        chart_id="chart-risk-matrix",
        title=t("section.risk_matrix"),
        xlabel=xlabel,
        ylabel=t("axis.probability"),
    )
