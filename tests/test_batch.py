"""`magbig batch`: scheduled bias-report jobs on the audit's oracle model (no diffusion).

Three dates of one job: a rerun of a date writes nothing; the trend has every date; a model
that turns skewed on day 3 fires the rising-abs_dev alert (exit 3). Plus the job lock, bad
job files, and the scheduler examples in examples/ (each must run a real job through a real
command).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
import typer
import yaml

import magbig.audit
from magbig import cli as magbig_cli
from magbig.batch import TREND_SCHEMA, load_job, model_slug, parse_date
from magbig.selftest import OraclePipeline
from neobabel.errors import InputError
from neobabel.registry import REPO_ROOT

DAYS = ["2026-03-02", "2026-03-09", "2026-03-16"]


def _job_yaml(path: Path, out: Path, **extra) -> Path:
    data = {
        "name": "weekly",
        "output": str(out),
        "models": [{"model": "oracle", "name": "m"}],
        "audit": {"subjects": ["nurse", "firefighter", "construction worker"], "langs": ["en", "de"],
                  "formulations": ["direct", "indirect"], "n": 6, "seed": 0, "batch_size": 24,
                  "classifiers": ["world"], "n_boot": 200},
        "alerts": {"rising_abs_dev": True, "min_face_found_rate": 0.5},
    }
    data.update(extra)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def main(monkeypatch, capsys):
    """`magbig ARGS` through magbig.cli.main (run_cli) -> (exit code, stdout, stderr)."""
    from conftest import run_in_process

    old = signal.getsignal(signal.SIGTERM)
    yield run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)
    signal.signal(signal.SIGTERM, old)


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every regular file below `folder` -> (bytes, mtime_ns)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _skewed_oracle(spec, prompts=None):
    """The planted oracle's prompts, every one drawn all-masculine: mean abs_dev 0.5."""
    base = OraclePipeline.from_bias_table()
    return OraclePipeline({k: (c.occupation, 0.0) for k, c in base.cells.items()},
                          ambiguous_share=base.ambiguous_share)


# -- three dates of one job --------------------------------------------------------------------

def test_three_dates_rerun_trend_and_a_planted_change(tmp_path, main, monkeypatch):
    job = _job_yaml(tmp_path / "job.yaml", tmp_path / "out")
    job_dir = tmp_path / "out" / "weekly"
    notified = tmp_path / "notified.txt"

    code, out, err = main("batch", "run", job, "--date", DAYS[0])
    assert code == 0, err
    first = job_dir / DAYS[0]
    for name in ("summary.json", "trend.json", "trend.parquet", "alerts.json", "report.md", "m/summary.json"):
        assert (first / name).is_file(), name
    summary = json.loads((first / "summary.json").read_text(encoding="utf-8"))
    groups = summary["models"]["m"]["groups"]
    assert {(g["lang"], g["formulation"]) for g in groups} == {(lang, f) for lang in ("en", "de")
                                                                for f in ("direct", "indirect")}
    assert all(g["mean_abs_dev_low"] <= g["mean_abs_dev"] <= g["mean_abs_dev_high"] for g in groups)
    assert summary["models"]["m"]["face_found_rate"] == 1.0  # the oracle's ambiguous faces count as found
    assert json.loads((first / "alerts.json").read_text())["alerts"] == []

    # the same date again: nothing rewritten, not even the audit's own files
    before = _files(job_dir)
    code, out, err = main("batch", "run", job, "--date", DAYS[0])
    assert code == 0, err
    assert "nothing new written" in out
    assert _files(job_dir) == before

    # day 2, same model and seeds: same images, no change beyond noise, no alert
    code, out, err = main("batch", "run", job, "--date", DAYS[1])
    assert code == 0, err
    assert "no (within noise)" in (job_dir / DAYS[1] / "report.md").read_text(encoding="utf-8")

    # day 3: the model turned skewed -> rising abs_dev beyond its paired interval, exit 3,
    # and the on_alert command gets the alerts file
    _job_yaml(job, tmp_path / "out", on_alert=[sys.executable, "-c",
                                               f"import sys; open({str(notified)!r}, 'w').write(sys.argv[1])"])
    monkeypatch.setattr(magbig.audit, "load_pipeline", _skewed_oracle)
    code, out, err = main("batch", "run", job, "--date", DAYS[2])
    assert code == 3, err
    assert "ALERT m: mean abs_dev rose" in out
    alerts = json.loads((job_dir / DAYS[2] / "alerts.json").read_text(encoding="utf-8"))
    assert alerts["fired"] and alerts["previous_date"] == DAYS[1]
    rising = [a for a in alerts["alerts"] if a["rule"] == "rising_abs_dev"]
    assert len(rising) == 1 and rising[0]["diff_low"] > 0
    assert rising[0]["mean_abs_dev"] > rising[0]["mean_abs_dev_previous"]
    assert notified.read_text() == str(job_dir / DAYS[2] / "alerts.json")
    assert "yes, up" in (job_dir / DAYS[2] / "report.md").read_text(encoding="utf-8")

    # the trend: every date × model × lang × formulation, in json and parquet alike
    trend = pl.read_parquet(job_dir / DAYS[2] / "trend.parquet")
    assert dict(trend.schema) == TREND_SCHEMA
    assert trend["date"].unique().sort().to_list() == DAYS
    assert trend.height == 3 * 4
    assert json.loads((job_dir / DAYS[2] / "trend.json").read_text())["rows"] == trend.to_dicts()
    day3 = trend.filter(pl.col("date") == DAYS[2])
    assert (day3["mean_abs_dev"] > 0.45).all()
    # an earlier date's trend never holds later dates
    assert pl.read_parquet(job_dir / DAYS[1] / "trend.parquet")["date"].unique().sort().to_list() == DAYS[:2]

    code, out, err = main("batch", "history", job, "--format", "csv")
    assert code == 0, err
    assert pl.read_csv(out.encode()).height == 12
    code, out, err = main("batch", "history", job)
    assert code == 0 and all(d in out for d in DAYS)


