"""`neobabel eval geneval`: generate + score on the world model, GenEval folders, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from neobabel.eval.world import object_suite, world_geneval_suite
from neobabel.world.render import render
from neobabel.world.spec import TASKS, ObjectScene

SHARED = Path("/work/shared/data/m-geneval")


def _one_line_error(code, err):
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("neobabel: error: "), err
    return lines[0]


@pytest.mark.slow
def test_geneval_on_the_world_model_generates_scores_and_resumes(cli, tmp_path):
    out = tmp_path / "run"
    args = ["eval", "geneval", "--model", "world", "--langs", "en,de", "-n", "1", "--per-task", "1",
            "--out", str(out), "--no-progress"]
    code, stdout, err = cli(*args)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["per_lang"]) == {"en", "de"} and summary["vocab"] == "world"
    for lang in ("en", "de"):
        s = summary["per_lang"][lang]
        assert set(s["tasks"]) == set(TASKS) and s["images"] == 6 and s["failed_images"] == 0
        assert s["overall"] == pytest.approx(sum(t["score"] for t in s["tasks"].values()) / 6)
    assert summary["backend"]["reference"] is False and "non-reference backend" in summary["backend"]["note"]
    assert summary["options"]["counting_threshold"] == 0.9 and summary["source"]["generated"] == 12
    scores = pl.read_parquet(out / "scores.parquet")
    assert scores["key"].n_unique() == 12 and scores.height > 12  # one row per image x check
    assert {"count", "exclude"} <= set(scores["check"].to_list())
    html = (out / "geneval.html").read_text()
    assert "<table>" in html and "non-reference backend" in html
    assert "| en |" in (out / "geneval.md").read_text()
    assert "overall" in stdout
    code, _, err = cli(*args)  # rerun: nothing regenerated, same scores
    assert code == 0, err
    again = json.loads((out / "summary.json").read_text())
    assert again["source"]["generated"] == 0 and again["per_lang"] == summary["per_lang"]


def _geneval_folder(root: Path, per_task: int = 1, lang_field: str | None = None) -> list:
    """GenEval's layout with world renders: <00000>/metadata.jsonl + samples/0000.png, 0001.png."""
    suite = object_suite(per_task, ["en"])
    lines = world_geneval_suite(per_task, ["en"])
    for i, ((pid, line), p) in enumerate(zip(lines, suite)):
        folder = root / f"{i:05d}"
        (folder / "samples").mkdir(parents=True)
        meta = {**line.spec, "prompt": line.prompt, **({"lang": lang_field} if lang_field else {})}
        (folder / "metadata.jsonl").write_text(json.dumps(meta))
        for s in range(2):
            render(ObjectScene.from_dict(p.spec), s).save(folder / "samples" / f"{s:04d}.png")
    return lines


