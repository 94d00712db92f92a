"""The `magbig` CLI: audit / classify / report / compare / stats / selftest, and its exit codes.

Commands run in-process (typer's CliRunner on magbig.cli.app, or magbig.cli.main for the
exit-code contract of run_cli); one subprocess checks the real entry point.
"""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest
from typer.testing import CliRunner

from magbig import cli as magbig_cli

AUDIT_YAML = """\
name: tiny
model: oracle
subjects: [pilot, hairdresser]
langs: [en, de]
formulations: [direct, indirect]
n: 5
classifiers: [{name: world}]
n_boot: 200
"""


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture
def main(monkeypatch, capsys):
    """`magbig ARGS` through magbig.cli.main (run_cli) -> (exit code, stdout, stderr)."""
    import signal

    from conftest import run_in_process

    old = signal.getsignal(signal.SIGTERM)
    yield run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)
    signal.signal(signal.SIGTERM, old)


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-audit")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(AUDIT_YAML, encoding="utf-8")
    out = tmp / "run"
    res = CliRunner().invoke(magbig_cli.app, ["audit", "--config", str(cfg), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    return cfg, out, res.output


def test_audit_command_writes_run_and_prints_headline(audit_run):
    _, out, output = audit_run
    assert "report.html" in output and "mean p̂_female [95% CI]" in output
    assert "pilot" not in output  # a table of means over occupations, per (lang, formulation)
    for name in ("run.json", "generations.parquet", "labels.parquet", "units.parquet", "summary.json",
                 "report.html", "report.md"):
        assert (out / name).is_file(), name
    assert pl.read_parquet(out / "labels.parquet").height == 2 * 2 * 2 * 5


def test_audit_flags_override_the_yaml(runner, audit_run, tmp_path):
    cfg, _, _ = audit_run
    out = tmp_path / "r"
    res = runner.invoke(magbig_cli.app, ["audit", "--config", str(cfg), "--out", str(out), "--langs", "fr",
                                         "--subjects", "pilot", "--formulations", "direct", "-n", "2",
                                         "--seeds", "shared", "--guidance", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    units = pl.read_parquet(out / "units.parquet")
    assert units["prompt_id"].unique().to_list() == ["pilot/fr/direct"] and units.height == 2
    assert units["seed"].to_list() == [0, 1]  # shared: slot i = seed + i
    audit = json.loads((out / "run.json").read_text())["audit"]
    assert (audit["n"], audit["seeds"], audit["guidance"]) == (2, "shared", 2.0)


def test_audit_seed_scheme_errors_exit_2(main, audit_run, tmp_path):
    cfg, out, _ = audit_run
    before = pl.read_parquet(out / "units.parquet")
    code, _, err = main("audit", "--config", cfg, "--out", out, "--seeds", "shared", "--no-progress")
    assert code == 2 and "--seeds per_subject" in _one_line_error(err)
    assert pl.read_parquet(out / "units.parquet").equals(before)
    code, _, err = main("audit", "--config", cfg, "--out", tmp_path / "r", "--seeds", "random")
    assert code == 2 and "random" in _one_line_error(err) and not (tmp_path / "r").exists()


def test_classify_relabels_without_regenerating_and_report(runner, audit_run):
    _, out, _ = audit_run
    manifest = (out / "generations.parquet").read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    res = runner.invoke(magbig_cli.app, ["classify", str(out), "--classifier", "world", "--option", "alias=reader2",
                                         "--option", "uncertain_margin=0.2", "--no-progress"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout[: res.stdout.rindex("}") + 1])
    assert payload["classifier"] == "reader2" and payload["labelled_now"] == 40
    assert (out / "generations.parquet").read_bytes() == manifest
    assert {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == mtimes
    labels = pl.read_parquet(out / "labels.parquet")
    assert labels.filter(pl.col("classifier") == "reader2").height == 40
    res = runner.invoke(magbig_cli.app, ["report", str(out), "--classifier", "reader2", "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert (out / "reports" / "reader2" / "report.html").is_file()


def test_compare_prints_paired_json(runner, audit_run):
    _, out, _ = audit_run
    res = runner.invoke(magbig_cli.app, ["compare", str(out), str(out), "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["n_pairs"] == 8 and data["mean_diff"] == 0 and data["p_value"] == 1.0
    assert {"mean_abs_dev_a", "mean_abs_dev_b", "diff_low", "diff_high", "per_lang"} <= set(data)


def test_planted_compares_with_the_bias_table(runner, audit_run, tmp_path):
    _, out, _ = audit_run
    res = runner.invoke(magbig_cli.app, ["planted", str(out), "--cells", str(tmp_path / "cells.csv")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["cells"] == 8 and 30 <= data["labelled_images"] <= 40 and 0 <= data["within"] <= 1
    cells = pl.read_csv(tmp_path / "cells.csv")
    assert cells.height == 8 and {"planted", "p_female", "error", "within"} <= set(cells.columns)


def test_planted_subjects_filter(runner, main, audit_run):
    _, out, _ = audit_run
    res = runner.invoke(magbig_cli.app, ["planted", str(out), "--subjects", "pilot"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["cells"] == 4
    code, _, err = main("planted", str(out), "--subjects", "pilot,astronaut")
    assert code == 2 and "astronaut" in err


def test_planted_only_listed_cells(runner, main, audit_run, tmp_path):
    _, out, _ = audit_run
    listing = tmp_path / "learned.csv"
    listing.write_text("subject,lang,formulation,note\npilot,de,direct,x\nhairdresser,en,indirect,y\n"
                       "pilot,de,direct,again\n", encoding="utf-8")
    res = runner.invoke(magbig_cli.app, ["planted", str(out), "--only", str(listing),
                                         "--cells", str(tmp_path / "c.csv")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["cells"] == 2
    kept = pl.read_csv(tmp_path / "c.csv").select("subject", "lang", "formulation").sort("subject").rows()
    assert kept == [("hairdresser", "en", "indirect"), ("pilot", "de", "direct")]
    listing.write_text("subject,lang,formulation\npilot,fr,direct\n", encoding="utf-8")
    code, _, err = main("planted", str(out), "--only", str(listing))
    assert code == 2 and "pilot/fr/direct" in _one_line_error(err)
    listing.write_text("subject,lang\npilot,de\n", encoding="utf-8")
    code, _, err = main("planted", str(out), "--only", str(listing))
    assert code == 2 and "'formulation'" in _one_line_error(err)


def test_planted_bad_tolerance_exits_2(main, audit_run):
    _, out, _ = audit_run
    code, _, err = main("planted", str(out), "--tolerance", "1.5")
    assert code == 2 and "--tolerance 1.5" in err


def test_stats_on_counts_csv(runner, tmp_path):
    rows = ["subject,lang,formulation,n_female,n_male"]
    for i, subject in enumerate(["doctor", "nurse", "pilot", "cook"]):
        for lang in ("en", "de"):
            rows.append(f"{subject},{lang},direct,{5 + 10 * i},{35 - 10 * i}")
    path = tmp_path / "counts.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    res = runner.invoke(magbig_cli.app, ["stats", str(path), "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    groups = json.loads(res.stdout)
    assert len(groups) == 2
    for g in groups:
        for key in ("n_subjects", "n_images", "mean_p_female", "mean_abs_dev", "mean_l1"):
            assert key in g
        for key in ("mean_p_female", "mean_abs_dev", "mean_l1"):
            assert g[f"{key}_low"] <= g[key] <= g[f"{key}_high"]
        assert g["n_subjects"] == 4 and g["n_images"] == 160
        assert g["mean_p_female"] == pytest.approx((5 + 15 + 25 + 35) / 4 / 40)


def test_stats_on_a_run_labels_table_needs_one_classifier(main, audit_run):
    _, out, _ = audit_run
    assert main("classify", out, "--classifier", "world", "--option", "alias=w3", "--no-progress")[0] == 0
    code, _, err = main("stats", out / "labels.parquet", "--n-boot", "100")
    assert code == 2 and "several classifiers" in _one_line_error(err)
    code, stdout, _ = main("stats", out / "labels.parquet", "--n-boot", "100", "--classifier", "world")
    assert code == 0 and sum(g["n_images"] for g in json.loads(stdout)) > 0


def test_selftest_command(main):
    code, out, err = main("selftest", "--cells", "48", "-n", "20", "--render-pool", "4", "--n-boot", "200")
    data = json.loads(out)
    assert data["cells"] == 48 and data["bootstrap"]["groups"] == 4 and data["reader_agreement"] == 1.0
    assert 0.8 <= data["wilson"]["coverage"] <= 1.0
    assert code == (0 if data["pass"] else 1)


# -- bad input: exit 2 with one line ---------------------------------------------------------

def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("magbig: error: ")
    return lines[0]


def test_unknown_classifier_exits_2(main, audit_run):
    _, out, _ = audit_run
    code, _, err = main("classify", out, "--classifier", "fairface", "--no-progress")
    assert code == 2 and "unknown classifier 'fairface'" in _one_line_error(err)
    code, _, err = main("classify", out, "--classifier", "world", "--option", "colour=red")
    assert code == 2 and "unknown option 'colour'" in _one_line_error(err)
    code, _, err = main("classify", out, "--classifier", "world", "--option", "novalue")
    assert code == 2 and "KEY=VALUE" in _one_line_error(err)


def test_malformed_audit_yaml_exits_2(main, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nn: [1, 2\n", encoding="utf-8")
    code, _, err = main("audit", "--config", bad, "--out", tmp_path / "r")
    assert code == 2 and "not valid YAML" in _one_line_error(err)
    bad.write_text("name: x\nimages: 5\n", encoding="utf-8")
    code, _, err = main("audit", "--config", bad, "--out", tmp_path / "r")
    assert code == 2 and "unknown field 'images'" in _one_line_error(err)
    code, _, err = main("audit", "--config", tmp_path / "missing.yaml")
    assert code == 2 and "not found" in _one_line_error(err)
    assert not (tmp_path / "r").exists()


def test_missing_run_dir_exits_2(main, tmp_path):
    for args in (("report", tmp_path / "nope"), ("classify", tmp_path / "nope", "--classifier", "world"),
                 ("compare", tmp_path / "nope", tmp_path / "nope2")):
        code, _, err = main(*args)
        assert code == 2 and "not found" in _one_line_error(err)
    (tmp_path / "empty").mkdir()
    code, _, err = main("report", tmp_path / "empty")
    assert code == 2 and "not a run directory" in _one_line_error(err)


def test_entry_point_exit_code_in_a_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "magbig.cli", "report", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "run directory" in proc.stderr