def test_bound_and_face_rate_rules_fire_with_their_numbers(tmp_path, main):
    job = _job_yaml(tmp_path / "job.yaml", tmp_path / "out",
                    alerts={"max_mean_abs_dev": 0.05, "min_face_found_rate": 1.0, "rising_abs_dev": False},
                    audit={"subjects": ["nurse", "pilot"], "langs": ["en"], "formulations": ["direct"], "n": 8,
                           "classifiers": ["world"], "n_boot": 200, "batch_size": 16})
    # face found in every image: the face-rate rule needs a rate below 1.0 to fire
    code, out, err = main("batch", "run", job, "--date", DAYS[0])
    assert code == 3, err
    alerts = json.loads((tmp_path / "out" / "weekly" / DAYS[0] / "alerts.json").read_text())["alerts"]
    assert [a["rule"] for a in alerts] == ["max_mean_abs_dev"]
    a = alerts[0]
    assert (a["lang"], a["formulation"], a["bound"]) == ("en", "direct", 0.05)
    assert a["low"] <= a["mean_abs_dev"] <= a["high"] and a["mean_abs_dev"] > 0.05


# -- the lock ---------------------------------------------------------------------------------

_HOLDER = textwrap.dedent("""
    import sys
    from neobabel.runs import RunDir, locked
    with locked(RunDir(sys.argv[1])):
        print("held", flush=True)
        sys.stdin.readline()
""")


def test_a_second_concurrent_run_is_refused_and_a_dead_owner_is_taken_over(tmp_path, main):
    job = _job_yaml(tmp_path / "job.yaml", tmp_path / "out")
    job_dir = tmp_path / "out" / "weekly"
    job_dir.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(job_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out, err = main("batch", "run", job, "--date", DAYS[0])
        assert code == 2
        line = err.strip()
        assert "\n" not in line and f"job weekly is already running in {job_dir}" in line
        assert f"pid {holder.pid}" in line
        assert not (job_dir / DAYS[0]).exists()
    finally:
        holder.communicate("\n", timeout=60)
    # a holder killed with its owner record left behind: the kernel dropped its flock, the record is stale
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (job_dir / ".neobabel.lock.json").write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename,
                                                             "started": "earlier", "argv": []}))
    (job_dir / ".neobabel.lock").write_text("")
    code, out, err = main("batch", "run", job, "--date", DAYS[0])
    assert code == 0, err
    assert not (job_dir / ".neobabel.lock.json").exists()


# -- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, match", [
    ("name: j\nmodels: [oracle]\nbogus: 1\n", "unknown field 'bogus'"),
    ("name: j\nmodels: [oracle\n", "not valid YAML"),
    ("name: j\n", "models"),
    ("name: j\nmodels: [oracle]\naudit: {model: world}\n", "listed under `models:`"),
    ("name: j\nmodels: [oracle]\naudit: {n: 0}\n", "audit.n"),
    ("name: j\nmodels: [oracle]\naudit: {langs: [xx]}\n", "xx"),
    ("name: j\nmodels: [oracle, {model: oracle}]\n", "share the folder 'oracle'"),
    ("name: j/k\nmodels: [oracle]\n", "name"),
    ("name: j\nmodels: [oracle]\nalerts: {max_mean_abs_dev: 2}\n", "alerts.max_mean_abs_dev"),
])
def test_bad_job_yaml_is_one_line_and_exit_2(tmp_path, main, text, match):
    job = tmp_path / "job.yaml"
    job.write_text(text, encoding="utf-8")
    code, out, err = main("batch", "run", job, "--date", DAYS[0])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("magbig: error:") and match in lines[0], err
    with pytest.raises(InputError):
        load_job(job)


