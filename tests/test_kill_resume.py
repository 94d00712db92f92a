"""kill -9 at random moments: `neobabel generate`, `magbig audit` and `magbig classify` always
resume to the run directory an uninterrupted run makes.

Each command runs in a process of its own and gets SIGKILL at a moment a seeded RNG draws
within the time an uninterrupted run works (counted from when it holds the run directory's
lock), then the same command runs again on the same directory. Twenty kills in all. Whenever a
try finishes, and at the end, its directory must equal the uninterrupted run's: the same files
(no temporaries, no lock left), byte-identical PNGs, the same manifest rows without their
timing column, the same labels, units and rejections.

The processes are forked by a forkserver (multiprocessing's "forkserver" start method) that
has imported the CLIs once, so a try costs model loading and work rather than the seconds of
imports `python -m` pays each time; every child runs the CLI's `main()`, the console script's
code path and exit codes, and nothing of it is shared with the test process.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import forkserver as fs
from pathlib import Path

import polars as pl
import pytest

from neobabel.runs import lock_owner

pytestmark = pytest.mark.slow

KILLS = {"generate": 7, "audit": 7, "classify": 6}  # 20 in all
SEED = 19

PROMPTS = "a red circle\nzwei blaue Quadrate\n三个绿色三角形\nun cercle jaune\n"
AUDIT_YAML = """\
name: kill
model: world
subjects: [pilot, nurse]
langs: [en, de]
formulations: [direct]
n: 3
steps: 3
face_policy: reject
max_tries: 2
batch_size: 2
classifiers: [{name: world, options: {batch_size: 2}}]
n_boot: 100
"""
# What a child would otherwise import for seconds each time (diffusers and transformers import lazily).
PRELOAD = ["neobabel.cli", "magbig.cli", "neobabel.pipeline", "neobabel.runs", "magbig.audit",
           "magbig.classify", "magbig.report", "magbig.selftest",
           "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion",
           "diffusers.models.unets.unet_2d_condition", "diffusers.models.autoencoders.autoencoder_kl",
           "diffusers.schedulers.scheduling_ddim", "diffusers.schedulers.scheduling_dpmsolver_multistep",
           "transformers.models.auto.modeling_auto", "transformers.models.auto.tokenization_auto",
           "transformers.models.clip.modeling_clip", "transformers.models.xlm_roberta.modeling_xlm_roberta"]


def _run_cli(prog: str, args: list[str], log: str) -> None:
    """A child: `prog ARGS` through its CLI's main(), output appended to `log`."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.argv = [prog, *args]
    importlib.import_module(f"{prog}.cli").main()


@dataclass
class Command:
    name: str
    prog: str
    args: Callable[[Path], list[str]]
    prepare: Callable[[Path], None] = lambda out: None  # noqa: E731  what a fresh directory starts from


class Runner:
    def __init__(self, ctx, root: Path):
        self.ctx, self.root, self.n = ctx, root, 0

    def start(self, cmd: Command, out: Path):
        p = self.ctx.Process(target=_run_cli, args=(cmd.prog, cmd.args(out), str(self.root / f"{cmd.name}.log")))
        p.start()
        return p

    def fresh(self, cmd: Command) -> Path:
        self.n += 1
        out = self.root / f"{cmd.name}-{self.n}"
        cmd.prepare(out)
        return out


