"""The world as an m-GenEval vocabulary: world scenes as GenEval specs, decided by the same
rules engine through the exact detector."""

from __future__ import annotations

import numpy as np
import pytest

from neobabel.eval import geneval as ge
from neobabel.eval.scoring import ImageJob, score_images
from neobabel.eval.tasks import alignment_report
from neobabel.eval.world import (
    WORLD_CLASSES, WorldDetector, object_suite, scene_spec, world_colors, world_geneval_suite,
)
from neobabel.world.render import render
from neobabel.world.spec import TASKS, ObjectScene, WorldObject


def test_world_scenes_become_genevals_spec_forms():
    s = ObjectScene("position", (WorldObject("circle", "red"), WorldObject("star", "blue")), "left of")
    assert scene_spec(s) == {"tag": "position", "include": [
        {"class": "star", "count": 1}, {"class": "circle", "count": 1, "position": ["left of", 0]}]}
    c = ObjectScene("counting", tuple(WorldObject("cross", "green") for _ in range(3)))
    assert scene_spec(c) == {"tag": "counting", "include": [{"class": "cross", "count": 3}],
                             "exclude": [{"class": "cross", "count": 4}]}
    for p in object_suite(3, ["en"]):
        ge.check_spec(scene_spec(ObjectScene.from_dict(p.spec)))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """30 scenes per task rendered from their specs, as PNG files."""
    root = tmp_path_factory.mktemp("world")
    jobs = []
    for i, (pid, line) in enumerate(world_geneval_suite(30, ["en"])):
        scene = ObjectScene.from_dict(object_suite(30, ["en"])[i].spec)
        path = root / f"{i:04d}.png"
        render(scene, i).save(path)
        jobs.append(ImageJob(f"k{i}", "en", pid, i, path, line.spec))
    return jobs


def test_world_renders_score_at_least_099_per_task_with_the_exact_detector(rendered):
    report = score_images(rendered, WorldDetector(), world_colors, batch_size=16)
    summary = ge.summarize(ge.scores_frame(report.rows))["per_lang"]["en"]
    assert set(summary["tasks"]) == set(TASKS)
    for tag, t in summary["tasks"].items():
        assert t["score"] >= 0.99, (tag, t)
    assert report.failed == 0 and summary["failed_images"] == 0


def test_wrong_scenes_fail_the_same_checks(rendered):
    # each image scored against the next scene's spec of the same task: mostly wrong
    jobs = [ImageJob(j.key, j.lang, j.prompt_id, j.seed, j.path, rendered[i + 1].spec)
            for i, j in enumerate(rendered[:-1]) if rendered[i + 1].tag == j.tag]
    report = score_images(jobs, WorldDetector(), world_colors)
    correct = ge.image_table(ge.scores_frame(report.rows))["correct"].mean()
    assert correct < 0.6


def test_the_world_suite_is_paired_by_spec_across_languages():
    en = [line for _, line in world_geneval_suite(2, ["en"])]
    fa = [line for _, line in world_geneval_suite(2, ["fa"])]
    assert alignment_report(fa, tuple(ln.spec for ln in en)).aligned
    assert all(a.prompt != b.prompt for a, b in zip(en, fa))
    assert {r["class"] for ln in en for r in ln.spec["include"]} <= set(WORLD_CLASSES)


def test_missing_and_corrupt_world_images_are_counted_failures(rendered, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    jobs = [rendered[0], ImageJob("m", "en", "x", 0, tmp_path / "gone.png", rendered[0].spec),
            ImageJob("c", "en", "y", 0, bad, rendered[0].spec)]
    report = score_images(jobs, WorldDetector(), world_colors)
    frame = ge.scores_frame(report.rows)
    images = ge.image_table(frame)
    assert images.height == 3 and report.failed == 2
    assert dict(zip(images["key"], images["status"])) == {"k0": "ok", "m": "missing", "c": "unreadable"}
    assert ge.summarize(frame)["per_lang"]["en"]["failed_images"] == 2
