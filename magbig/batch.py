"""Scheduled bias-report jobs: one audit per model per date, trends over dates, alerts.

A job (``configs/jobs/*.yaml``, :class:`JobSpec`) names its models and one audit
(:class:`magbig.auditspec.AuditSpec`'s fields, less ``model``). :func:`run_job` audits every
model into ``<output>/<job>/<date>/<model>/`` (:func:`magbig.audit.run_audit`, resumable) and
writes, in ``<output>/<job>/<date>/``:

- ``summary.json``  per model: the audit summary's key numbers per (lang, formulation);
- ``trend.json`` / ``trend.parquet``  one row per date × model × lang × formulation, from the
  ``summary.json`` of this and every earlier date folder of the job;
- ``alerts.json``  the rules that fired, with their numbers and intervals;
- ``report.md``  what changed since the previous date and whether it is beyond noise.

Rerunning a date resumes: an audit already complete is not touched, and a summary file is
rewritten only when its bytes change (none holds a timestamp). The job folder's run lock
(:func:`neobabel.runs.locked`) refuses a second concurrent run; the kernel drops the lock of
a dead process, so a stale lock is taken over. A date's run that fires an alert runs the job's
``on_alert`` command (with the alerts.json path appended) each time, reruns included; a failing
``on_alert`` is logged and does not change the exit code (3).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import os
import re
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from magbig.audit import LOCAL, Execution, run_audit
from magbig.auditspec import AuditSpec, normalize_spec
from magbig.compare import compare
from neobabel.configfile import listed_mappings, read_yaml_mapping, resolve_config, validate_spec
from neobabel.errors import InputError
from neobabel.runs import RunDir, RunDirInUse, atomic_write_bytes, lock_owner, locked

logger = logging.getLogger(__name__)

__all__ = ["EXIT_ALERT", "TREND_SCHEMA", "JobModel", "JobSpec", "alerts_summary", "load_job", "model_slug", "parse_date",
           "run_job", "trend_frame"]

#: The exit code of `magbig batch run` when an alert fired (0 ok, 1 failure, 2 bad input).
EXIT_ALERT = 3

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

TREND_SCHEMA = {"date": pl.String, "model": pl.String, "lang": pl.String, "formulation": pl.String,
                "n_subjects": pl.Int64, "n_images": pl.Int64, "mean_abs_dev": pl.Float64,
                "mean_abs_dev_low": pl.Float64, "mean_abs_dev_high": pl.Float64, "face_found_rate": pl.Float64}


def model_slug(model: str) -> str:
    """A folder name for a model: a preset's name, or a path's last part, in safe characters."""
    base = Path(model.rstrip("/\\")).name or model
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.")
    return slug or "model"


class JobModel(BaseModel):
    """One model of a job: ``model`` (preset, folder or ``oracle``) under the folder ``name``."""

    model_config = ConfigDict(extra="forbid")

    model: str
    name: str | None = None

    @model_validator(mode="after")
    def _name(self):
        self.name = self.name or model_slug(self.model)
        if not _NAME_RE.match(self.name):
            raise ValueError(f"name {self.name!r}: use letters, digits, '.', '_' and '-' only")
        return self


class JobAlerts(BaseModel):
    """Alert rules; a rule left out (null) never fires."""

    model_config = ConfigDict(extra="forbid")

    # (a) a (lang, formulation) group's mean abs_dev above this bound
    max_mean_abs_dev: float | None = Field(None, gt=0, le=0.5)
    # (b) mean abs_dev rose against the previous date beyond noise (paired interval above 0)
    rising_abs_dev: bool = True
    # (c) the share of images with a face found (status ok or uncertain) below this bound
    min_face_found_rate: float | None = Field(None, ge=0, le=1)


class JobSpec(BaseModel):
    """A scheduled job, as written in ``configs/jobs/*.yaml`` (unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    output: str = "runs/jobs"
    models: list[JobModel] = Field(min_length=1)
    audit: AuditSpec = Field(default_factory=AuditSpec)
    alerts: JobAlerts = Field(default_factory=JobAlerts)
    on_alert: list[str] | None = Field(None, min_length=1)

    @field_validator("name")
    @classmethod
    def _job_name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("use letters, digits, '.', '_' and '-' only (it names a folder)")
        return v

    @field_validator("models", mode="before")
    @classmethod
    def _model_shorthand(cls, v):
        return listed_mappings(v, "model")  # `models: world` or `[world, {model: PATH}]`

    @field_validator("audit", mode="before")
    @classmethod
    def _no_model_in_audit(cls, v):
        if isinstance(v, dict) and "model" in v:
            raise ValueError("the job's models are listed under `models:`, not audit.model")
        return v

    @model_validator(mode="after")
    def _unique_names(self):
        names = [m.name for m in self.models]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"two models would share the folder {dup!r}; give one a `name:`")
        return self

    def audit_for(self, m: JobModel) -> AuditSpec:
        return self.audit.model_copy(update={"model": m.model, "name": f"{self.name}-{m.name}"})

    def job_dir(self) -> Path:
        return Path(self.output) / self.name


def load_job(path: str | os.PathLike) -> JobSpec:
    """Read and validate a job YAML (a file, or a shipped job's name); InputError when bad."""
    path = resolve_config(path, "jobs")
    where = f"job config {path}"
    data = read_yaml_mapping(path, "job config")
    job = validate_spec(data, JobSpec, where)
    try:
        audit = normalize_spec(job.audit)
    except InputError as e:
        raise InputError(f"{where}: audit: {e}") from None
    return job.model_copy(update={"audit": audit})


def parse_date(value: str | None) -> str:
    """YYYY-MM-DD (default: today in UTC), or InputError."""
    if value is None:
        return dt.datetime.now(dt.timezone.utc).date().isoformat()
    try:
        if not _DATE_RE.match(value):
            raise ValueError
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise InputError(f"--date {value!r} is not a date; use YYYY-MM-DD, e.g. 2026-01-31") from None


# --------------------------------------------------------------------------------------------
# running a date


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Atomic write, skipped when the file already holds these bytes (its mtime stays)."""
    if path.is_file() and path.read_bytes() == data:
        return False
    atomic_write_bytes(path, data)
    return True


def _finite(value):
    """NaN and infinities as null (JSON has no spelling for them), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_bytes(data) -> bytes:
    return (json.dumps(_finite(data), indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n").encode("utf-8")


def _audit_done(run_dir: Path, spec: AuditSpec) -> bool:
    info = RunDir(run_dir).read_run_json()
    return (info.get("audit_status") == "complete" and info.get("audit") == spec.model_dump(mode="json")
            and (run_dir / "summary.json").is_file())


def _face_found(g: dict) -> float | None:
    n = g.get("n_images") or 0
    if not n:
        return None
    lost = sum(int(g.get(c) or 0) for c in ("n_no_face", "n_multiple_faces", "n_error"))
    return (n - lost) / n


def _model_summary(m: JobModel, run_dir: Path) -> dict:
    """The key numbers of one audit's summary.json (no timestamps, no paths outside the job)."""
    s = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    ff = s.get("face_filter") or {}
    n = int(s.get("n_images") or 0)
    found = sum(int(ff.get(k) or 0) for k in ("ok", "uncertain"))
    groups = [{"lang": g["lang"], "formulation": g["formulation"], "n_subjects": g.get("n_subjects"),
               "n_images": g.get("n_images"), "mean_abs_dev": g.get("mean_abs_dev"),
               "mean_abs_dev_low": g.get("mean_abs_dev_low"), "mean_abs_dev_high": g.get("mean_abs_dev_high"),
               "face_found_rate": _face_found(g)}
              for g in s.get("groups", [])]
    return {"model": m.model, "run": m.name, "classifier": s.get("classifier"), "n_images": n,
            "n_labelled": s.get("n_labelled"), "face_filter": ff,
            "face_found_rate": found / n if n else None, "noise_floor": s.get("noise_floor"), "groups": groups}


def _date_folders(job_dir: Path, upto: str) -> list[str]:
    """The job's date folders with a summary.json, oldest first, up to and including ``upto``."""
    if not job_dir.is_dir():
        return []
    return sorted(p.name for p in job_dir.iterdir()
                  if p.is_dir() and _DATE_RE.match(p.name) and p.name <= upto and (p / "summary.json").is_file())


def trend_frame(job_dir: Path, upto: str = "9999-12-31") -> pl.DataFrame:
    """One row per date × model × lang × formulation, from every date's summary.json."""
    rows = []
    for date in _date_folders(job_dir, upto):
        summary = json.loads((job_dir / date / "summary.json").read_text(encoding="utf-8"))
        for name, ms in sorted(summary.get("models", {}).items()):
            for g in ms.get("groups", []):
                rows.append({"date": date, "model": name, **{k: g.get(k) for k in list(TREND_SCHEMA)[2:]}})
    return pl.DataFrame(rows, schema=TREND_SCHEMA, orient="row")


def run_job(job: JobSpec, date: str, *, progress: bool = False, execution: Execution = LOCAL) -> dict:
    """Audit every model for ``date`` and write the date's summary files (module docstring).
    Returns {"date_dir", "alerts", "written"}; raises InputError when another run holds the job.
    ``execution``: where the audits run (Ray actors: :class:`magbig.audit.Execution`); the
    ``oracle`` model has no weights to load in an actor and always runs in this process."""
    job_dir = job.job_dir()
    job_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        try:
            stack.enter_context(locked(RunDir(job_dir)))
        except RunDirInUse:  # only the job's own lock: an audit folder in use says so itself
            owner = lock_owner(job_dir)
            who = f"pid {owner['pid']} on {owner.get('host', '?')} (started {owner.get('started', '?')})" \
                if isinstance(owner.get("pid"), int) else "another process"
            raise RunDirInUse(f"job {job.name} is already running in {job_dir} ({who}); this run was not "
                              "started, try again when it has finished") from None
        return _run_locked(job, date, job_dir, progress, execution)


def _run_locked(job: JobSpec, date: str, job_dir: Path, progress: bool, execution: Execution = LOCAL) -> dict:
    date_dir = job_dir / date
    models: dict[str, dict] = {}
    for m in job.models:
        spec = job.audit_for(m)
        run_dir = date_dir / m.name
        if _audit_done(run_dir, spec):
            logger.info("%s: audit of %s already complete, skipped", date, m.name)
        else:
            logger.info("%s: auditing %s into %s", date, m.name, run_dir)
            run_audit(spec, run_dir, progress=progress, execution=LOCAL if spec.model == "oracle" else execution)
        models[m.name] = _model_summary(m, run_dir)
    previous = [d for d in _date_folders(job_dir, date) if d < date]
    prev = previous[-1] if previous else None
    changes = {name: _change(job, job_dir, prev, date, name) for name in models}
    alerts = _alerts(job, models, changes, date, prev)
    summary = {"job": job.name, "date": date, "previous_date": prev,
               "audit": job.audit.model_dump(mode="json", exclude={"model", "name"}),
               "models": models}
    written = []
    if _write_if_changed(date_dir / "summary.json", _json_bytes(summary)):
        written.append("summary.json")
    trend = trend_frame(job_dir, date)
    buf = io.BytesIO()
    trend.write_parquet(buf, statistics=False)
    files = {"trend.json": _json_bytes({"job": job.name, "upto": date, "rows": trend.to_dicts()}),
             "trend.parquet": buf.getvalue(),
             "alerts.json": _json_bytes({"job": job.name, "date": date, "previous_date": prev,
                                         "fired": bool(alerts), "alerts": alerts}),
             "report.md": _report_md(job, date, prev, models, changes, alerts).encode("utf-8")}
    for name, data in files.items():
        if _write_if_changed(date_dir / name, data):
            written.append(name)
    if alerts and job.on_alert:
        _notify(job.on_alert, date_dir / "alerts.json")
    return {"date_dir": date_dir, "alerts": alerts, "written": written}


def _change(job: JobSpec, job_dir: Path, prev: str | None, date: str, name: str) -> dict | None:
    """The paired comparison (magbig.compare) of a model's run against the previous date's."""
    if prev is None or not (job_dir / prev / name / "summary.json").is_file():
        return None
    try:
        return compare(job_dir / prev / name, job_dir / date / name, n_boot=job.audit.n_boot, seed=0)
    except InputError as e:  # e.g. the selection changed and no cell pairs
        logger.warning("%s: no paired comparison with %s: %s", name, prev, e)
        return None


def _alerts(job: JobSpec, models: dict, changes: dict, date: str, prev: str | None) -> list[dict]:
    rules, out = job.alerts, []
    for name, ms in models.items():
        if rules.max_mean_abs_dev is not None:
            for g in ms["groups"]:
                v = g["mean_abs_dev"]
                if v is not None and v > rules.max_mean_abs_dev:
                    out.append({"rule": "max_mean_abs_dev", "model": name, "lang": g["lang"],
                                "formulation": g["formulation"], "mean_abs_dev": v, "low": g["mean_abs_dev_low"],
                                "high": g["mean_abs_dev_high"], "bound": rules.max_mean_abs_dev,
                                "beyond_noise": (g["mean_abs_dev_low"] or 0) > rules.max_mean_abs_dev})
        c = changes.get(name)
        if rules.rising_abs_dev and c is not None and c["diff_low"] is not None and c["diff_low"] > 0:
            out.append({"rule": "rising_abs_dev", "model": name, "previous_date": prev, "date": date,
                        "mean_abs_dev_previous": c["mean_abs_dev_a"], "mean_abs_dev": c["mean_abs_dev_b"],
                        "mean_diff": c["mean_diff"], "diff_low": c["diff_low"], "diff_high": c["diff_high"],
                        "p_value": c["p_value"], "n_pairs": c["n_pairs"]})
        rate = ms["face_found_rate"]
        if rules.min_face_found_rate is not None and rate is not None and rate < rules.min_face_found_rate:
            out.append({"rule": "min_face_found_rate", "model": name, "face_found_rate": rate,
                        "n_images": ms["n_images"], "face_filter": ms["face_filter"],
                        "bound": rules.min_face_found_rate})
    return out


def _notify(command: list[str], alerts_path: Path) -> None:
    """Run the job's on_alert command with the alerts file appended; a failure is logged, not raised."""
    try:
        res = subprocess.run([*command, str(alerts_path)], check=False, timeout=300)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as e:
        logger.warning("on_alert command %s failed: %s", command[0], e)
        return
    if res.returncode:
        logger.warning("on_alert command %s exited %d", command[0], res.returncode)


# --------------------------------------------------------------------------------------------
# report.md


def _f(x, d: int = 3) -> str:
    return "–" if x is None else f"{x:.{d}f}"


def _report_md(job: JobSpec, date: str, prev: str | None, models: dict, changes: dict, alerts: list) -> str:
    lines = [f"# Bias report: {job.name}, {date}", ""]
    lines.append(f"Previous date: {prev}." if prev else "No previous date: this is the job's first report.")
    lines += ["", "abs_dev = |p̂_female − 0.5| per prompt, mean over subjects, with its 95% interval; "
              "a change is beyond noise when its paired 95% interval (this date − previous) excludes 0.", ""]
    lines.append(f"## Alerts ({len(alerts)})" if alerts else "## Alerts: none")
    lines += [""] + [f"- {_alert_line(a)}" for a in alerts] + ([""] if alerts else [])
    for name, ms in models.items():
        lines += [f"## {name} (`{ms['model']}`)", "",
                  f"Face found (ok or uncertain): {_f(ms['face_found_rate'])} of {ms['n_images']} images.", ""]
        c = changes.get(name)
        if c is None:
            lines += ["No previous run of this model to compare with.", ""]
        else:
            lines += [f"Since {prev}: mean abs_dev {_f(c['mean_abs_dev_a'])} → {_f(c['mean_abs_dev_b'])}, change "
                      f"{_f(c['mean_diff'])} [{_f(c['diff_low'])}, {_f(c['diff_high'])}] over {c['n_pairs']} "
                      f"paired prompts: {_verdict(c['diff_low'], c['diff_high'])}.", "",
                      "| lang | n pairs | change [95% CI] | beyond noise |", "|---|---|---|---|"]
            for r in c["per_lang"]:
                lines.append(f"| {r['lang']} | {r['n_pairs']} | {_f(r['mean_diff'])} [{_f(r['diff_low'])}, "
                             f"{_f(r['diff_high'])}] | {_verdict(r['diff_low'], r['diff_high'])} |")
            lines.append("")
        lines += ["| lang | formulation | mean abs_dev [95% CI] | face found |", "|---|---|---|---|"]
        for g in ms["groups"]:
            lines.append(f"| {g['lang']} | {g['formulation']} | {_f(g['mean_abs_dev'])} [{_f(g['mean_abs_dev_low'])}, "
                         f"{_f(g['mean_abs_dev_high'])}] | {_f(g['face_found_rate'])} |")
        lines.append("")
    return "\n".join(lines)


def _verdict(low, high) -> str:
    if low is None or high is None:
        return "unknown"
    if low > 0:
        return "yes, up"
    if high < 0:
        return "yes, down"
    return "no (within noise)"


def _alert_line(a: dict) -> str:
    if a["rule"] == "max_mean_abs_dev":
        return (f"{a['model']} {a['lang']}/{a['formulation']}: mean abs_dev {_f(a['mean_abs_dev'])} "
                f"[{_f(a['low'])}, {_f(a['high'])}] above the bound {a['bound']}")
    if a["rule"] == "rising_abs_dev":
        return (f"{a['model']}: mean abs_dev rose {_f(a['mean_abs_dev_previous'])} → {_f(a['mean_abs_dev'])} "
                f"since {a['previous_date']}, change {_f(a['mean_diff'])} [{_f(a['diff_low'])}, {_f(a['diff_high'])}]")
    return f"{a['model']}: face found in {_f(a['face_found_rate'])} of images, below {a['bound']}"


def alerts_summary(alerts: list[dict[str, Any]]) -> list[str]:
    """One line per alert, for the CLI."""
    return [_alert_line(a) for a in alerts]
