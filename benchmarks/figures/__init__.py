"""One module per figure of issue 9. Each has `NAME` and `run(bench) -> list[Result]`.

Figures whose code lands later (gateway intake, emergency path, quarterly review,
budget-ledger import) plug in by adding a module here and its name to `FIGURES`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FIGURES = [
    "sweep",  # dispatch sweep vs one SELECT into pandas; second run as % of the first
    "trail",  # trail verification vs reading and hashing the same rows in a bare loop
    "ledger_import",  # issue-ledger import from CSV and XLSX vs pandas read + to_sql
    "budget_import",  # budget-ledger import of 100,000 rows, CSV and XLSX vs read_* + to_sql
    "quarterly_review",  # KPIs + charts + HTML + XLSX vs the same KPIs in one pandas script
    "loop_step",  # report-issue as a flow call / deployment run vs an empty one (needs Prefect)
    "gateway",  # webhooks/s and p99 to 202 under 32 clients vs an empty endpoint, same server
    "emergency_path",  # webhook -> first page at a loopback receiver vs an empty flow run
]


def load(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.figures.{name}")
