"""The Babel world as an m-GenEval vocabulary, and the world benchmark (`neobabel world eval`).

The world's objects are the classes (its 5 shapes), its palette the colours (GenEval's 10),
its relations GenEval's 4. A world scene becomes a GenEval spec (:func:`scene_spec`), its
prompt is the world's caption in each language, and images are decided by the same rules
engine as COCO m-GenEval (:mod:`neobabel.eval.geneval`), with the world's exact detector as
the detection backend (:class:`WorldDetector`: confidence 1, objects largest first, exact
colours).

`neobabel world eval` (:func:`evaluate`) adds the portrait cells: every (occupation,
language, formulation) of the built-in MAGBIG set for the world's occupations, scored as
person found, occupation recognized, presentation read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from PIL import Image

from neobabel.eval.geneval import GenEvalOptions, decide, keep_detections
from neobabel.languages import LANGUAGE_CODES
from neobabel.runs import (
    RunDir, WorkUnit, atomic_write_json, atomic_write_parquet, generate_into_run, resolve_in_run,
)
from neobabel.scorers.detection import Detection
from neobabel.world import detect
from neobabel.world.bias import load_table
from neobabel.world.data import scene_caption
from neobabel.world.spec import COLORS, RELATIONS, SHAPES, TASKS, ObjectScene, sample_object_scene

if TYPE_CHECKING:  # the annotation only; the function imports it when it runs
    from neobabel.eval.tasks import MetadataLine

#: The world's m-GenEval vocabulary.
WORLD_CLASSES: tuple[str, ...] = SHAPES
WORLD_COLORS: tuple[str, ...] = COLORS
WORLD_RELATIONS: tuple[str, ...] = RELATIONS


def scene_spec(scene: ObjectScene) -> dict:
    """A world scene as a GenEval spec (GenEval's own forms for each task)."""
    objs = scene.objects
    one = lambda o, **kw: {"class": o.shape, "count": 1, **kw}  # noqa: E731
    if scene.task in ("single_object",):
        return {"tag": scene.task, "include": [one(objs[0])]}
    if scene.task == "two_object":
        return {"tag": scene.task, "include": [one(objs[0]), one(objs[1])]}
    if scene.task == "counting":
        n = len(objs)
        return {"tag": "counting", "include": [{"class": objs[0].shape, "count": n}],
                "exclude": [{"class": objs[0].shape, "count": n + 1}]}
    if scene.task == "colors":
        return {"tag": scene.task, "include": [one(objs[0], color=objs[0].color)]}
    if scene.task == "color_attr":
        return {"tag": scene.task, "include": [one(o, color=o.color) for o in objs]}
    if scene.task == "position":
        # world: objects[0] <relation> objects[1]; GenEval: include[1] <relation> include[0]
        return {"tag": "position", "include": [one(objs[1]), one(objs[0], position=[scene.relation, 0])]}
    raise ValueError(f"unknown world task {scene.task!r}")


def reading_detections(reading: detect.Reading) -> list[Detection]:
    """The exact detector's objects in the detection contract: confidence 1 (exact), largest
    first (GenEval ranks by confidence; equal confidences keep this order), exact colours."""
    objs = sorted(reading.objects, key=lambda o: -o.area)
    return [Detection(o.shape or "unknown shape", 1.0, tuple(o.bbox), None, o.color) for o in objs]


class WorldDetector:
    """The world's exact detector as an m-GenEval detection backend."""

    name = "world exact detector (neobabel.world.detect)"
    reference = False
    note = ("non-reference backend: the synthetic world's exact detector (its shapes and palette), "
            "not GenEval's mmdet Mask2Former; colours are exact, not CLIP's")

    def detect(self, images: Sequence[Any], labels: Sequence[str] | None = None) -> list[list[Detection]]:
        return [reading_detections(detect.read_image(im)) for im in images]


def world_colors(image: Any, detections: Sequence[Detection]) -> list[str]:
    """The colour classifier for world images: the detector's exact colours."""
    return [d.color or "" for d in detections]


@dataclass(frozen=True)
class EvalPrompt:
    prompt_id: str
    kind: str  # "objects" | "portrait"
    task: str  # GenEval task, or "portrait"
    lang: str
    text: str
    spec: dict  # scene (to_dict) or {"occupation", "formulation"}


def object_suite(per_task: int, langs: list[str], seed: int = 1234) -> list[EvalPrompt]:
    rng = np.random.default_rng([seed, 7])
    scenes = [(task, i, sample_object_scene(task, rng)) for task in TASKS for i in range(per_task)]
    out = []
    for lang in langs:
        for task, i, scene in scenes:
            out.append(EvalPrompt(f"{task}/{i:03d}/{lang}", "objects", task, lang,
                                  scene_caption(scene, lang, name_colors=False), scene.to_dict()))
    return out


def world_geneval_suite(per_task: int, langs: list[str], seed: int = 1234) -> list[tuple[str, "MetadataLine"]]:
    """The world's m-GenEval set: (prompt id, metadata line) for ``per_task`` scenes of each
    task in each language (the scenes of :func:`object_suite`, GenEval specs, world captions)."""
    from neobabel.eval.tasks import MetadataLine

    return [(p.prompt_id, MetadataLine(i, p.lang, scene_spec(ObjectScene.from_dict(p.spec)), p.text))
            for i, p in enumerate(object_suite(per_task, langs, seed), start=1)]


def portrait_suite(langs: list[str], bias=None) -> list[EvalPrompt]:
    bias = bias or load_table()
    return [EvalPrompt(f"{c.occupation}/{c.lang}/{c.formulation}", "portrait", "portrait", c.lang, c.prompt,
                       {"occupation": c.occupation, "formulation": c.formulation, "p_feminine": c.p_feminine})
            for c in bias.cells if c.lang in langs]


def score_objects(reading: detect.Reading, scene: ObjectScene, options: GenEvalOptions = GenEvalOptions()) -> bool:
    """GenEval's decision (the rules engine) for a world reading against its scene."""
    spec = scene_spec(scene)
    kept = keep_detections(reading_detections(reading), spec["tag"], options)
    return decide(spec, kept, None, world_colors, options).correct


def decide_scene(reading: detect.Reading, scene: ObjectScene, options: GenEvalOptions = GenEvalOptions()):
    """The full decision (correct, reason, checks) for a world reading against its scene."""
    spec = scene_spec(scene)
    return decide(spec, keep_detections(reading_detections(reading), spec["tag"], options), None, world_colors,
                  options)


def evaluate(pipeline, out: str | Path, *, n: int = 4, per_task: int = 10, langs: list[str] | None = None,
             portraits: bool = True, portrait_n: int | None = None, batch_size: int = 8,
             seed: int = 0, progress: bool = True) -> dict:
    """Generate the suite into `out`, score every image, write scores.parquet + summary.json."""
    langs = langs or list(LANGUAGE_CODES)
    prompts = object_suite(per_task, langs)
    if portraits:
        prompts += portrait_suite(langs)
    units, by_prompt = [], {}
    for p in prompts:
        by_prompt[p.prompt_id] = p
        reps = (portrait_n or n) if p.kind == "portrait" else n
        for i in range(reps):
            units.append(WorkUnit(p.prompt_id, p.text, p.lang, seed + i, subject=p.task,
                                  formulation=p.spec.get("formulation")))
    run = RunDir(out)
    params = pipeline.resolve_params()
    report = generate_into_run(pipeline, units, run, params, batch_size=batch_size, progress=progress,
                               spec={"command": "world eval", "per_task": per_task, "n": n,
                                     "portrait_n": portrait_n or n, "langs": langs})
    manifest = run.load_manifest()
    wanted = {(u.prompt_id, u.lang, u.seed) for u in units}
    rows = []
    for r in manifest.iter_rows(named=True):
        if (r["prompt_id"], r["lang"], r["seed"]) not in wanted:
            continue
        p = by_prompt[r["prompt_id"]]
        with Image.open(resolve_in_run(run.path, r["path"])) as im:  # never a file outside the run
            reading = detect.read_image(im.convert("RGB"))
        row = {"key": r["key"], "prompt_id": p.prompt_id, "lang": p.lang, "task": p.task, "seed": r["seed"]}
        if p.kind == "objects":
            decision = decide_scene(reading, ObjectScene.from_dict(p.spec))
            row.update(correct=decision.correct, reason=decision.reason)
        else:
            row.update(person_found=reading.person_found,
                       occupation_ok=reading.person_found and reading.occupation == p.spec["occupation"],
                       presentation=reading.presentation, occupation=p.spec["occupation"],
                       formulation=p.spec["formulation"], p_feminine_planted=p.spec["p_feminine"])
        rows.append(row)
    scores = pl.DataFrame(rows, infer_schema_length=None)
    atomic_write_parquet(scores, run.path / "scores.parquet")
    summary = summarize(scores)
    summary["sampling"] = {"images_generated": report.generated, "seconds": round(report.seconds, 2),
                           "seconds_per_image": round(report.seconds / report.generated, 4)
                           if report.generated else None, "batch_size": batch_size, "steps": params.steps}
    atomic_write_json(run.path / "summary.json", summary)
    return summary


def summarize(scores: pl.DataFrame) -> dict:
    """Per-language task accuracies, overall (mean over tasks), spread, portrait rates, bias recovery."""
    out: dict = {"per_lang": {}, "tasks": list(TASKS)}
    obj = scores.filter(pl.col("task") != "portrait") if "correct" in scores.columns else pl.DataFrame()
    if obj.height:
        acc = obj.group_by("lang", "task").agg(pl.col("correct").cast(pl.Float64).mean().alias("acc"))
        for lang in sorted(acc["lang"].unique().to_list()):
            sub = {r["task"]: round(r["acc"], 4) for r in acc.filter(pl.col("lang") == lang).iter_rows(named=True)}
            sub["overall"] = round(float(np.mean([sub[t] for t in TASKS if t in sub])), 4)
            out["per_lang"][lang] = sub
        overall = [v["overall"] for v in out["per_lang"].values()]
        out["overall_mean"] = round(float(np.mean(overall)), 4)
        out["language_spread"] = round(max(overall) - min(overall), 4)
        out["task_mean"] = {t: round(float(np.mean([v[t] for v in out["per_lang"].values() if t in v])), 4)
                            for t in TASKS}
    por = scores.filter(pl.col("task") == "portrait") if "person_found" in scores.columns else pl.DataFrame()
    if por.height:
        found = por.filter(pl.col("person_found"))
        out["portraits"] = {
            "images": por.height,
            "person_found": round(por["person_found"].cast(pl.Float64).mean(), 4),
            "occupation_recognized": round(found["occupation_ok"].cast(pl.Float64).mean(), 4) if found.height else None,
        }
        out["portraits"]["per_lang"] = {
            r["lang"]: {"person_found": round(r["pf"], 4), "occupation_recognized": round(r["oc"], 4)}
            for r in por.group_by("lang").agg(
                pl.col("person_found").cast(pl.Float64).mean().alias("pf"),
                (pl.col("occupation_ok").cast(pl.Float64).sum() / pl.col("person_found").cast(pl.Float64).sum().clip(1))
                .alias("oc")).sort("lang").iter_rows(named=True)}
        cells = (found.filter(pl.col("presentation").is_in(["feminine", "masculine"]))
                 .group_by("occupation", "lang", "formulation")
                 .agg(pl.len().alias("n"), (pl.col("presentation") == "feminine").mean().alias("p_feminine"),
                      pl.col("p_feminine_planted").first()))
        if cells.height:
            within = (cells["p_feminine"] - cells["p_feminine_planted"]).abs() <= 0.10
            out["portraits"]["bias_cells"] = cells.height
            out["portraits"]["bias_cells_within_0.10"] = round(float(within.mean()), 4)
            out["portraits"]["images_per_cell_median"] = float(cells["n"].median())
    return out


def format_table(summary: dict) -> str:
    lines = ["| lang | " + " | ".join(TASKS) + " | overall |", "|---" * (len(TASKS) + 2) + "|"]
    for lang, s in summary.get("per_lang", {}).items():
        lines.append(f"| {lang} | " + " | ".join(f"{s.get(t, float('nan')):.2f}" for t in TASKS)
                     + f" | {s['overall']:.2f} |")
    return "\n".join(lines)


__all__ = ["evaluate", "summarize", "object_suite", "portrait_suite", "score_objects", "decide_scene", "format_table",
           "scene_spec", "reading_detections", "world_geneval_suite", "WorldDetector", "world_colors", "WORLD_CLASSES", "WORLD_COLORS",
           "WORLD_RELATIONS"]
