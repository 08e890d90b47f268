"""Issue-ledger (台账) import from CSV and XLSX, against `pandas.read_*` + `to_sql` of the same rows.

Ours validates each row, finds duplicates among open issues and reports each
valid row as its own transaction (trail entry and outbox rows included), so one
bad row loses nothing else; the baseline only reads and bulk-writes the cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.core import Bench, Result, timed
from benchmarks.dataset import PLACES, PROBLEMS, TOPICS
from taskforce.db import session_factory
from taskforce.loop.ledger_import import import_ledger

NAME = "ledger_import"
ROWS_AT_FULL_SCALE = 1_000
GOAL_RATIO = 2.0
UNITS = ["finance", "commerce", "market-reg", "data-bureau", "tax", "housing"]


def rows_for(scale: float) -> int:
    return max(20, round(ROWS_AT_FULL_SCALE * scale))


def ledger_frame(n: int, prefix: str, seed: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pick = lambda words: np.array(words)[rng.integers(0, len(words), n)]  # noqa: E731
    return pd.DataFrame(
        {
            "编号": [f"{prefix}-{i:06d}" for i in range(1, n + 1)],
            "标题": [
                f"{a}{b}{c}（台账{prefix}{i}）"
                for i, (a, b, c) in enumerate(
                    zip(pick(PLACES), pick(TOPICS), pick(PROBLEMS), strict=True), 1
                )
            ],
            "问题描述": ["历史台账导入"] * n,
            "上报单位": pick(UNITS),
            "类别": pick(["approval", "data", "finance", "general"]),
            "密级": pick(["public", "internal"]),
            "预估经费": [f"{x}.00" for x in rng.integers(0, 100_000, n)],
        }
    )


def run(bench: Bench) -> list[Result]:
    n = rows_for(bench.scale)
    csv_path, xlsx_path = bench.workdir / "ledger.csv", bench.workdir / "ledger.xlsx"
    ledger_frame(n, "CSV").to_csv(csv_path, index=False)
    ledger_frame(n, "XLSX", seed=10).to_excel(xlsx_path, index=False, engine="openpyxl")
    factory = session_factory(bench.engine)
    results = []
    for label, path, reader in (
        ("CSV", csv_path, lambda p: pd.read_csv(p, dtype=str, keep_default_na=False)),
        ("XLSX", xlsx_path, lambda p: pd.read_excel(p, dtype=str, engine="openpyxl")),
    ):
        bench.status(f"ledger import: baseline {label}")
        base, _ = timed(
            lambda p=path, r=reader: r(p).to_sql(
                "bench_ledger_baseline", bench.engine, if_exists="replace", index=False
            )
        )
        bench.status(f"ledger import: {n:,} rows from {label}")
        ours, outcome = timed(
            lambda p=path: import_ledger(factory, bench.ctx, p, actor="bench-import")
        )
        results.append(
            Result(
                f"issue-ledger import, {n:,} rows, {label}",
                ours,
                base,
                goal=f"ratio ≤ {GOAL_RATIO:g} (the budget ledger's; for reference)",
                met=ours / base <= GOAL_RATIO,
                notes=f"imported {len(outcome.imported):,}, duplicates linked "
                f"{len(outcome.linked_duplicates):,}, errors {len(outcome.errors)}; "
                f"{ours / n * 1000:.1f} ms per row",
                extra={"rows": n, "imported": len(outcome.imported)},
            )
        )
    with bench.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_ledger_baseline")
    return results
