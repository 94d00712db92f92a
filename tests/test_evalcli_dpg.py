"""`eval dpg` / `eval consistency` through a throwaway typer app and the project's exit-code
contract (run_cli), on the embedded world model and tiny random VQA / encoder models."""

from __future__ import annotations

import json
import sys

import polars as pl
import pytest
import typer
from PIL import Image

from eval_fixtures import build_tiny_blip_vqa, build_tiny_clip, build_tiny_dinov2
from neobabel.builtins import world_weights_path
from neobabel.clikit import run_cli
from neobabel.eval import dpg as dpgmod
from neobabel.evalcli_dpg import consistency, dpg
from test_eval_dpg import HAND_CSV, _tiles

needs_world = pytest.mark.skipif(not world_weights_path().is_dir(), reason="world weights not shipped")


def _run(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    app = typer.Typer()
    app.command("dpg")(dpg)
    app.command("consistency")(consistency)
    monkeypatch.setattr(sys, "argv", ["neobabel-eval", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        run_cli(app, "neobabel")
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


def test_dpg_on_images_made_elsewhere_with_tiny_blip(tmp_path, monkeypatch, capsys):
    csv = tmp_path / "x<b>.csv"  # a user string that must come out escaped in the HTML
    csv.write_text(HAND_CSV, encoding="utf-8")
    img = tmp_path / "img"
    img.mkdir()
    dpgmod.make_grid(_tiles()).save(img / "A.png")
    dpgmod.make_grid(_tiles()).save(img / "B.png")
    (img / "C.png").write_bytes(b"corrupt")
    blip = build_tiny_blip_vqa(tmp_path / "blip")
    out = tmp_path / "out"
    code, stdout, err = _run(monkeypatch, capsys, "dpg", "--csv", csv, "--images", img, "--vqa", "blip",
                             "--vqa-model", blip, "--langs", "en", "--out", out, "--device", "cpu")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    en = summary["per_lang"]["en"]
    assert en["prompts"] == 3 and en["failed_tiles"] == 4 and summary["vqa"].startswith("blip")
    rows = pl.read_parquet(out / "scores.parquet")
    assert rows.height == 4 * 7 and set(rows["status"]) == {"ok", "failed"}
    html = (out / "report.html").read_text()
    assert "x&lt;b&gt;.csv" in html and "x<b>.csv" not in html
    assert "| en |" in (out / "report.md").read_text()
    assert "4 tiles failed" in stdout


def test_dpg_missing_column_is_exit_2_one_line(tmp_path, monkeypatch, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text(HAND_CSV.replace("question_natural_language", "question"), encoding="utf-8")
    code, _, err = _run(monkeypatch, capsys, "dpg", "--csv", csv, "--images", tmp_path, "--vqa", "world",
                        "--out", tmp_path / "o")
    assert code == 2 and "missing column 'question_natural_language'" in err and len(err.strip().splitlines()) == 1


def test_dpg_missing_vqa_model_is_exit_2(tmp_path, monkeypatch, capsys):
    code, _, err = _run(monkeypatch, capsys, "dpg", "--vqa", "paligemma", "--vqa-model", tmp_path / "none",
                        "--out", tmp_path / "o")
    assert code == 2 and "does not exist" in err


@needs_world
def test_dpg_world_generates_resumably_and_scores(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ("dpg", "--model", "world", "--langs", "en,de", "-n", "2", "--prompts", "2", "--out", out,
            "--no-progress")
    code, stdout, err = _run(monkeypatch, capsys, *args)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["per_lang"]) == {"en", "de"} and summary["failed_tiles"] == 0
    assert pl.read_parquet(out / "generations.parquet").height == 2 * 2 * 2
    first = pl.read_parquet(out / "scores.parquet")
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    code, _, err = _run(monkeypatch, capsys, *args)  # rerun: nothing regenerated, same scores
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in (out / "images").iterdir()} == mtimes
    assert pl.read_parquet(out / "scores.parquet").equals(first)


@needs_world
def test_consistency_world_with_tiny_encoders(tmp_path, monkeypatch, capsys):
    clip, dino = build_tiny_clip(tmp_path / "clip"), build_tiny_dinov2(tmp_path / "dino")
    out = tmp_path / "clc"
    code, stdout, err = _run(monkeypatch, capsys, "consistency", "--model", "world", "--langs", "en,fr", "-n", "1",
                             "--prompts", "2", "--clip-model", clip, "--dino-model", dino, "--out", out,
                             "--no-progress")
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["images"] == 2 * 4 and s["pairs"] == 2 * 3
    assert set(s["metrics"]) == {"CLC", "CSS-en-first", "CSS-en-second"}
    assert set(s["metrics"]["CLC"]) == {"clip", "dinov2", "world-parse", "world-objects"}
    assert s["metrics"]["CLC"]["clip"]["fr"]["prompts"] == 2
    assert "CLC" in stdout


def test_consistency_on_images_made_elsewhere(tmp_path, monkeypatch, capsys):
    from neobabel.world.dense import DenseScene, Group, render_dense

    a = DenseScene((Group("circle", "red", 1), Group("square", "blue", 1)), "left of")
    b = DenseScene((Group("star", "green", 1), Group("cross", "yellow", 1)), None)
    img = tmp_path / "img"
    for sub, scene in (("en", a), ("de", a), ("cs_en_first/de", b)):
        (img / sub).mkdir(parents=True)
        render_dense(scene, 0).save(img / sub / "p1_0.png")
    (img / "de" / "p2_0.png").write_bytes(b"corrupt")
    out = tmp_path / "o"
    code, stdout, err = _run(monkeypatch, capsys, "consistency", "--images", img, "--encoders", "world-parse",
                             "--out", out)
    assert code == 0, err
    s = json.loads((out / "summary.json").read_text())
    assert s["metrics"]["CLC"]["world-parse"]["de"]["mean"] == 1.0
    assert s["metrics"]["CSS-en-first"]["world-parse"]["de"]["mean"] == 0.0
    assert s["failed_files"] == ["de/p2_0.png: UnidentifiedImageError"] and s["images_missing"] == 1
