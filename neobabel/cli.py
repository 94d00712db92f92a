"""The `neobabel` command line: languages, models, generate, and the world's train/export/eval/bias.

Exit codes (the contract lives in neobabel.clikit.run_cli): 0 success, 2 bad input (one line
naming the bad value and the fix; nothing written; also a run directory that holds another spec
or is in use by another process), 1 runtime failure, 130 interrupted (the run directory resumes
on rerun).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.table import Table

from neobabel import preflight
from neobabel.builtins import UNTRAINED_NOTICE, default_model
from neobabel.clikit import (
    ADDRESS_HELP, ENGINE_HELP, WORKERS_HELP, EngineName,
    ALLOW_PICKLE_HELP, DEVICE_METAVAR, FAST_BATCHING_HELP, NO_LIMITS_HELP, add_top_level_options, console,
    model_default, model_help, new_app, run_cli,
)
from neobabel.devices import resolve_device
from neobabel.errors import InputError
from neobabel.evalcli import eval_app
from neobabel.evalcli_dpg import consistency as eval_consistency
from neobabel.evalcli_dpg import dpg as eval_dpg
from neobabel.languages import LANGUAGE_CODES, LANGUAGES, normalize_lang, parse_langs
from neobabel.modelfolder import ATTENTION_BACKENDS, SCHEDULERS
from neobabel.progress import rate_text
from neobabel.promptfile import read_prompt_file
from neobabel.registry import is_available, list_presets
from neobabel.world.bias import write_table
from neobabel.world.spec import TASKS

logger = logging.getLogger("neobabel.cli")  # not __name__: that is __main__ under python -m

# Literal types make typer list the choices in --help and refuse others (exit 2, one line).
SchedulerName = Literal[tuple(SCHEDULERS)]
AttentionName = Literal[ATTENTION_BACKENDS]

app = new_app("Multilingual text-to-image generation on a tower + diffusers backbone.")
add_top_level_options(app, "neobabel")


@app.command()
def languages(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False):
    """List the supported languages.

    Example: neobabel languages --json
    """
    if as_json:
        print(json.dumps([vars(lang) for lang in LANGUAGES.values()], ensure_ascii=False, indent=1))
        return
    table = Table("code", "name", "native", "script", "direction", "grammatical gender")
    for lang in LANGUAGES.values():
        table.add_row(lang.code, lang.name, lang.native, lang.script, lang.direction,
                      "yes" if lang.grammatical_gender else "no")
    console.print(table)


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False):
    """List model presets and whether their weights are available locally.

    Example: neobabel models --json
    """
    rows = []
    for name, preset in sorted(list_presets().items()):
        ok, detail = is_available(preset)
        rows.append({"name": name, "mode": preset.mode, "family": preset.family,
                     "backbone": preset.backbone.describe(), "available": ok, "detail": detail,
                     "description": preset.description})
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("name", "mode", "family", "backbone", "available", "description")
    for r in rows:
        table.add_row(r["name"], r["mode"], r["family"], r["backbone"],
                      "[green]yes[/]" if r["available"] else f"[red]no[/] ({r['detail']})", r["description"])
    console.print(table)
    console.print(f"default model: {default_model()}")


def _default_out(model: str, prompts: list, lang: str, n: int, seed: int, params: dict,
                 shard: tuple[int, int] | None = None) -> Path:
    blob = json.dumps([model, prompts, lang, n, seed, params], sort_keys=True, ensure_ascii=False)
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(model).name)[:40]
    tail = f"-shard{shard[0]}of{shard[1]}" if shard else ""
    return Path("runs") / f"{slug}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}{tail}"


def _prompt_rows(prompt: str | None, prompts_file: Path | None, lang: str) -> tuple[list, dict]:
    """(prompt id, text, language) rows from the argument or the file, and where they came from."""
    if prompt is not None:
        if not prompt.strip():
            raise InputError("the prompt is empty; give some text, e.g. neobabel generate \"a photo of a cat\"")
        return [("p00000", prompt.strip(), lang)], {"source": "argument"}
    rows = [(r.id, r.text, r.lang or lang) for r in read_prompt_file(prompts_file)]
    return rows, {"source": str(prompts_file), "sha256": hashlib.sha256(Path(prompts_file).read_bytes()).hexdigest()}




@app.command()
def generate(
    prompt: Annotated[Optional[str], typer.Argument(help="the prompt (or use --prompts FILE)")] = None,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts", help=".txt, .csv or .jsonl")] = None,
    lang: Annotated[str, typer.Option("--lang", "-l", help="language code or name of the prompt(s)")] = "en",
    n: Annotated[int, typer.Option("-n", help="images per prompt (seeds SEED .. SEED+n-1)")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="seed of the first image of each prompt")] = 0,
    steps: Annotated[Optional[int], typer.Option("--steps", help=f"sampling steps; {model_default('steps')}")] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help=f"classifier-free guidance; {model_default('guidance')}")] = None,
    size: Annotated[Optional[str], typer.Option("--size", metavar="WIDTHxHEIGHT", help=f"image size; {model_default('size')}")] = None,
    scheduler: Annotated[Optional[SchedulerName], typer.Option("--scheduler", help=f"sampler; {model_default('scheduler')}")] = None,
    negative_prompt: Annotated[Optional[str], typer.Option("--negative-prompt", help="what the images should not show; default: the model's own (world: none)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="images per forward pass")] = 1,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=model_help())] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory (default: runs/MODEL-HASH of the inputs)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="regenerate images already there")] = False,
    add_to_run: Annotated[bool, typer.Option("--add-to-run", help="add this model/params to a run directory that holds another (run.json lists every spec)")] = False,
    device: Annotated[str, typer.Option("--device", metavar=DEVICE_METAVAR, help="where the model runs")] = "cpu",
    attention: Annotated[AttentionName, typer.Option("--attention", help="attention kernels")] = "sdpa",
    download: Annotated[bool, typer.Option("--download", help="allow downloading missing preset weights")] = False,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help=ALLOW_PICKLE_HELP)] = False,
    fast_batching: Annotated[bool, typer.Option("--fast-batching", help=FAST_BATCHING_HELP)] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
    no_limits: Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="make only shard I of N (job arrays; join them with `neobabel merge`)")] = None,
    engine: Annotated[EngineName, typer.Option("--engine", help=ENGINE_HELP)] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help=ADDRESS_HELP)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help=WORKERS_HELP)] = None,
):
    """Generate images into a run directory (rerun the same command to resume).

    A run directory holds one model + params (more prompts and seeds may be added to it);
    another is refused unless --add-to-run.

    Example: neobabel generate "Ein Foto von zwei roten Kreisen" --lang de -n 4 --out runs/kreise
    """
    from neobabel.engines import RayRunner  # heavy: polars (Ray itself only once --engine ray runs)
    from neobabel.pipeline import BabelPipeline  # heavy: torch + diffusers, only when a model loads
    from neobabel.runs import RunDir, WorkUnit, generate_into_run, key_params  # heavy: polars
    from neobabel.shards import parse_shard, shard_units  # heavy: polars

    # Validate everything before loading a model or creating a file, so bad input costs nothing.
    if (prompt is None) == (prompts_file is None):
        raise InputError("give either a PROMPT argument or --prompts FILE (not both, not neither)")
    preflight.check_count("-n", n, preflight.MAX_IMAGES_PER_PROMPT, no_limits=no_limits)
    preflight.check_count("--batch-size", batch_size, preflight.MAX_BATCH_SIZE, no_limits=no_limits)
    lang = normalize_lang(lang)
    rows, source = _prompt_rows(prompt, prompts_file, lang)
    preflight.check_units(len(rows), n, no_limits=no_limits)
    width, height = preflight.check_sampling(steps=steps, guidance=guidance, size=size, scheduler=scheduler,
                                             no_limits=no_limits)
    preflight.check_device(device)
    preflight.check_out_dir(out if out is not None else Path("runs"))
    shard_of = parse_shard(shard) if shard is not None else None
    if engine != "ray" and (address is not None or workers is not None):
        raise InputError("--address and --workers are for --engine ray; add --engine ray or drop them")
    device = resolve_device(device)
    model = model or default_model()
    logger.info("loading model %s on %s", model, device)
    pipe = BabelPipeline.from_pretrained(model, device=device, attention=attention, allow_download=download,
                                         allow_pickle=allow_pickle)
    pipe.set_batch_invariant(not fast_batching)
    params = pipe.resolve_params(steps, guidance, width, height, scheduler, negative_prompt)
    if model == "tiny-random":
        print(UNTRAINED_NOTICE, file=sys.stderr)
    out = out or _default_out(model, rows, lang, n, seed, params.as_dict(), shard_of)
    run = RunDir(out)
    units = [WorkUnit(pid, text, lg, seed + i) for pid, text, lg in rows for i in range(n)]
    spec = {"command": "generate", "prompts": {**source, "count": len(rows)},
            "langs": sorted({r[2] for r in rows}), "images_per_prompt": n, "base_seed": seed,
            "batch_size": batch_size, "truncated_prompts": preflight.warn_truncated(pipe, [r[1] for r in rows]),
            "engine": engine}
    if shard_of is not None:
        units = shard_units(units, pipe.identity(), key_params(pipe, params), *shard_of)
        spec["shard"] = {"index": shard_of[0], "count": shard_of[1], "units": len(units)}
    runner = None
    if engine == "ray":
        runner = RayRunner(pipe, {"source": model, "attention": attention, "allow_download": download,
                                  "allow_pickle": allow_pickle}, params, run.path, workers=workers,
                           address=address, batch_size=batch_size)
        spec.update(workers=runner.workers, torch_threads=runner.threads)
    else:
        import torch  # loaded already by the pipeline; pixels can depend on the thread count (README)

        spec["torch_threads"] = torch.get_num_threads()
    report = generate_into_run(pipe, units, run, params, batch_size=batch_size, overwrite=overwrite,
                               progress=progress, spec=spec, add_to_run=add_to_run, runner=runner)
    # The same formula as the progress display's rate (neobabel.progress), so the two agree.
    speed = f", {rate_text(report.generated, report.seconds, 'img')}" if report.generated else ""
    print(f"{report.generated} generated, {report.already_done + report.recovered} already there "
          f"({report.total} images){speed}")
    print(f"run directory: {run.path}  (images in {run.images}, manifest {run.manifest_path.name})")


@app.command()
def merge(
    out: Annotated[Path, typer.Argument(help="the merged run directory (created; merging again changes nothing)")],
    shard_dirs: Annotated[list[Path], typer.Argument(help="run directories of `generate --shard I/N`")],
):
    """Merge the run directories of shards (one spec) into one run directory.

    Example: neobabel merge runs/full runs/part0 runs/part1 runs/part2
    """
    from neobabel.shards import merge_runs  # heavy: polars

    counts = merge_runs(out, shard_dirs)
    print(f"merged {counts['shards']} shard(s): {counts['images']} images ({counts['copied']} copied), "
          f"{counts['rows']} manifest rows in {out}")


eval_app.command("dpg")(eval_dpg)  # neobabel eval dpg|consistency live in evalcli_dpg.py
eval_app.command("consistency")(eval_consistency)
app.add_typer(eval_app, name="eval")


@app.command()
def distill(
    backbone: Annotated[str, typer.Option("--backbone", help="the backbone whose text encoder teaches: a preset name or a model folder")],
    encoder: Annotated[str, typer.Option("--encoder", help="the multilingual encoder: a hub id (with --encoder-revision) or a folder")],
    data: Annotated[Path, typer.Option("--data", help="parallel text: TSV (header en, lang, text), JSONL, or a datasets folder")],
    out: Annotated[Path, typer.Option("--out", help="the tower folder to write (checkpoint, logs and preset.yaml inside)")],
    encoder_revision: Annotated[Optional[str], typer.Option("--encoder-revision", help="pinned revision of a hub encoder")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="distill YAML (neobabel.distill.DistillConfig); flags override it")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="training steps (default 2000)")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="rows per step (default 32)")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="peak learning rate (default 5e-4)")] = None,
    trainable_layers: Annotated[Optional[int], typer.Option("--trainable-layers", help="train the encoder's last N layers (0: frozen, -1: all)")] = None,
    eval_every: Annotated[Optional[int], typer.Option("--eval-every", help="held-out cosine to the teacher every N steps")] = None,
    denoise_weight: Annotated[Optional[float], typer.Option("--denoise-weight", help="PEA-style loss through the frozen UNet (meant for a GPU; 0: off)")] = None,
    device: Annotated[str, typer.Option("--device", metavar=DEVICE_METAVAR, help="where training runs")] = "cpu",
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help=ALLOW_PICKLE_HELP)] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
):
    """Distill a multilingual tower onto a backbone's own text encoder (resumes from OUT/checkpoint).

    Example: neobabel distill --backbone sd15 --encoder FacebookAI/xlm-roberta-large
    --encoder-revision c23d21b0620b635a76227c604d44e43a9f0ee389 --data parallel.tsv --out adapters/sd15-xlmr
    """
    from neobabel.distill import distill as run_distill, load_distill_config  # heavy: torch + diffusers

    cfg = load_distill_config(config, steps=steps, batch_size=batch_size, lr=lr, trainable_layers=trainable_layers,
                              eval_every=eval_every, denoise_weight=denoise_weight)
    preflight.check_out_dir(out)
    preflight.check_device(device)
    result = run_distill(backbone, encoder, data, out, cfg, encoder_revision=encoder_revision, device=device,
                         progress=progress, allow_pickle=allow_pickle)
    table = Table("lang", "cosine to teacher (tokens)", "pooled", "held-out rows")
    for lang, r in result.eval.items():
        table.add_row(lang, f"{r['tokens']:.3f}", f"{r['pooled']:.3f}" if "pooled" in r else "-", str(r["rows"]))
    console.print(table)
    print(f"tower written to {result.out} after {result.steps} steps; generate with --model {result.out}")


world_app = new_app("The synthetic Babel world: bias table, training, evaluation.")
app.add_typer(world_app, name="world")


@world_app.command("train")
def world_train(
    config: Annotated[Path, typer.Option("--config", help="training YAML")] = Path("configs/world/train.yaml"),
    out: Annotated[Path, typer.Option("--out", help="training directory (checkpoints, log, model/)")] = Path("runs/world-train"),
    device: Annotated[str, typer.Option("--device", metavar=DEVICE_METAVAR, help="where training runs")] = "cpu",
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help="stop and export after this long (default: the config's)")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="training steps (default: the config's)")] = None,
    export_to: Annotated[Optional[Path], typer.Option("--export-to", help="where to write the model (default: OUT/model)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
):
    """Train the world model (resumes from OUT/checkpoint) and export it as a BabelPipeline.

    Example: neobabel world train --config configs/world/train.yaml --max-minutes 10
    """
    from neobabel.world.train import load_config, train  # heavy: torch + diffusers

    cfg = load_config(config)
    preflight.check_out_dir(out)
    if export_to is not None:
        preflight.check_out_dir(export_to, "--export-to")
    updates = {k: v for k, v in (("max_minutes", max_minutes), ("steps", steps)) if v is not None}
    cfg = cfg.model_copy(update=updates)
    model_dir = train(cfg, out, device=device, progress=progress, export_to=export_to)
    print(f"model written to {model_dir} (load it with --model {model_dir})")


@world_app.command("export")
def world_export(
    out: Annotated[Path, typer.Option("--out", help="training directory")] = Path("runs/world-train"),
    export_to: Annotated[Optional[Path], typer.Option("--export-to", help="where to write the model (default: OUT/model)")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="default sampling steps recorded with the model (default: the config's)")] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="default guidance recorded with the model (default: the config's)")] = None,
    at_step: Annotated[Optional[int], typer.Option("--at-step", help="export the EMA weights kept at this step (keep_ema_every; default: the latest)")] = None,
):
    """Export the latest checkpoint's EMA weights (or those kept at --at-step) as a BabelPipeline folder.

    Example: neobabel world export --out runs/world-train --export-to runs/world-model
    """
    from neobabel.world.train import export_checkpoint  # heavy: torch + diffusers

    path = export_checkpoint(out, export_to, sample_steps=steps, sample_guidance=guidance, at_step=at_step)
    print(f"model written to {path}")


@world_app.command("eval")
def world_eval(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help=model_help())] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory")] = Path("runs/world-eval"),
    n: Annotated[int, typer.Option("-n", help="images per object prompt")] = 4,
    per_task: Annotated[int, typer.Option("--per-task", help="scenes per GenEval task")] = 10,
    langs: Annotated[str, typer.Option("--langs", help="comma-separated codes, or all")] = "all",
    portraits: Annotated[bool, typer.Option("--portraits/--no-portraits", help="also score the portrait cells")] = True,
    portrait_n: Annotated[Optional[int], typer.Option("--portrait-n", help="images per portrait cell (default: -n)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="images per forward pass")] = 8,
    device: Annotated[str, typer.Option("--device", metavar=DEVICE_METAVAR, help="where the model runs")] = "cpu",
    fast_batching: Annotated[bool, typer.Option("--fast-batching", help=FAST_BATCHING_HELP)] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
    no_limits: Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)] = False,
):
    """Score a model on the world with the exact detector: per-task, per-language accuracy.

    Example: neobabel world eval --model world -n 2 --per-task 4 --langs en,de --out runs/world-eval
    """
    from neobabel.pipeline import BabelPipeline  # heavy: torch + diffusers, only when a model loads
    from neobabel.eval.world import evaluate, format_table  # heavy: polars

    lang_list = parse_langs(langs)
    for flag, value in (("-n", n), ("--per-task", per_task), ("--portrait-n", portrait_n)):
        if value is not None:
            preflight.check_count(flag, value, preflight.MAX_IMAGES_PER_PROMPT, no_limits=no_limits)
    preflight.check_count("--batch-size", batch_size, preflight.MAX_BATCH_SIZE, no_limits=no_limits)
    # The object suite alone is per_task scenes x tasks x languages, each -n times.
    preflight.check_units(per_task * len(TASKS) * len(lang_list or LANGUAGE_CODES), n, no_limits=no_limits)
    preflight.check_device(device)
    preflight.check_out_dir(out)
    pipe = BabelPipeline.from_pretrained(model or default_model(), device=device)
    pipe.set_batch_invariant(not fast_batching)
    summary = evaluate(pipe, out, n=n, per_task=per_task, langs=lang_list, portraits=portraits,
                       portrait_n=portrait_n, batch_size=batch_size, progress=progress)
    console.print(format_table(summary))
    console.print(json.dumps({k: v for k, v in summary.items() if k != "per_lang"}, indent=1))
    print(f"scores: {out}/scores.parquet  summary: {out}/summary.json")


@world_app.command("parallel")
def world_parallel(
    out: Annotated[Path, typer.Option("--out", "-o", help="the TSV to write (header en, lang, text)")] = Path("world-parallel.tsv"),
    scenes: Annotated[int, typer.Option("--scenes", help="object scenes, each captioned in the 12 other languages")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="scene stream seed (the eval suite's scenes are drawn apart)")] = 0,
):
    """Write world captions as parallel text (en, lang, text) for `neobabel distill --data`.

    Example: neobabel world parallel --out runs/world-parallel.tsv --scenes 2000
    """
    from neobabel.world.parallel import write_parallel_tsv

    preflight.check_count("--scenes", scenes, 1_000_000)
    n = write_parallel_tsv(out, scenes, seed)
    print(f"wrote {n} rows ({scenes} scenes) to {out}")


@world_app.command("bias")
def world_bias(
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the table")] = Path("bias.yaml"),
):
    """Generate the world's planted-bias table from the parameters in neobabel/world/bias.py and
    the shipped table's captions, and write it to --out (default ./bias.yaml). The shipped table
    (configs/world/bias.yaml) is only read; to change it, review the new file and copy it there.

    Example: neobabel world bias --out bias.yaml
    """
    table = write_table(out)
    console.print(f"wrote {out} ({len(table.cells)} cells, version {table.version})")


def main() -> None:
    run_cli(app, "neobabel")


if __name__ == "__main__":
    main()
