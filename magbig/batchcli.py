"""`magbig batch`: scheduled bias-report jobs (cron, systemd timers, Kubernetes CronJobs).

    magbig batch run configs/jobs/world-weekly.yaml [--date YYYY-MM-DD]
    magbig batch history configs/jobs/world-weekly.yaml [--format table|csv|json]

Exit codes a scheduler can act on: 0 ok, 3 an alert fired, 2 bad input (also: the job is
already running elsewhere), 1 runtime failure, 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from neobabel.clikit import ADDRESS_HELP, ENGINE_HELP, WORKERS_HELP, EngineName, new_app
from neobabel.errors import InputError

batch_app = new_app("Scheduled bias-report jobs: dated audits, trends and alerts (configs/jobs/*.yaml).")

JOB_HELP = "job YAML (configs/jobs/*.yaml) or a shipped job's name"


@batch_app.command("run")
def run(
    job: Annotated[Path, typer.Argument(help=JOB_HELP)],
    date: Annotated[Optional[str], typer.Option("--date", help="the date folder, YYYY-MM-DD (default: today, UTC)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show progress bars")] = False,
    engine: Annotated[EngineName, typer.Option("--engine", help=ENGINE_HELP)] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help=ADDRESS_HELP)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help=WORKERS_HELP)] = None,
):
    """Audit every model of the job for one date; write summary, trend, alerts and report.

    Rerunning a date resumes and rewrites nothing already done. Exit codes: 0 ok, 3 an alert
    fired, 2 bad input or the job already running, 1 failure.

    Example: magbig batch run configs/jobs/world-weekly.yaml --date 2026-01-31
    """
    from magbig.audit import Execution  # heavy: polars
    from magbig.batch import EXIT_ALERT, alerts_summary, load_job, parse_date, run_job  # heavy: polars

    execution = Execution(engine, address, workers)
    spec = load_job(job)
    day = parse_date(date)
    res = run_job(spec, day, progress=progress, execution=execution)
    print(f"job {spec.name} {day}: {res['date_dir']} ({', '.join(res['written']) or 'nothing new written'})")
    if res["alerts"]:
        for line in alerts_summary(res["alerts"]):
            print(f"ALERT {line}")
        print(f"alerts: {res['date_dir'] / 'alerts.json'}", file=sys.stderr)
        return EXIT_ALERT
    return 0


@batch_app.command("history")
def history(
    job: Annotated[Path, typer.Argument(help=JOB_HELP)],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
):
    """Print the job's trend table: one row per date × model × lang × formulation.

    Example: magbig batch history configs/jobs/world-weekly.yaml --format csv
    """
    from magbig.batch import load_job, trend_frame  # heavy: polars

    if fmt not in ("table", "csv", "json"):
        raise InputError(f"--format {fmt!r} is not supported; use table, csv or json")
    spec = load_job(job)
    trend = trend_frame(spec.job_dir())
    if trend.height == 0:
        raise InputError(f"job {spec.name} has no finished dates in {spec.job_dir()}; run it first: "
                         f"magbig batch run {job}")
    if fmt == "csv":
        sys.stdout.write(trend.write_csv())
        return
    if fmt == "json":
        print(json.dumps(trend.to_dicts(), indent=1, ensure_ascii=False))
        return

    def f(x):
        return "–" if x is None else f"{x:.3f}"

    table = Table("date", "model", "lang", "formulation", "mean abs_dev [95% CI]", "face found",
                  title=f"trend of job {spec.name}")
    for r in trend.iter_rows(named=True):
        table.add_row(r["date"], r["model"], r["lang"], r["formulation"],
                      f"{f(r['mean_abs_dev'])} [{f(r['mean_abs_dev_low'])}, {f(r['mean_abs_dev_high'])}]",
                      f(r["face_found_rate"]))
    console = Console()
    (console if console.is_terminal else Console(width=160)).print(table)
