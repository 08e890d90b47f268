"""Bulk import of budget-ledger (资金台账) rows from a finance export, CSV and XLSX, against
`pandas.read_csv`/`read_excel` + `to_sql` of the same rows into the same table.

Ours is `taskforce.budget.ledger.import_file`, the function behind `taskforce budget
import-ledger` and the `budget-ledger-import` flow: it reads the export, maps its headers,
validates every row (date in a budgeted year, exact amount in fen, known line of that
year, known emergency), computes each row's external_ref, skips the refs already on the
ledger, inserts the rest and records one summarising trail entry + outbox rows, all in one
transaction. The baseline reads the same file and appends its cells to `ledger_entry` with
`to_sql` (after renaming the columns and taking each line's id from a prefetched map, so it
writes the same rows) — no validation, no idempotency, no trail.

The file references existing budget lines of the dataset (matching fiscal year), has fresh
voucher numbers (so every row is new), and is generated seeded in the run's workdir.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import text

from benchmarks.core import Bench, Result, timed
from taskforce.budget.ledger import import_file
from taskforce.db import unit_of_work

NAME = "budget_import"
ROWS_AT_FULL_SCALE = 100_000
GOAL_RATIO = 2.0


def rows_for(scale: float) -> int:
    return max(100, round(ROWS_AT_FULL_SCALE * scale))


def _lines(bench: Bench) -> pd.DataFrame:
    """Non-reserve budget lines with a fiscal year that has a budget."""
    with bench.engine.connect() as conn:
        return pd.read_sql(
            text(
                "SELECT l.id, l.code, l.fiscal_year FROM budget_line l "
                "JOIN fiscal_year y ON y.year = l.fiscal_year "
                "WHERE NOT l.is_reserve ORDER BY l.id"
            ),
            conn,
        )


def export_frame(lines: pd.DataFrame, n: int, prefix: str, seed: int) -> pd.DataFrame:
    """A finance export: voucher, date, line code, amount (yuan, two decimals), payee, memo."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(lines), n)
    year = lines.fiscal_year.to_numpy()[pick]
    day = rng.integers(0, 365, n)
    dates = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + day.astype(
        "timedelta64[D]"
    )
    # Keep 31 Dec of a leap year in its own year.
    dates = np.minimum(dates, (year + 1 - 1970).astype("datetime64[Y]").astype("datetime64[D]") - 1)
    fen = rng.integers(100_00, 2_000_000_00, n)
    return pd.DataFrame(
        {
            "凭证号": [f"{prefix}-{i:07d}" for i in range(1, n + 1)],
            "日期": np.datetime_as_string(dates),
            "预算行编号": lines.code.to_numpy()[pick],
            "金额": [f"{f // 100}.{f % 100:02d}" for f in fen.tolist()],
            "收款单位": rng.choice([f"供应商{i:03d}" for i in range(1, 401)], n),
            "摘要": ["专项拨付"] * n,
        }
    )


def _baseline(bench: Bench, frame: pd.DataFrame, line_ids: dict[str, int], now) -> None:
    """What a clerk's script would do: rename the cells, look up line ids, append."""
    out = pd.DataFrame(
        {
            "fiscal_year": pd.to_datetime(frame["日期"]).dt.year,
            "line_id": frame["预算行编号"].map(line_ids),
            "kind": "disbursement",
            "entry_date": pd.to_datetime(frame["日期"]).dt.date,
            "amount_fen": (frame["金额"].astype(float) * 100).round().astype("int64"),
            "payee": frame["收款单位"],
            "description": frame["摘要"],
            "external_ref": "voucher:" + frame["凭证号"].astype(str),
            "created_at": now,
        }
    )
    with bench.engine.begin() as conn:
        out.to_sql("ledger_entry", conn, if_exists="append", index=False, chunksize=20_000)


def run(bench: Bench) -> list[Result]:
    n = rows_for(bench.scale)
    lines = _lines(bench)
    line_ids = dict(zip(lines.code, lines.id, strict=True))
    now = bench.ctx.now().replace(tzinfo=None)
    results = []
    for label, suffix, seed in (("CSV", "csv", 11), ("XLSX", "xlsx", 12)):
        ours_frame = export_frame(lines, n, f"IMP{label}", seed)
        base_frame = export_frame(lines, n, f"BASE{label}", seed)
        ours_path = bench.workdir / f"budget-ledger-ours.{suffix}"
        base_path = bench.workdir / f"budget-ledger-base.{suffix}"
        bench.status(f"budget import: writing {n:,}-row {label} exports")
        for frame, path in ((ours_frame, ours_path), (base_frame, base_path)):
            if suffix == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_excel(path, index=False, engine="openpyxl")

        def read(path, suffix=suffix):
            if suffix == "csv":
                return pd.read_csv(path, dtype=str, keep_default_na=False)
            return pd.read_excel(path, dtype=str, engine="openpyxl")

        bench.status(f"budget import: baseline {label} (read + to_sql)")
        base, _ = timed(lambda p=base_path, r=read: _baseline(bench, r(p), line_ids, now))
        bench.status(f"budget import: ours {label} ({n:,} rows)")

        def ours(path=ours_path):
            with unit_of_work(bench.engine) as session:
                return import_file(session, bench.ctx, path, actor="bench-import")

        seconds, outcome = timed(ours)
        again, replay = timed(ours)  # re-import: idempotent, adds nothing
        if outcome.imported != n or outcome.errors or replay.imported != 0:
            raise AssertionError(
                f"budget import {label}: imported {outcome.imported} of {n}, "
                f"errors {outcome.errors[:3]}, re-import added {replay.imported}"
            )
        results.append(
            Result(
                f"budget-ledger import, {n:,} rows, {label}",
                seconds,
                base,
                goal=f"ratio ≤ {GOAL_RATIO:g}",
                met=seconds / base <= GOAL_RATIO,
                notes=f"imported {outcome.imported:,} (¥{outcome.imported_fen / 100:,.2f}), "
                f"errors 0; re-import of the same file {again:.2f} s, added 0; "
                f"{seconds / n * 1e6:.0f} µs per row",
                extra={"rows": n, "reimport_seconds": again},
            )
        )
    return results
