"""The CLIs' contract with their users (issue 19): usage errors, checks before loading, progress
in logs, truncated prompts, empty tables, and one answer from `magbig stats` and `magbig report`.

Every bad input must exit 2 with one line naming the value and the fix, before any model loads
and before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat

import polars as pl
import pytest

import magbig
import neobabel
from conftest import run_in_process
from magbig import cli as magbig_cli

FAST = ["--steps", "2", "--size", "64x64"]

AUDIT_YAML = """\
name: contract
model: oracle
subjects: [pilot, hairdresser, nurse]
langs: [en, de]
formulations: [direct, indirect]
n: 6
classifiers: [{name: world}]
n_boot: 200
"""


@pytest.fixture
def mb(monkeypatch, capsys):
    """`magbig ARGS` through magbig.cli.main (run_cli) -> (exit code, stdout, stderr)."""
    old = signal.getsignal(signal.SIGTERM)
    yield run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)
    signal.signal(signal.SIGTERM, old)


class ModelLoaded(Exception):
    """Raised instead of loading a model: the check under test came too late."""


@pytest.fixture
def no_model_loading(monkeypatch):
    """Any attempt to load a diffusion model fails loudly with ModelLoaded."""
    from neobabel.pipeline import BabelPipeline

    def refuse(*args, **kwargs):
        raise ModelLoaded("a model was loaded before the input was checked")

    monkeypatch.setattr(BabelPipeline, "from_pretrained", classmethod(lambda cls, *a, **k: refuse()))


def _one_error_line(code: int, err: str, prog: str) -> str:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def _files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- 1. usage errors: exit 2 with the usage line -----------------------------------------------

@pytest.mark.parametrize("args, usage, message", [
    (["generate", "--nope"], "Usage: neobabel generate", "No such option: --nope"),
    (["generate", "-n", "many", "a cat"], "Usage: neobabel generate", "Invalid value for '-n'"),
    (["nosuchcommand"], "Usage: neobabel", "No such command"),
])
def test_neobabel_usage_errors_exit_2_with_the_usage_line(cli, args, usage, message):
    code, out, err = cli(*args)
    assert code == 2, err
    assert usage in err and message in err
    assert "failed" not in err and "Traceback" not in err


def test_magbig_missing_argument_exits_2_with_the_usage_line(mb):
    code, _, err = mb("audit")
    assert code == 2 and "Usage: magbig audit" in err and "Missing option '--config'" in err
    assert "failed" not in err
    code, _, err = mb("stats")
    assert code == 2 and "Missing argument" in err and "failed" not in err


@pytest.mark.parametrize("prog", ["neobabel", "magbig"])
def test_bare_command_prints_help_and_exits_2_like_click(prog, cli, mb):
    code, out, err = (cli if prog == "neobabel" else mb)()
    assert code == 2  # click >= 8.2 exits 2 for no_args_is_help
    assert f"Usage: {prog}" in out + err and "Commands" in out + err
    assert "failed" not in err and "NoArgsIsHelpError" not in err


@pytest.mark.parametrize("prog, package", [("neobabel", neobabel), ("magbig", magbig)])
def test_version_flag(prog, package, cli, mb):
    code, out, err = (cli if prog == "neobabel" else mb)("--version")
    assert code == 0, err
    assert out.strip() == f"{prog} {package.__version__}"


# -- 2. checked before any model loads; bounded ------------------------------------------------

GENERATE_BAD = {
    "a billion images per prompt": (["-n", "1000000000"], ["-n 1,000,000,000", "100,000", "--no-limits"]),
    "huge size": (["--size", "65536x65536"], ["65536", "4096", "--no-limits"]),
    "size just above the bound": (["--size", "4104x512"], ["4104"]),
    "size not multiple of 8": (["--size", "100x64"], ["100", "multiple of 8"]),
    "too many steps": (["--steps", "1001"], ["--steps 1,001", "1,000"]),
    "infinite guidance": (["--guidance", "inf"], ["--guidance", "inf"]),
    "nan guidance": (["--guidance", "nan"], ["--guidance", "nan"]),
    "unknown scheduler": (["--scheduler", "bogus"], ["'bogus'", "ddim"]),
    "sampler needs more steps": (["--scheduler", "pndm", "--steps", "3"], ["--steps >= 4"]),
    "huge batch": (["--batch-size", "100000"], ["--batch-size"]),
    "unknown device": (["--device", "tpu"], ["--device 'tpu'", "cpu, cuda"]),
}


def _with_fast_defaults(args: list[str]) -> list[str]:
    extra = [flag_value for flag, value in (("--steps", "2"), ("--size", "64x64")) if flag not in args
             for flag_value in (flag, value)]
    return [*args, *extra]


@pytest.mark.parametrize("case", list(GENERATE_BAD))
def test_generate_checks_everything_before_loading(case, cli, no_model_loading, tmp_path, monkeypatch):
    args, needles = GENERATE_BAD[case]
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("generate", "a photo of a cat", *_with_fast_defaults(args), "--model", "tiny-random",
                       "--out", tmp_path / "run")
    line = _one_error_line(code, err, "neobabel")
    for needle in needles:
        assert needle in line, (needle, line)
    assert _files_under(tmp_path) == []  # no run directory, no runs/, nothing


def test_generate_bounds_the_total_number_of_images(cli, no_model_loading, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"prompt {i}\n" for i in range(101)), encoding="utf-8")
    code, _, err = cli("generate", "--prompts", prompts, "-n", "100000", *FAST, "--out", tmp_path / "run")
    line = _one_error_line(code, err, "neobabel")
    assert "101 prompts x 100,000 images = 10,100,000 images" in line and "--no-limits" in line
    assert not (tmp_path / "run").exists()


def test_no_limits_lets_a_deliberately_huge_run_through_the_checks(cli, no_model_loading, tmp_path):
    # With --no-limits the same arguments pass every check and reach model loading.
    args = ["generate", "a cat", "-n", "100001", "--steps", "1001", "--size", "4104x4104",
            "--out", tmp_path / "run"]
    code, _, err = cli(*args)
    assert code == 2 and "--no-limits" in err
    code, _, err = cli(*args, "--no-limits")
    assert code == 1 and "ModelLoaded" in err
    assert not (tmp_path / "run").exists()


def test_world_eval_checks_before_loading(cli, no_model_loading, tmp_path):
    code, _, err = cli("world", "eval", "-n", "200000", "--out", tmp_path / "ev")
    assert "-n 200,000" in _one_error_line(code, err, "neobabel")
    code, _, err = cli("world", "eval", "--per-task", "100000", "-n", "100", "--out", tmp_path / "ev")
    assert "images, above the limit" in _one_error_line(code, err, "neobabel")
    assert not (tmp_path / "ev").exists()


def _audit_config(tmp_path, **fields) -> str:
    text = AUDIT_YAML + "".join(f"{k}: {v}\n" for k, v in fields.items())
    path = tmp_path / "audit.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("fields, needle", [
    ({"size": "65536x65536"}, "size 65536x65536: image width 65536 is above the limit of 4096"),
    ({"steps": 5000}, "steps 5,000"),
    ({"guidance": ".inf"}, "guidance must be a finite number"),
    ({"scheduler": "bogus"}, "'bogus'"),
    ({"n": 200000}, "200,000"),
    ({"classifiers": "[fairface]"}, "unknown classifier 'fairface'"),
])
def test_audit_checks_before_loading(fields, needle, mb, tmp_path, monkeypatch):
    import magbig.audit

    def refuse(*a, **k):
        raise ModelLoaded("the audit's model was loaded before its config was checked")

    monkeypatch.setattr(magbig.audit, "load_pipeline", refuse)
    code, _, err = mb("audit", "--config", _audit_config(tmp_path, **fields), "--out", tmp_path / "run",
                      "--no-progress")
    assert needle in _one_error_line(code, err, "magbig")
    assert not (tmp_path / "run").exists()


# -- 2. a read-only --out: exit 2 with the fix -------------------------------------------------

@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A directory this process may not write in (chmod 555). As root, permission bits do not
    bind, so os.access is made to answer as it does for other users."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    if os.geteuid() == 0:
        real_access = os.access

        def access(path, mode, *a, **k):
            if os.path.abspath(path) == str(folder) and mode & os.W_OK:
                return False
            return real_access(path, mode, *a, **k)

        monkeypatch.setattr(os, "access", access)
    yield folder
    folder.chmod(0o755)


def test_read_only_out_exits_2_with_the_fix(cli, mb, no_model_loading, read_only_dir):
    code, _, err = cli("generate", "a cat", *FAST, "--out", read_only_dir / "run")
    line = _one_error_line(code, err, "neobabel")
    assert "read-only" in line and f"chmod u+w {read_only_dir}" in line
    cfg = _audit_config(read_only_dir.parent)
    code, _, err = mb("audit", "--config", cfg, "--out", read_only_dir / "audit", "--no-progress")
    assert "read-only" in _one_error_line(code, err, "magbig")
    assert list(read_only_dir.iterdir()) == []


def test_out_that_is_a_file_exits_2(cli, no_model_loading, tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine", encoding="utf-8")
    code, _, err = cli("generate", "a cat", *FAST, "--out", taken / "run")
    assert "is a file" in _one_error_line(code, err, "neobabel")
    assert taken.read_text(encoding="utf-8") == "mine"


# -- 3. progress in logs -----------------------------------------------------------------------

PROGRESS_LINE = re.compile(r"^generating (\d+)/(\d+) \((\d+\.\d)%\) ([\d.]+|--) img/s")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_progress_lines_every_tenth_and_every_ten_seconds(capsys):
    from neobabel.progress import progress_bar

    clock = FakeClock()
    with progress_bar("generating", 1000, terminal=False, clock=clock) as advance:
        for _ in range(1000):
            clock.now += 0.5  # 2 images/s
            advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "generating 0/1000 (0.0%) -- img/s"
    # 500 s of work: a line each 10 s (50) beats a line each tenth (10); plus start and end.
    assert len(lines) == 1 + 49 + 1
    assert lines[1] == "generating 20/1000 (2.0%) 2.00 img/s, ETA 8 min"
    assert lines[-1] == "generating 1000/1000 (100.0%) 2.00 img/s, done in 8 min"


def test_plain_progress_lines_on_each_tenth_when_work_is_fast(capsys):
    from neobabel.progress import progress_bar

    clock = FakeClock()
    with progress_bar("labelling", 50, unit="img", terminal=False, clock=clock) as advance:
        for _ in range(50):
            clock.now += 0.01
            advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["labelling 0/50", *(f"labelling {i}/50" for i in range(5, 50, 5)),
                                                   "labelling 50/50"]


def test_the_rate_counts_from_the_callers_start(capsys):
    from neobabel.progress import progress_bar, rate_text

    clock = FakeClock()
    started = clock.now
    clock.now += 5.0  # e.g. planning the run before the first image
    with progress_bar("generating", 10, terminal=False, clock=clock, started=started) as advance:
        clock.now += 5.0
        advance(10)
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"generating 10/10 (100.0%) {rate_text(10, 10.0, 'img')}")
    assert rate_text(10, 10.0, "img") == "1.00 img/s"


def test_resumed_work_counts_in_the_position_not_in_the_rate(capsys):
    from neobabel.progress import progress_bar

    clock = FakeClock()
    loss = {"value": 0.5}
    with progress_bar("training", 100, unit="step", done=60, terminal=False, clock=clock,
                      detail=lambda: f"loss {loss['value']:.4f}") as advance:
        for _ in range(40):
            clock.now += 1.0
            loss["value"] -= 0.01
            advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "training 60/100 (60.0%) -- step/s, loss 0.5000"
    assert lines[1] == "training 70/100 (70.0%) 1.00 step/s, loss 0.4000, ETA 30 s"
    assert lines[-1] == "training 100/100 (100.0%) 1.00 step/s, loss 0.1000, done in 40 s"


def test_progress_is_silent_when_disabled_or_empty(capsys):
    from neobabel.progress import progress_bar

    for bar in (progress_bar("x", 10, enabled=False, terminal=False), progress_bar("x", 0, terminal=False)):
        with bar as advance:
            advance(0)
    assert capsys.readouterr().err == ""


def test_generate_reports_progress_in_a_log_and_its_rate_matches_the_summary(cli, babel_sd_dir, tmp_path):
    code, out, err = cli("generate", "a cat", "-n", "3", *FAST, "--model", babel_sd_dir, "--out", tmp_path / "r")
    assert code == 0, err
    lines = [m for m in map(PROGRESS_LINE.match, err.splitlines()) if m]
    assert lines, err  # stderr is not a terminal here: plain lines, not a silent bar
    assert lines[0].group(1) == "0" and lines[-1].group(1) == lines[-1].group(2) == "3"
    summary_rate = float(re.search(r"([\d.]+) img/s", out).group(1))
    # One formula (images / seconds since the run began) for both; they differ only by the final
    # manifest write, which the summary's clock also counts.
    assert float(lines[-1].group(4)) == pytest.approx(summary_rate, rel=0.1)


def test_no_progress_is_silent(cli, babel_sd_dir, tmp_path):
    code, _, err = cli("generate", "a cat", *FAST, "--model", babel_sd_dir, "--out", tmp_path / "r",
                       "--no-progress")
    assert code == 0 and "generating" not in err


def test_selftest_reports_progress_in_a_log(mb):
    code, out, err = mb("selftest", "--cells", "24", "-n", "10", "--render-pool", "4", "--n-boot", "200")
    assert code in (0, 1), err
    assert json.loads(out)["cells"] == 24
    progress = [ln for ln in err.splitlines() if ln.startswith("selftest: rendering and reading")]
    assert progress and "(100.0%)" in progress[-1], err


# -- 4. truncated prompts, empty tables ---------------------------------------------------------

def test_an_overlong_prompt_is_reported_once_and_recorded(cli, babel_sd_dir, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n" + "a very long prompt " * 5000 + "\n", encoding="utf-8")
    code, _, err = cli("generate", "--prompts", prompts, "-n", "2", *FAST, "--model", babel_sd_dir,
                       "--out", tmp_path / "r", "--no-progress")
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if "longer than" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 1 prompt(s)"), err
    assert json.loads((tmp_path / "r" / "run.json").read_text())["truncated_prompts"] == 1


def test_short_prompts_record_no_truncation(cli, babel_sd_dir, tmp_path):
    code, _, err = cli("generate", "a cat", *FAST, "--model", babel_sd_dir, "--out", tmp_path / "r",
                       "--no-progress")
    assert code == 0 and "longer than" not in err
    assert json.loads((tmp_path / "r" / "run.json").read_text())["truncated_prompts"] == 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_stats_on_an_empty_table_exits_2(mb, tmp_path, suffix):
    path = tmp_path / f"labels{suffix}"
    empty = pl.DataFrame(schema={"subject": pl.String, "lang": pl.String, "formulation": pl.String,
                                 "label": pl.String})
    empty.write_csv(path) if suffix == ".csv" else empty.write_parquet(path)
    code, out, err = mb("stats", path)
    assert "has no rows" in _one_error_line(code, err, "magbig")
    assert out == ""


# -- 5. one table, one interval: `magbig stats` == `magbig report` -----------------------------

NUMBERS = ("n_subjects", "n_labelled", "mean_p_female", "mean_p_female_low", "mean_p_female_high",
           "mean_abs_dev", "mean_abs_dev_low", "mean_abs_dev_high", "mean_l1_low", "mean_l1_high",
           "exp_max_l1")


def test_stats_and_report_give_the_same_numbers_for_one_run(mb, tmp_path):
    out = tmp_path / "run"
    code, _, err = mb("audit", "--config", _audit_config(tmp_path), "--out", out, "--no-progress")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    code, stdout, err = mb("stats", out / "labels.parquet", "--classifier", "world", "--n-boot", "200",
                           "--seed", "0")
    assert code == 0, err
    from_stats = {(g["lang"], g["formulation"]): g for g in json.loads(stdout)}
    from_report = {(g["lang"], g["formulation"]): g for g in summary["groups"]}
    assert sorted(from_stats) == sorted(from_report) and len(from_stats) == 4
    for key, g in from_report.items():
        assert {k: g[k] for k in NUMBERS} == {k: from_stats[key][k] for k in NUMBERS}, key


def test_a_models_name_does_not_move_its_intervals():
    from magbig.report import build_report
    from magbig.stats import summarize_labels_table

    rows = []
    for subject, (n_female, n_male) in {"a": (1, 5), "b": (3, 3), "c": (5, 1)}.items():
        rows += [{"subject": subject, "lang": "de", "formulation": "direct", "status": "ok",
                  "label": label} for label in ["female"] * n_female + ["male"] * n_male]
    labels = pl.DataFrame(rows)
    (plain,) = summarize_labels_table(labels)
    for name in ("tiny-random", "another name"):
        (named,) = build_report(labels, run_info={"model": name}).summary()["groups"]
        assert {k: named[k] for k in NUMBERS} == {k: plain[k] for k in NUMBERS}


def test_ctrl_c_exits_130_with_the_resume_hint(capsys):
    import typer

    from neobabel.clikit import run_cli

    app = typer.Typer()

    @app.command()
    def work():
        raise KeyboardInterrupt

    @app.command()
    def other():
        pass

    with pytest.raises(SystemExit) as exc:
        import sys
        old = sys.argv
        sys.argv = ["prog", "work"]
        try:
            run_cli(app, "prog")
        finally:
            sys.argv = old
    assert exc.value.code == 130
    assert "prog: interrupted; rerun the same command to resume" in capsys.readouterr().err