def wait_for_lock(p, out: Path, timeout: float = 120) -> bool:
    """Until the child holds the run directory (True) or has exited (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if lock_owner(out).get("pid") == p.pid:
            return True
        if not p.is_alive():
            return False
        time.sleep(0.002)
    raise AssertionError(f"{out}: no lock after {timeout} s")


def run_to_end(runner: Runner, cmd: Command, out: Path) -> float:
    """Run uninterrupted; returns the seconds it worked while holding the lock."""
    p = runner.start(cmd, out)
    held = wait_for_lock(p, out)
    t0 = time.monotonic()
    p.join(300)
    assert held and p.exitcode == 0, (p.exitcode, (runner.root / f"{cmd.name}.log").read_text())
    return time.monotonic() - t0


def files(run: Path) -> list[str]:
    return sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())


def table(path: Path, drop: tuple[str, ...] = ()) -> pl.DataFrame:
    df = pl.read_parquet(path).drop(*drop)
    return df.sort(df.columns)


def assert_same_run(got: Path, ref: Path) -> None:
    assert files(got) == files(ref)  # no temporaries, no lock or owner file
    for name in files(ref):
        if name.endswith(".png"):
            assert (got / name).read_bytes() == (ref / name).read_bytes(), name
    assert table(got / "generations.parquet", ("seconds",)).equals(table(ref / "generations.parquet", ("seconds",)))
    for name in ("labels.parquet", "units.parquet", "rejections.parquet"):
        if (ref / name).is_file():
            assert table(got / name).equals(table(ref / name)), name
    info = json.loads((got / "run.json").read_text(encoding="utf-8"))
    assert info["status"] == "complete" and info.get("audit_status", "complete") == "complete"
    # every killed invocation was found and marked on the next start
    assert {i["status"] for i in info["invocations"]} <= {"complete", "interrupted"}


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD + [__name__])
    yield ctx
    stop = getattr(fs._forkserver, "_stop", None)  # private; frees the preloaded modules' memory
    if stop is not None:
        stop()


def test_kill_9_at_random_moments_then_resume(forkserver, tiny_random_dir, tmp_path):
    rng = random.Random(SEED)
    (tmp_path / "prompts.txt").write_text(PROMPTS, encoding="utf-8")
    (tmp_path / "audit.yaml").write_text(AUDIT_YAML, encoding="utf-8")
    runner = Runner(forkserver, tmp_path)
    generate = Command("generate", "neobabel", lambda out: [
        "generate", "--prompts", str(tmp_path / "prompts.txt"), "-n", "3", "--model", "tiny-random",
        "--size", "32x32", "--steps", "2", "--batch-size", "2", "--out", str(out), "--no-progress"])
    audit = Command("audit", "magbig", lambda out: [
        "audit", "--config", str(tmp_path / "audit.yaml"), "--out", str(out), "--no-progress"])
    references: dict[str, Path] = {}

    def copy_of_the_audit(out: Path) -> None:
        shutil.copytree(references["audit"], out)

    classify = Command("classify", "magbig", lambda out: [
        "classify", str(out), "--classifier", "world", "--option", "alias=second", "--option", "batch_size=2",
        "--no-progress"], copy_of_the_audit)

    kills = 0
    for cmd in (generate, audit, classify):
        references[cmd.name] = runner.fresh(cmd)
        span = run_to_end(runner, cmd, references[cmd.name])
        out, killed = runner.fresh(cmd), 0
        while killed < KILLS[cmd.name]:
            p = runner.start(cmd, out)
            if wait_for_lock(p, out):
                p.join(rng.uniform(0, span))
            if p.is_alive():
                os.kill(p.pid, signal.SIGKILL)
                p.join()
                if p.exitcode == -signal.SIGKILL:
                    killed += 1
                    continue
                # else it exited on its own just before the signal
            # it finished before its kill: the resumed run is complete, start a new one
            assert p.exitcode == 0, (runner.root / f"{cmd.name}.log").read_text()
            assert_same_run(out, references[cmd.name])
            out = runner.fresh(cmd)
        run_to_end(runner, cmd, out)
        assert_same_run(out, references[cmd.name])
        kills += killed
    assert kills == sum(KILLS.values()) == 20


BATCH_JOB = """\
name: kill
output: {output}
models: [{{model: world, name: w}}]
audit: {{subjects: [pilot, nurse], langs: [en, de], formulations: [direct], n: 3, steps: 3, batch_size: 2,
        classifiers: [{{name: world, options: {{batch_size: 2}}}}], n_boot: 100}}
"""
BATCH_DATE = "2026-03-02"
BATCH_KILLS = 4


def _date_outputs(out: Path) -> dict[str, bytes]:
    """The date folder's own files, with the output folder's path replaced (it differs per try)."""
    folder = out / "kill" / BATCH_DATE
    return {p.name: p.read_bytes().replace(str(out).encode(), b"OUT") for p in sorted(folder.iterdir()) if p.is_file()}


def test_kill_9_during_a_batch_job_then_rerun(forkserver, tmp_path):
    """`magbig batch run` killed at random moments, rerun: the same dated outputs (summary, trend,
    alerts, report) and the same audit run directory as a job that was never interrupted."""
    rng = random.Random(SEED + 1)
    runner = Runner(forkserver, tmp_path)

    def prepare(out: Path) -> None:
        out.mkdir(parents=True)
        (out / "job.yaml").write_text(BATCH_JOB.format(output=out), encoding="utf-8")

    batch = Command("batch", "magbig", lambda out: ["batch", "run", str(out / "job.yaml"), "--date", BATCH_DATE],
                    prepare)
    ref = runner.fresh(batch)
    p = runner.start(batch, ref)
    assert wait_for_lock(p, ref / "kill")
    t0 = time.monotonic()
    p.join(300)
    span = time.monotonic() - t0
    assert p.exitcode == 0, (tmp_path / "batch.log").read_text()

    # Kill moments come from the first 70% of the reference span: the runs share 2 cores with the
    # rest of the suite, so a try can run faster than the reference did and finish before its kill.
    # A fresh job that finishes first is compared and replaced (bounded), so at least one kill lands.
    out, killed, fresh_finishes = runner.fresh(batch), 0, 0
    while killed < BATCH_KILLS:
        p = runner.start(batch, out)
        if wait_for_lock(p, out / "kill"):
            p.join(rng.uniform(0, 0.7 * span))
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
            p.join()
            if p.exitcode == -signal.SIGKILL:
                killed += 1
                continue
        assert p.exitcode == 0, (tmp_path / "batch.log").read_text()
        if killed:
            break  # the resumed job finished before its next kill: compare below
        assert _date_outputs(out) == _date_outputs(ref)
        fresh_finishes += 1
        assert fresh_finishes < 5, "five uninterrupted jobs finished before their kill"
        out = runner.fresh(batch)
    p = runner.start(batch, out)
    p.join(300)
    assert p.exitcode == 0, (tmp_path / "batch.log").read_text()
    assert _date_outputs(out) == _date_outputs(ref)
    assert_same_run(out / "kill" / BATCH_DATE / "w", ref / "kill" / BATCH_DATE / "w")
    assert lock_owner(out / "kill") == {}  # the job lock went with the process that finished
