"""`neobabel eval geneval --engine ray`: generation on RayRunner actors and scoring on RayPool
actors give the run and the scores one process gives (skipped without Ray)."""

from __future__ import annotations

import hashlib
import json

import polars as pl
import pytest

ARGS = ["eval", "geneval", "--model", "world", "--langs", "en,de", "-n", "1", "--per-task", "1",
        "--score-batch-size", "2", "--no-progress"]


def _scores(out):
    return pl.read_parquet(out / "scores.parquet").drop("path").to_dicts()  # path: where OUT is


def _pngs(out):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "images").glob("*.png")}


@pytest.mark.slow
def test_ray_eval_equals_one_process(cli, tmp_path, ray_cluster):
    code, out, err = cli(*ARGS, "--out", str(tmp_path / "local"))
    assert code == 0, err
    code, out, err = cli(*ARGS, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2")
    assert code == 0, err
    assert _pngs(tmp_path / "ray") == _pngs(tmp_path / "local") and len(_pngs(tmp_path / "local")) == 12
    assert _scores(tmp_path / "ray") == _scores(tmp_path / "local")  # same rows, same order
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["engine"] == "ray"
    assert summary["per_lang"] == json.loads((tmp_path / "local" / "summary.json").read_text())["per_lang"]
    info = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert info["engine"] == "ray" and info["invocations"][-1]["status"] == "complete"


def test_ray_options_need_engine_ray(cli, tmp_path):
    code, out, err = cli(*ARGS, "--out", str(tmp_path / "x"), "--workers", "2")
    assert code == 2 and "--engine ray" in err and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_ray_generation_for_dpg_and_consistency(cli, tmp_path, ray_cluster):
    """eval dpg / consistency make their images on Ray actors: the scores one process gets."""
    for command, extra in (("dpg", ["--prompts", "1", "-n", "1"]),
                           ("consistency", ["--prompts", "1", "-n", "1", "--encoders", "world-parse",
                                            "--no-code-switch"])):
        common = ["eval", command, "--model", "world", "--langs", "en,de", *extra, "--no-progress"]
        code, out, err = cli(*common, "--out", str(tmp_path / f"{command}-local"))
        assert code == 0, err
        code, out, err = cli(*common, "--out", str(tmp_path / f"{command}-ray"), "--engine", "ray", "--workers", "2")
        assert code == 0, err
        assert _pngs(tmp_path / f"{command}-ray") == _pngs(tmp_path / f"{command}-local")
        local = pl.read_parquet(tmp_path / f"{command}-local" / "scores.parquet")
        ray_scores = pl.read_parquet(tmp_path / f"{command}-ray" / "scores.parquet")
        drop = [c for c in local.columns if "path" in c]
        assert ray_scores.drop(drop).equals(local.drop(drop)), command
        assert json.loads((tmp_path / f"{command}-ray" / "run.json").read_text())["engine"] == "ray"