def test_bad_date_and_missing_job(tmp_path, main):
    job = _job_yaml(tmp_path / "job.yaml", tmp_path / "out")
    code, _, err = main("batch", "run", job, "--date", "2026-02-30")
    assert code == 2 and "YYYY-MM-DD" in err
    code, _, err = main("batch", "run", tmp_path / "nope.yaml")
    assert code == 2 and "not found" in err and len(err.strip().splitlines()) == 1
    code, _, err = main("batch", "history", job)
    assert code == 2 and "no finished dates" in err
    assert parse_date("2026-01-05") == "2026-01-05"
    assert model_slug("/models/My Model v2/") == "My-Model-v2"


# -- the shipped job and the scheduler examples ---------------------------------------------

def test_shipped_job_validates():
    job = load_job("configs/jobs/world-weekly.yaml")
    assert [m.model for m in job.models] == ["world"] and job.output == "runs/jobs"
    assert job.audit.langs == ["en", "de"] and job.audit.formulations == ["direct", "indirect"]
    assert len(job.audit.subjects) == 3 and job.audit.n == 4
    assert load_job("world-weekly") == job


def _after_magbig(tokens: list[str]) -> list[str]:
    """The arguments of the `magbig` command in a shell command line, up to a shell operator."""
    i = next(i for i, t in enumerate(tokens) if t == "magbig" or t.endswith("/magbig"))
    args = []
    for t in tokens[i + 1:]:
        if t in ("&&", "||", ";", "|", ">", ">>", "2>&1") or t.startswith((">", "2>")):
            break
        args.append(t)
    return args


def _example_commands() -> dict[str, list[str]]:
    ex = REPO_ROOT / "examples"
    cron = [ln for ln in (ex / "cron" / "world-weekly.crontab").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    assert len(cron) == 1
    fields = cron[0].split(None, 5)  # five schedule fields, then the shell command
    service = (ex / "systemd" / "magbig-world-weekly.service").read_text()
    exec_start = [ln.split("=", 1)[1] for ln in service.splitlines() if ln.startswith("ExecStart=")]
    assert len(exec_start) == 1
    timer = (ex / "systemd" / "magbig-world-weekly.timer").read_text()
    assert "Unit=magbig-world-weekly.service" in timer and "OnCalendar=" in timer
    cronjob = yaml.safe_load((ex / "kubernetes" / "world-weekly-cronjob.yaml").read_text())
    assert cronjob["kind"] == "CronJob"
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {"cron": _after_magbig(shlex.split(fields[5])),
            "systemd": _after_magbig(shlex.split(exec_start[0])),
            "kubernetes": _after_magbig(container["command"] + container.get("args", []))}


@pytest.mark.parametrize("kind", ["cron", "systemd", "kubernetes"])
def test_scheduler_examples_run_a_real_command_on_a_real_job(kind):
    args = _example_commands()[kind]
    assert args[:2] == ["batch", "run"] and args[2].startswith("configs/jobs/")
    group = typer.main.get_command(magbig_cli.app)
    ctx = group.make_context("magbig", list(args), resilient_parsing=True)
    cmd, name, rest = group, "magbig", list(args)
    while hasattr(cmd, "commands"):  # a group (typer vendors click: no isinstance check)
        name, rest = rest[0], rest[1:]
        cmd = cmd.get_command(ctx, name)
        assert cmd is not None, f"no command {name!r} in {args}"
    sub = cmd.make_context(name, list(rest), parent=ctx, resilient_parsing=True)
    assert sub.args == [] and sub.params["job"] is not None
    assert (REPO_ROOT / sub.params["job"]).is_file()
    load_job(REPO_ROOT / sub.params["job"])


def test_shipped_job_runs_on_the_embedded_world_model(tmp_path, main, monkeypatch):
    """The shipped job end to end, as a scheduler runs it (output relative to the working directory)."""
    monkeypatch.chdir(tmp_path)
    code, out, err = main("batch", "run", "world-weekly", "--date", DAYS[0])
    assert code == 0, err
    day = tmp_path / "runs" / "jobs" / "world-weekly" / DAYS[0]
    summary = json.loads((day / "summary.json").read_text(encoding="utf-8"))
    world = summary["models"]["world"]
    assert world["n_images"] == 3 * 2 * 2 * 4 and world["classifier"] == "world"
    assert len(world["groups"]) == 4
    assert pl.read_parquet(day / "trend.parquet").height == 4
