"""`neobabel eval ...`: alignment benchmarks over generated images or a folder of images.

One function per command; the options and steps several commands share (model, languages,
images per prompt, run directory, device, loading a pipeline) are module-level helpers, so
other eval commands (dpg, consistency) can be added from their own modules.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.table import Table

from neobabel import preflight
from neobabel.builtins import default_model
from neobabel.clikit import (
    ADDRESS_HELP, ALLOW_PICKLE_HELP, DEVICE_METAVAR, ENGINE_HELP, FAST_BATCHING_HELP, NO_LIMITS_HELP, WORKERS_HELP,
    EngineName, console, model_help, new_app,
)
from neobabel.devices import resolve_device
from neobabel.errors import InputError
from neobabel.languages import parse_langs

logger = logging.getLogger("neobabel.evalcli")

eval_app = new_app("Alignment benchmarks: m-GenEval, m-DPG, cross-lingual consistency (CLC/CSS).")

# -- options shared by eval commands ----------------------------------------------------------------

ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help=model_help())]
LangsOpt = Annotated[str, typer.Option("--langs", help="comma-separated language codes, or all")]
ImagesPerPromptOpt = Annotated[int, typer.Option("-n", help="images per prompt (seeds SEED .. SEED+n-1)")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="run directory (images, scores, summary, reports)")]
ImagesDirOpt = Annotated[Optional[Path], typer.Option("--images", help="score images made elsewhere instead of generating")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed of each prompt's first image")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="images per generation forward pass")]
ScoreBatchOpt = Annotated[int, typer.Option("--score-batch-size", help="images per detector forward pass")]
DeviceOpt = Annotated[str, typer.Option("--device", metavar=DEVICE_METAVAR, help="where the models run")]
FastBatchingOpt = Annotated[bool, typer.Option("--fast-batching", help=FAST_BATCHING_HELP)]
AllowPickleOpt = Annotated[bool, typer.Option("--allow-pickle", help=ALLOW_PICKLE_HELP)]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")]
NoLimitsOpt = Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)]
EngineOpt = Annotated[EngineName, typer.Option("--engine", help=ENGINE_HELP)]
AddressOpt = Annotated[Optional[str], typer.Option("--address", help=ADDRESS_HELP)]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help=WORKERS_HELP)]


def check_engine(engine: str, address: str | None, workers: int | None) -> None:
    if engine != "ray" and (address is not None or workers is not None):
        raise InputError("--address and --workers are for --engine ray; add --engine ray or drop them")


def ray_runner_for(pipe, model: str | None, allow_pickle: bool, batch_size: int, address: str | None,
                   workers: int | None):
    """runner_for(params, run_dir) -> a RayRunner whose actors load the same model (generation)."""
    from neobabel.engines import RayRunner  # heavy: Ray, only for --engine ray

    def make(params, run_dir):
        return RayRunner(pipe, {"source": model or default_model(), "allow_pickle": allow_pickle}, params, run_dir,
                         workers=workers, address=address, batch_size=batch_size)
    return make


def check_common(*, n: int, batch_size: int, out: Path, device: str, n_prompts: int | None = None,
                 no_limits: bool = False) -> None:
    """The checks every eval command makes before loading anything."""
    preflight.check_count("-n", n, preflight.MAX_IMAGES_PER_PROMPT, no_limits=no_limits)
    preflight.check_count("--batch-size", batch_size, preflight.MAX_BATCH_SIZE, no_limits=no_limits)
    if n_prompts is not None:
        preflight.check_units(n_prompts, n, no_limits=no_limits)
    preflight.check_device(device)
    preflight.check_out_dir(out)


def load_pipeline(model: str | None, device: str, fast_batching: bool = False, allow_pickle: bool = False):
    """The generating pipeline (heavy imports only here)."""
    from neobabel.pipeline import BabelPipeline

    pipe = BabelPipeline.from_pretrained(model or default_model(), device=device, allow_pickle=allow_pickle)
    pipe.set_batch_invariant(not fast_batching)
    return pipe


def is_world_model(model: str | None) -> bool:
    return (model or default_model()) == "world"


# -- neobabel eval geneval ------------------------------------------------------------------------

VocabName = Literal["auto", "coco", "world"]
DetectorName = Literal["auto", "mask2former", "owlv2", "world"]


def print_geneval_table(summary: dict) -> None:
    """The language x task table (2 decimals, fits 80 columns), then % correct images/prompts."""
    from neobabel.eval.i18n import GENEVAL_TAGS

    short = {"single_object": "single", "two_object": "two", "counting": "count", "colors": "colors",
             "position": "position", "color_attr": "attr"}  # GenEval's tags, narrow enough for 80 columns

    def f(v):
        return "-" if v is None else f"{v:.2f}"

    table = Table("lang", *(short[t] for t in GENEVAL_TAGS), "overall", "failed")
    for lang, s in summary["per_lang"].items():
        table.add_row(lang, *(f(s["tasks"].get(t, {}).get("score")) for t in GENEVAL_TAGS),
                      f"[bold]{f(s['overall'])}[/]", str(s["failed_images"]))
    console.print(table)
    console.print("correct images / prompts: " + ", ".join(
        f"{lang} {100 * s['correct_images']:.1f}% / {100 * s['correct_prompts']:.1f}%"
        for lang, s in summary["per_lang"].items() if s["correct_images"] is not None), markup=False)
    backend = summary["backend"]
    console.print(f"detector: {backend['detector']}" + ("" if backend["reference"] else f" ({backend['note']})"),
                  markup=False)


@eval_app.command("geneval")
def geneval(
    model: ModelOpt = None,
    langs: LangsOpt = "en",
    n: ImagesPerPromptOpt = 4,
    out: OutOpt = Path("runs/geneval"),
    images: ImagesDirOpt = None,
    vocab: Annotated[VocabName, typer.Option("--vocab", help="coco: GenEval's 553 prompts; world: the synthetic world's objects (auto: world for the world model and --detector world)")] = "auto",
    per_task: Annotated[int, typer.Option("--per-task", help="world vocabulary: scenes per task")] = 10,
    metadata: Annotated[Optional[Path], typer.Option("--metadata", help="GenEval metadata JSONL to use instead of the built-in sets (one language per file, or a lang field per line)")] = None,
    repair: Annotated[bool, typer.Option("--repair", help="score a metadata file that is not aligned with GenEval by pairing its lines by spec")] = False,
    detector: Annotated[DetectorName, typer.Option("--detector", help="detection backend (auto: world for the world vocabulary, else mask2former)")] = "auto",
    detector_model: Annotated[Optional[str], typer.Option("--detector-model", help="hub id or folder of the detector")] = None,
    detector_revision: Annotated[Optional[str], typer.Option("--detector-revision", help="hub revision of the detector")] = None,
    clip_model: Annotated[Optional[str], typer.Option("--clip-model", help="hub id or folder of the colour CLIP (default openai/clip-vit-large-patch14)")] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="detection confidence (GenEval: 0.3)")] = 0.3,
    counting_threshold: Annotated[float, typer.Option("--counting-threshold", help="confidence for counting prompts (GenEval: 0.9)")] = 0.9,
    max_objects: Annotated[int, typer.Option("--max-objects", help="objects kept per class (GenEval: 16)")] = 16,
    max_overlap: Annotated[float, typer.Option("--max-overlap", help="class-wise NMS IoU; 1 = off (GenEval: 1)")] = 1.0,
    position_threshold: Annotated[float, typer.Option("--position-threshold", help="position margin (GenEval: 0.1)")] = 0.1,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    score_batch_size: ScoreBatchOpt = 8,
    device: DeviceOpt = "cpu",
    fast_batching: FastBatchingOpt = False,
    allow_pickle: AllowPickleOpt = False,
    progress: ProgressOpt = True,
    no_limits: NoLimitsOpt = False,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
):
    """m-GenEval: generate n images per prompt per language (resumable) and score them with
    GenEval's rules; or score GenEval-layout images with --images DIR. --engine ray generates
    and scores on Ray actors (one pipeline, then one detector each).

    Writes OUT/scores.parquet (one row per image x check), OUT/summary.json, OUT/geneval.html
    and OUT/geneval.md, and prints the language x task table.

    Example: neobabel eval geneval --model world --langs en,de -n 2 --per-task 4 --out runs/geneval-world
    """
    from neobabel.eval import benchmark as bm  # heavy: polars (and the models, when loaded)
    from neobabel.eval.geneval import GenEvalOptions

    lang_list = parse_langs(langs)
    if not lang_list:
        raise InputError("--langs is empty; give language codes like en,de or all")
    options = GenEvalOptions(threshold=threshold, counting_threshold=counting_threshold, max_objects=max_objects,
                             max_overlap=max_overlap, position_threshold=position_threshold)
    preflight.check_count("--score-batch-size", score_batch_size, preflight.MAX_BATCH_SIZE, no_limits=no_limits)
    if vocab == "auto":
        vocab = "world" if detector == "world" or (images is None and metadata is None and is_world_model(model)) else "coco"
    if detector == "auto":
        detector = "world" if vocab == "world" else "mask2former"
    if vocab == "world" and (metadata is not None or repair):
        raise InputError("--metadata and --repair are for --vocab coco; the world's prompts are built in")
    check_common(n=n, batch_size=batch_size, out=out, device=device, no_limits=no_limits)
    check_engine(engine, address, workers)
    meta: dict = {"vocab": vocab, "images_per_prompt": n, "langs": lang_list, "engine": engine}
    if images is not None:
        if len(lang_list) > 1:
            raise InputError(f"--images scores one folder in one language; give one --langs code, not "
                             f"{','.join(lang_list)} (metadata lines with a lang field override it)")
        jobs = bm.read_geneval_folder(images, lang=lang_list[0], n=n, vocab=vocab)
        meta["source"] = {"images": str(images)}
        prompts = None
    elif vocab == "world":
        preflight.check_count("--per-task", per_task, preflight.MAX_IMAGES_PER_PROMPT, no_limits=no_limits)
        prompts = bm.world_prompts(lang_list, per_task)
        meta["per_task"] = per_task
    else:
        prompts, checks = bm.coco_prompts(lang_list, metadata, repair)
        meta["prompt_checks"] = checks
        for lang, c in checks.items():
            if not c["aligned"]:
                console.print(f"re-paired by spec: {c['alignment']}", markup=False)
            if c["lexicon_problems"]:
                console.print(f"{lang}: {c['lexicon_problems']} prompts do not name their count or colour, "
                              f"e.g. {c['lexicon_examples'][0]}", markup=False)
    if prompts is not None:
        preflight.check_units(len(prompts), n, no_limits=no_limits)
    device = resolve_device(device)
    # Backends load before any image is made: a missing detector costs nothing.
    scorer = bm.load_scorer(detector, vocab, detector_model=detector_model, detector_revision=detector_revision,
                            clip_model=clip_model, device=device, allow_pickle=allow_pickle)
    if prompts is not None:
        pipe = load_pipeline(model, device, fast_batching, allow_pickle)
        runner_for = (ray_runner_for(pipe, model, allow_pickle, batch_size, address, workers)
                      if engine == "ray" else None)
        jobs, report = bm.generate_jobs(pipe, prompts, out, n=n, seed=seed, batch_size=batch_size, progress=progress,
                                        spec={"vocab": vocab, "langs": lang_list, "images_per_prompt": n,
                                              "base_seed": seed, "engine": engine}, runner_for=runner_for)
        meta["source"] = {"model": model or default_model(), "generated": report.generated,
                          "seconds": round(report.seconds, 2)}
    pool = None
    if engine == "ray":  # after generation: its actors are gone, so these get the CPUs/GPUs
        import functools

        from neobabel.engines import RayPool  # heavy: Ray, only for --engine ray

        pool = RayPool(functools.partial(bm.load_scorer, detector, vocab, detector_model=detector_model,
                                         detector_revision=detector_revision, clip_model=clip_model, device=device,
                                         allow_pickle=allow_pickle), workers=workers, address=address)
    try:
        summary, scoring = bm.score_run(jobs, scorer, out, options=options, meta=meta, batch_size=score_batch_size,
                                        progress=progress, title=f"{meta['source'].get('model', images)} ({vocab})",
                                        pool=pool)
    finally:
        if pool is not None:
            pool.shutdown()
    print_geneval_table(summary)
    if summary["failed_images"]:
        console.print(f"{summary['failed_images']} images missing or unreadable: counted as incorrect "
                      "(status column of scores.parquet)", markup=False)
    print(f"scores: {out}/scores.parquet  summary: {out}/summary.json  report: {out}/geneval.html")




__all__ = ["eval_app", "geneval", "check_common", "load_pipeline", "print_geneval_table"]
