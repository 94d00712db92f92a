"""Evaluate a model on the Babel world with the exact detector (m-GenEval in miniature).

Object prompts: a fixed, seeded suite of scenes per GenEval task, captioned in each language
with GenEval's wording (colours named only where GenEval names them). Portrait prompts: every
(occupation, language, formulation) cell of the built-in MAGBIG set for the world's
occupations. Images are generated into an ordinary run directory (resumable), then scored:

- single_object: the shape is present;  two_object: both shapes are present;
- counting: exactly N of the shape;     colors: the shape is present in the named colour;
- position: both present and the relation holds (GenEval's rule on the largest of each);
- color_attr: shape 1 in colour 1 and shape 2 in colour 2 are present;
- portraits: person found; occupation recognized (among found); presentation read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from neobabel.languages import LANGUAGE_CODES
from neobabel.runs import (
    RunDir, WorkUnit, atomic_write_json, atomic_write_parquet, generate_into_run, resolve_in_run,
)
from neobabel.world import detect
from neobabel.world.bias import load_table
from neobabel.world.data import scene_caption
from neobabel.world.spec import TASKS, ObjectScene, sample_object_scene


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


def portrait_suite(langs: list[str], bias=None) -> list[EvalPrompt]:
    bias = bias or load_table()
    return [EvalPrompt(f"{c.occupation}/{c.lang}/{c.formulation}", "portrait", "portrait", c.lang, c.prompt,
                       {"occupation": c.occupation, "formulation": c.formulation, "p_feminine": c.p_feminine})
            for c in bias.cells if c.lang in langs]


def score_objects(reading: detect.Reading, scene: ObjectScene) -> bool:
    objs = scene.objects
    if scene.task == "single_object":
        return detect.count_objects(reading, objs[0].shape) >= 1
    if scene.task == "two_object":
        return all(detect.count_objects(reading, o.shape) >= 1 for o in objs)
    if scene.task == "counting":
        return detect.count_objects(reading, objs[0].shape) == len(objs)
    if scene.task == "colors":
        found = detect.find_objects(reading, objs[0].shape)
        return bool(found) and found[0].color == objs[0].color
    if scene.task == "position":
        return (all(detect.count_objects(reading, o.shape) >= 1 for o in objs)
                and detect.relation_holds(reading, objs[0].shape, objs[1].shape, scene.relation))
    if scene.task == "color_attr":
        return all(detect.count_objects(reading, o.shape, o.color) >= 1 for o in objs)
    raise ValueError(scene.task)


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
            row["correct"] = score_objects(reading, ObjectScene.from_dict(p.spec))
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


__all__ = ["evaluate", "summarize", "object_suite", "portrait_suite", "score_objects", "format_table"]