def test_images_folder_is_scored_and_missing_or_corrupt_images_are_counted(cli, tmp_path):
    root = tmp_path / "imgs"
    _geneval_folder(root)
    (root / "00000" / "samples" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    (root / "00001" / "samples" / "0001.png").unlink()
    out = tmp_path / "scored"
    code, stdout, err = cli("eval", "geneval", "--images", str(root), "--vocab", "world", "-n", "2",
                            "--out", str(out), "--no-progress")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    s = summary["per_lang"]["en"]
    assert s["images"] == 12 and s["failed_images"] == 2
    assert s["failed_by_status"] == {"missing": 1, "unreadable": 1}
    assert s["tasks"]["single_object"]["score"] == 0.5  # the corrupt sample counts as incorrect
    assert s["tasks"]["two_object"]["score"] == 0.5  # so does the missing one
    assert all(s["tasks"][t]["score"] == 1.0 for t in TASKS if t not in ("single_object", "two_object"))
    assert "2 images missing or unreadable" in stdout
    assert not (root / "images").exists()


def test_unknown_tag_in_a_folder_is_one_line_naming_the_file_and_line(cli, tmp_path):
    root = tmp_path / "imgs"
    _geneval_folder(root)
    meta = root / "00002" / "metadata.jsonl"
    meta.write_text(meta.read_text().replace('"counting"', '"countin"'))
    code, _, err = cli("eval", "geneval", "--images", str(root), "--vocab", "world", "--out", str(tmp_path / "o"))
    line = _one_line_error(code, err)
    assert "00002/metadata.jsonl:1" in line and "unknown GenEval tag 'countin'" in line


def test_metadata_file_missing_a_field_is_one_line_with_the_line_number(cli, tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text('{"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a cat"}\n'
                 '{"tag": "single_object", "prompt": "a dog"}\n')
    code, _, err = cli("eval", "geneval", "--metadata", str(f), "--langs", "en", "--out", str(tmp_path / "o"))
    line = _one_line_error(code, err)
    assert "m.jsonl:2: missing field 'include'" in line
    assert not (tmp_path / "o").exists()


def test_misaligned_metadata_is_refused_with_the_counts_and_the_fix(cli, tmp_path):
    path = SHARED / "evaluation_metadata_persian.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    code, _, err = cli("eval", "geneval", "--metadata", str(path), "--langs", "fa", "--out", str(tmp_path / "o"))
    line = _one_line_error(code, err)
    assert "90 differ" in line and "--repair" in line


def test_world_detector_on_coco_prompts_and_a_missing_detector_are_refused_before_generating(cli, tmp_path):
    code, _, err = cli("eval", "geneval", "--vocab", "coco", "--detector", "world", "--out", str(tmp_path / "a"))
    assert "--vocab world" in _one_line_error(code, err)
    code, _, err = cli("eval", "geneval", "--vocab", "coco", "--detector", "mask2former", "--detector-model",
                       str(tmp_path / "no-such-model"), "--out", str(tmp_path / "b"))
    assert "does not exist" in _one_line_error(code, err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "images").exists()


def test_bad_option_values_are_one_line(cli, tmp_path):
    code, _, err = cli("eval", "geneval", "--threshold", "1.5", "--out", str(tmp_path / "o"))
    assert "threshold=1.5" in _one_line_error(code, err)
    code, _, err = cli("eval", "geneval", "--langs", "xx", "--out", str(tmp_path / "o"))
    assert "xx" in _one_line_error(code, err)


def test_coco_folder_scored_with_tiny_mask2former_and_clip_through_the_cli(cli, tmp_path):
    from magbig.testing import build_clip_model
    from neobabel.eval.i18n import geneval_classes
    from neobabel.eval.tasks import builtin_metadata
    from neobabel.testing import build_tiny_mask2former

    m2f = build_tiny_mask2former(tmp_path / "m2f", labels=geneval_classes())
    clip = build_clip_model(tmp_path / "clip")
    lines = builtin_metadata("en")
    picked = [next(ln for ln in lines if ln.tag == t) for t in ("colors", "counting", "position")]
    rng = np.random.default_rng(0)
    for i, ln in enumerate(picked):
        folder = tmp_path / "imgs" / f"{i:05d}"
        (folder / "samples").mkdir(parents=True)
        (folder / "metadata.jsonl").write_text(json.dumps(ln.to_json()))
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "samples" / "0000.png")
    out = tmp_path / "out"
    code, stdout, err = cli("eval", "geneval", "--images", str(tmp_path / "imgs"), "--vocab", "coco", "-n", "1",
                            "--detector", "mask2former", "--detector-model", str(m2f), "--clip-model", str(clip),
                            "--threshold", "0.0", "--counting-threshold", "0.0", "--out", str(out), "--no-progress")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert "Mask2Former" in summary["backend"]["detector"] and summary["backend"]["reference"] is False
    assert "CLIP" in summary["backend"]["color"] and summary["options"]["threshold"] == 0.0
    assert summary["per_lang"]["en"]["images"] == 3 and summary["per_lang"]["en"]["failed_images"] == 0
    scores = pl.read_parquet(out / "scores.parquet")
    assert {"count", "color"} <= set(scores["check"].to_list())
    assert set(scores["class"].drop_nulls().to_list()) <= set(geneval_classes())


def test_images_folder_with_several_languages_is_refused(cli, tmp_path):
    root = tmp_path / "imgs"
    _geneval_folder(root)
    code, out, err = cli("eval", "geneval", "--images", str(root), "--vocab", "world", "--langs", "en,de",
                         "--out", str(tmp_path / "o"), "--no-progress")
    assert "--images scores one folder in one language" in _one_line_error(code, err)
    assert not (tmp_path / "o").exists()
