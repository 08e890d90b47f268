"""Action-item colours (SPEC §2.4 执行反馈): green on track, yellow behind or due soon, red overdue.

One rule, two shapes: `colour_of` for a single item and `colours_frame` for a
whole pandas frame in the dispatch sweep. A property test keeps them equal.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from taskforce.clock import local_date
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


# The colour of an open item that is red stays red whatever the date: only a progress report
# (done → green) or a changed plan changes it. Stored as this date so that NULL can keep
# meaning "unknown, recompute" (see TaskNode.next_colour_change_on).
NEVER = dt.date(9999, 12, 31)


def _behind_from_offset(percent: int, span: int, rules: Progress) -> int | None:
    """Days after the start from which the time-proportional line is at least
    `yellow_behind_expected_points` ahead of `percent`, or None if it never is.

    `expected - percent >= points` with expected = clip(elapsed * 100 / span, 0, 100) holds
    exactly when elapsed * 100 >= (percent + points) * span, for a threshold in (0, 100]:
    integers, so no float boundary can differ from `colour_of` (a float quotient of integers
    rounds to an integer only when it is one)."""
    threshold = percent + rules.yellow_behind_expected_points
    if span <= 0 or threshold <= 0 or threshold > 100:
        return None  # flat line (start on/after due), always behind, or never behind
    return -(-threshold * span // 100)  # ceil


def next_colour_change(
    *, percent: int, done: bool, start: dt.date, due: dt.date, today: dt.date, rules: Progress
) -> dt.date | None:
    """The first day after `today` on which `colour_of` gives a colour other than today's.

    The rule is monotone in the date: green, then yellow (behind the line, or due within the
    window), then red after the due day. So a green item changes on the earlier of the day
    it falls behind and the first day of the due window; a yellow item on due + 1; a red item
    never (NEVER). A done item never changes and is not swept: None.
    """
    if done:
        return None
    now = colour_of(percent=percent, done=False, start=start, due=due, today=today, rules=rules)
    if now == Colour.red:
        return NEVER
    if now == Colour.yellow:
        return due + dt.timedelta(days=1)
    change = due - dt.timedelta(days=rules.yellow_due_within_days)
    offset = _behind_from_offset(percent, (due - start).days, rules)
    if offset is not None:
        change = min(change, start + dt.timedelta(days=offset))
    return change


def next_colour_change_frame(
    frame: pd.DataFrame, today: dt.date, rules: Progress, colours: pd.Series | None = None
) -> pd.Series:
    """Vectorised next_colour_change over columns percent, done, start_date, due_date
    (datetime64[D] values; NaT where done). `colours` are those of `today` if already known."""
    if colours is None:
        colours = colours_frame(frame, today, rules)
    start = pd.to_datetime(frame["start_date"]).to_numpy("datetime64[D]")
    due = pd.to_datetime(frame["due_date"]).to_numpy("datetime64[D]")
    percent = frame["percent"].to_numpy("int64")
    done = frame["done"].to_numpy(bool)
    colour = np.asarray(colours)
    span = (due - start).astype("int64")
    threshold = percent + rules.yellow_behind_expected_points
    behind_possible = (span > 0) & (threshold > 0) & (threshold <= 100)
    offset = -(-threshold * np.where(behind_possible, span, 0) // 100)
    window_start = due - np.timedelta64(rules.yellow_due_within_days, "D")
    behind_day = start + offset.astype("timedelta64[D]")
    green_change = np.where(behind_possible, np.minimum(window_start, behind_day), window_start)
    out = np.where(
        colour == Colour.red.value,
        np.datetime64(NEVER, "D"),
        np.where(colour == Colour.yellow.value, due + np.timedelta64(1, "D"), green_change),
    ).astype("datetime64[D]")
    out[done] = np.datetime64("NaT", "D")
    return pd.Series(out, index=frame.index, name="next_colour_change_on")


def next_red_step_on(
    *,
    colour: Colour,
    colour_since: dt.datetime | None,
    interview_requested_at: dt.datetime | None,
    escalated_at: dt.datetime | None,
    today: dt.date,
    rules: Progress,
    timezone: str,
) -> dt.date | None:
    """The local day the next step for a red item falls due (SPEC §2.4: red → interview 约谈
    at once → escalation once red for `red_escalation_days`), or None if none is pending."""
    if colour != Colour.red:
        return None
    if interview_requested_at is None:
        return today
    if escalated_at is None and colour_since is not None:
        return local_date(colour_since + dt.timedelta(days=rules.red_escalation_days), timezone)
    return None
