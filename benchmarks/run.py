"""Run the performance suite of issue 9 and print the table.

    python -m benchmarks.run [--quick | --scale F] [--db sqlite|postgresql] [--seed N]
                             [--only sweep,trail] [--no-deployments] [--json out.json]

Generates the seeded dataset (or reuses the one already generated for the same
seed, scale and backend), copies it for this run, runs each figure with its
baseline measured in the same run, and prints: figure, ours, baseline, ratio,
goal, met?, and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import databases, figures
from benchmarks.core import Bench, Result
from benchmarks.dataset import NOW, QUICK_SCALE, Scale, ensure
from benchmarks.machine import describe


def _fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "—"
    return f"{value:.3f} {unit}" if value < 10 else f"{value:.1f} {unit}"


def render(results: list[Result], machine: dict, header: str, console: Console) -> None:
    table = Table(title=header, show_lines=False)
    for col in ("figure", "ours", "baseline", "ratio", "goal", "met?"):
        table.add_column(col)
    for r in results:
        met = "—" if r.met is None else ("yes" if r.met else "NO")
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
        table.add_row(r.figure, _fmt(r.ours, r.unit), _fmt(r.baseline, r.unit), ratio, r.goal, met)
    console.print(table)
    for r in results:
        if r.notes:
            console.print(f"  [dim]{r.figure}:[/dim] {r.notes}")
    console.print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))


def markdown(results: list[Result], machine: dict, header: str) -> str:
    lines = [
        f"**{header}**",
        "",
        "| figure | ours | baseline | ratio | goal | met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(
            f"| {r.figure} | {_fmt(r.ours, r.unit)} | {_fmt(r.baseline, r.unit)} | {ratio} "
            f"| {r.goal} | {met} |"
        )
    lines += ["", *[f"- {r.figure}: {r.notes}" for r in results if r.notes], ""]
    lines.append("Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    return "\n".join(lines)


def _isolate_prefect() -> None:
    """Prefect reads PREFECT_HOME once, at import: point it at a scratch folder first.

    (Under pytest, conftest.py has done this already and Prefect is imported.)
    """
    if "prefect" in sys.modules:
        return
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="taskforce-bench-prefect-")
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # loopback only, no telemetry
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def main(argv: list[str] | None = None) -> list[Result]:
    _isolate_prefect()
    parser = argparse.ArgumentParser(description="The performance suite of issue 9.")
    parser.add_argument("--quick", action="store_true", help=f"scale {QUICK_SCALE} (seconds)")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = the issue's full size")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--only", default="", help="comma-separated figures: " + ",".join(figures.FIGURES)
    )
    parser.add_argument(
        "--no-deployments", action="store_true", help="skip the served-deployment runs"
    )
    parser.add_argument(
        "--deployments",
        action="store_true",
        help="run the served-deployment runs even with --quick (which skips them to stay "
        "under a minute)",
    )
    parser.add_argument("--regenerate", action="store_true", help="generate the dataset again")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    args = parser.parse_args(argv)
    wanted = [f for f in (args.only.split(",") if args.only else figures.FIGURES) if f]
    unknown = sorted(set(wanted) - set(figures.FIGURES))
    if unknown:
        parser.error(
            f"--only: unknown figure(s) {', '.join(unknown)}; allowed: {', '.join(figures.FIGURES)}"
        )
    for out in (args.json, args.markdown):  # fail now, not after a long run
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)

    console = Console(width=max(Console().width, 140))
    scale = Scale(QUICK_SCALE if args.quick else args.scale, args.seed)
    if args.regenerate:
        databases.drop(args.db, f"data-{scale.key}")
    pristine, counts, generation = ensure(args.db, scale, console.print)
    # One copy per process: runs started at the same time (several sessions, one machine)
    # must never write to, or drop, each other's copy.
    copy_name = f"run-{scale.key}-{os.getpid()}"
    url, engine = databases.working_copy(args.db, pristine, copy_name)
    previous_url = os.environ.get("TASKFORCE_DATABASE_URL")
    os.environ["TASKFORCE_DATABASE_URL"] = url  # flows and their child processes use this copy

    from taskforce.clock import ManualClock, SystemClock
    from taskforce.context import Context, use_clock
    from taskforce.policy import load_policy

    clock = ManualClock(NOW)
    use_clock(clock)  # in-process flows see the scene's "now" too
    workdir = Path(tempfile.mkdtemp(prefix="taskforce-bench-"))
    bench = Bench(
        backend=args.db,
        url=url,
        engine=engine,
        scale=scale.factor,
        counts=counts,
        ctx=Context(policy=load_policy(), clock=clock),
        workdir=workdir,
        status=lambda line: console.print(f"[cyan]→[/cyan] {line}"),
    )
    results: list[Result] = []
    try:
        for name in wanted:
            module = figures.load(name)
            deployments = args.deployments or not (args.no_deployments or args.quick)
            if name == "loop_step":
                results += module.run(bench, deployments=deployments)
            elif name == "emergency_path" and not deployments:
                console.print("[yellow]emergency_path skipped: it runs deployments[/yellow]")
            else:
                results += module.run(bench)
    finally:
        engine.dispose()
        databases.drop(args.db, copy_name)  # the copy is as large as the dataset
        shutil.rmtree(workdir, ignore_errors=True)
        use_clock(SystemClock())
        if previous_url is None:
            os.environ.pop("TASKFORCE_DATABASE_URL", None)
        else:
            os.environ["TASKFORCE_DATABASE_URL"] = previous_url
    machine = describe(databases._admin() if args.db == "postgresql" else None)
    if args.db == "sqlite":
        machine |= {"postgresql": describe(databases._admin()).get("postgresql", "?")}
    header = (
        f"{args.db}, scale {scale.factor:g} (seed {scale.seed}): "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + (f"; dataset generated in {generation:.0f} s" if generation else "; dataset reused")
    )
    render(results, machine, header, console)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "argv": sys.argv,
                    "machine": machine,
                    "counts": counts,
                    "generation_seconds": generation,
                    "results": [r.__dict__ for r in results],
                },
                indent=2,
                default=str,
                ensure_ascii=False,
            )
        )
    if args.markdown:
        args.markdown.write_text(markdown(results, machine, header) + "\n")
    return results


if __name__ == "__main__":
    main()
