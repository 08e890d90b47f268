"""Action-item colours (SPEC §2.4 执行反馈): green on track, yellow behind or due soon, red overdue.

One rule, two shapes: `colour_of` for a single item and `colours_frame` for a
whole pandas frame in the dispatch sweep. A property test keeps them equal.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from taskforce.loop.models import Colour
from taskforce.policy.schema import Progress


def expected_percent(start: dt.date, due: dt.date, today: dt.date) -> float:
    """Time-proportional progress expected by `today` (0–100)."""
    span = (due - start).days
    if span <= 0:
        return 100.0 if today >= due else 0.0
    return float(min(100.0, max(0.0, (today - start).days * 100.0 / span)))


def colour_of(
    *, percent: int, done: bool, start: dt.date, due: dt.date, today: dt.date, rules: Progress
) -> Colour:
    if done:
        return Colour.green
    if today > due:
        return Colour.red  # 超期: due "by the end of" the due date
    if (due - today).days <= rules.yellow_due_within_days:
        return Colour.yellow
    if expected_percent(start, due, today) - percent >= rules.yellow_behind_expected_points:
        return Colour.yellow
    return Colour.green


def colours_frame(frame: pd.DataFrame, today: dt.date, rules: Progress) -> pd.Series:
    """Vectorised colour_of over columns percent, done, start_date, due_date."""
    start = pd.to_datetime(frame["start_date"]).to_numpy("datetime64[D]")
    due = pd.to_datetime(frame["due_date"]).to_numpy("datetime64[D]")
    now = np.datetime64(today, "D")
    span = (due - start).astype("int64")
    elapsed = (now - start).astype("int64")
    with np.errstate(divide="ignore", invalid="ignore"):
        proportional = np.clip(elapsed * 100.0 / np.where(span > 0, span, 1), 0.0, 100.0)
    expected = np.where(span > 0, proportional, np.where(now >= due, 100.0, 0.0))
    days_left = (due - now).astype("int64")
    percent = frame["percent"].to_numpy("float64")
    done = frame["done"].to_numpy(bool)
    red = ~done & (days_left < 0)
    yellow = (
        ~done
        & ~red
        & (
            (days_left <= rules.yellow_due_within_days)
            | (expected - percent >= rules.yellow_behind_expected_points)
        )
    )
    out = np.where(red, Colour.red.value, np.where(yellow, Colour.yellow.value, Colour.green.value))
    return pd.Series(out, index=frame.index, name="colour")
