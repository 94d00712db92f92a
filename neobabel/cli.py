"""The `neobabel` command line: languages, models, generate.

Exit codes: 0 success, 2 bad input (one line naming the bad value and the fix; nothing
written; also a run directory that holds another spec or is in use by another process),
1 runtime failure, 130 interrupted (the run directory resumes on rerun).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from neobabel.builtins import UNTRAINED_NOTICE, default_model
from neobabel.errors import InputError
from neobabel.progress import rate_text

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Multilingual text-to-image generation on a tower + diffusers backbone.")
console = Console(soft_wrap=True)  # never break a printed path across lines
err_console = Console(stderr=True, soft_wrap=True)


def version_option(package: str):
    """A `--version` option for a Typer app's callback: prints `PROG VERSION` and exits 0."""

    def show(value: bool) -> None:
        if value:
            from importlib import import_module

            print(f"{package} {import_module(package).__version__}")
            raise typer.Exit(0)

    return typer.Option("--version", callback=show, is_eager=True, help="print the version and exit")


@app.callback()
def _top_level(version: Annotated[bool, version_option("neobabel")] = False) -> None:
    pass


NO_LIMITS_HELP = ("lift the upper bounds (images per prompt, total images, size, steps, batch size) "
                  "for a deliberately huge run")
@app.command()
def languages(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False):
    """List the supported languages."""
    from neobabel.languages import LANGUAGES

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
    """List model presets and whether their weights are available locally."""
    from neobabel.registry import is_available, list_presets

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


def _default_out(model: str, prompts: list, lang: str, n: int, seed: int, params: dict) -> Path:
    blob = json.dumps([model, prompts, lang, n, seed, params], sort_keys=True, ensure_ascii=False)
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(model).name)[:40]
    return Path("runs") / f"{slug}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


@app.command()
def generate(
    prompt: Annotated[Optional[str], typer.Argument(help="the prompt (or use --prompts FILE)")] = None,
    prompts_file: Annotated[Optional[Path], typer.Option("--prompts", help=".txt, .csv or .jsonl")] = None,
    lang: Annotated[str, typer.Option("--lang", "-l", help="language code or name of the prompt(s)")] = "en",
    n: Annotated[int, typer.Option("-n", help="images per prompt (seeds SEED .. SEED+n-1)")] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    steps: Annotated[Optional[int], typer.Option("--steps")] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance")] = None,
    size: Annotated[Optional[str], typer.Option("--size", help="WIDTHxHEIGHT")] = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="ddim, dpm++, euler, euler_a, pndm, ddpm, unipc")] = None,
    negative_prompt: Annotated[Optional[str], typer.Option("--negative-prompt")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b")] = 1,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="preset name or model folder")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="regenerate images already there")] = False,
    add_to_run: Annotated[bool, typer.Option("--add-to-run", help="add this model/params to a run directory that holds another (run.json lists every spec)")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto")] = "cpu",
    attention: Annotated[str, typer.Option("--attention", help="sdpa or xformers")] = "sdpa",
    download: Annotated[bool, typer.Option("--download", help="allow downloading missing preset weights")] = False,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="also load pickled .bin weights (with torch.load(weights_only=True)) where a folder has no .safetensors; only for files you trust (recorded in run.json)")] = False,
    fast_batching: Annotated[bool, typer.Option("--fast-batching", help="default kernels instead of the batch-invariant op set: 1.05-1.16x faster on CPU, most at batch size 1 (benchmarks/RESULTS.md §8); images may then differ in the last bits with batch size and order (recorded in run.json)")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    no_limits: Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)] = False,
):
    """Generate images into a run directory (rerun the same command to resume).

    A run directory holds one model + params (more prompts and seeds may be added to it);
    another is refused unless --add-to-run.
    """
    from neobabel import preflight
    from neobabel.languages import normalize_lang
    from neobabel.pipeline import BabelPipeline
    from neobabel.promptfile import read_prompt_file
    from neobabel.runs import RunDir, WorkUnit, generate_into_run

    # Validate everything before loading a model or creating a file, so bad input costs nothing.
    if (prompt is None) == (prompts_file is None):
        raise InputError("give either a PROMPT argument or --prompts FILE (not both, not neither)")
    preflight.check_count("-n", n, preflight.MAX_IMAGES_PER_PROMPT, no_limits=no_limits)
    preflight.check_count("--batch-size", batch_size, preflight.MAX_BATCH_SIZE, no_limits=no_limits)
    lang = normalize_lang(lang)
    if prompt is not None:
        if not prompt.strip():
            raise InputError("the prompt is empty; give some text, e.g. neobabel generate \"a photo of a cat\"")
        rows = [("p00000", prompt.strip(), lang)]
        source = {"source": "argument"}
    else:
        file_rows = read_prompt_file(prompts_file)
        rows = [(r.id, r.text, r.lang or lang) for r in file_rows]
        source = {"source": str(prompts_file),
                  "sha256": hashlib.sha256(Path(prompts_file).read_bytes()).hexdigest()}
    preflight.check_units(len(rows), n, no_limits=no_limits)
    width, height = preflight.check_sampling(steps=steps, guidance=guidance, size=size, scheduler=scheduler,
                                             no_limits=no_limits)
    preflight.check_device(device)
    preflight.check_out_dir(out if out is not None else Path("runs"))
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model or default_model()
    pipe = BabelPipeline.from_pretrained(model, device=device, attention=attention, allow_download=download,
                                         allow_pickle=allow_pickle)
    pipe.set_batch_invariant(not fast_batching)
    params = pipe.resolve_params(steps, guidance, width, height, scheduler, negative_prompt)
    if model == "tiny-random":
        print(UNTRAINED_NOTICE, file=sys.stderr)
    out = out or _default_out(model, rows, lang, n, seed, params.as_dict())
    run = RunDir(out)
    units = [WorkUnit(pid, text, lg, seed + i) for pid, text, lg in rows for i in range(n)]
    spec = {"command": "generate", "prompts": {**source, "count": len(rows)},
            "langs": sorted({r[2] for r in rows}), "images_per_prompt": n, "base_seed": seed,
            "batch_size": batch_size, "truncated_prompts": _warn_truncated(pipe, [r[1] for r in rows])}
    report = generate_into_run(pipe, units, run, params, batch_size=batch_size, overwrite=overwrite,
                               progress=progress, spec=spec, add_to_run=add_to_run)
    # The same formula as the progress display's rate (neobabel.progress), so the two agree.
    speed = f", {rate_text(report.generated, report.seconds, 'img')}" if report.generated else ""
    print(f"{report.generated} generated, {report.already_done + report.recovered} already there "
          f"({report.total} images){speed}")
    print(f"run directory: {run.path}  (images in {run.images}, manifest {run.manifest_path.name})")


def _warn_truncated(pipe, texts: list[str]) -> int:
    """Say once how many prompts the model will cut (it reads a fixed number of tokens)."""
    from neobabel.preflight import truncated_prompts

    count, limit = truncated_prompts(pipe, texts)
    if count:
        print(f"warning: {count} prompt(s) are longer than the {limit} tokens the model reads; the text "
              "after that is ignored (recorded as truncated_prompts in run.json)", file=sys.stderr)
    return count


world_app = typer.Typer(no_args_is_help=True, help="The synthetic Babel world: bias table, training, evaluation.")
app.add_typer(world_app, name="world")


@world_app.command("train")
def world_train(
    config: Annotated[Path, typer.Option("--config", help="training YAML")] = Path("configs/world/train.yaml"),
    out: Annotated[Path, typer.Option("--out", help="training directory (checkpoints, log, model/)")] = Path("runs/world-train"),
    device: Annotated[str, typer.Option("--device", help="cpu or cuda")] = "cpu",
    max_minutes: Annotated[Optional[float], typer.Option("--max-minutes", help="stop and export after this long")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="override the config's step count")] = None,
    export_to: Annotated[Optional[Path], typer.Option("--export-to", help="where to write the model (default OUT/model)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
):
    """Train the world model (resumes from OUT/checkpoint) and export it as a BabelPipeline."""
    from neobabel.preflight import check_out_dir
    from neobabel.world.train import load_config, train

    cfg = load_config(config)
    check_out_dir(out)
    if export_to is not None:
        check_out_dir(export_to, "--export-to")
    updates = {k: v for k, v in (("max_minutes", max_minutes), ("steps", steps)) if v is not None}
    cfg = cfg.model_copy(update=updates)
    model_dir = train(cfg, out, device=device, progress=progress, export_to=export_to)
    print(f"model written to {model_dir} (load it with --model {model_dir})")


@world_app.command("export")
def world_export(
    out: Annotated[Path, typer.Option("--out", help="training directory")] = Path("runs/world-train"),
    export_to: Annotated[Optional[Path], typer.Option("--export-to", help="where to write the model")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="default sampling steps recorded with the model")] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="default guidance recorded with the model")] = None,
    at_step: Annotated[Optional[int], typer.Option("--at-step", help="export the EMA weights kept at this step (keep_ema_every)")] = None,
):
    """Export the latest checkpoint's EMA weights (or those kept at --at-step) as a BabelPipeline folder."""
    from neobabel.world.train import export_checkpoint

    path = export_checkpoint(out, export_to, sample_steps=steps, sample_guidance=guidance, at_step=at_step)
    print(f"model written to {path}")


@world_app.command("eval")
def world_eval(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="preset name or model folder")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory")] = Path("runs/world-eval"),
    n: Annotated[int, typer.Option("-n", help="images per object prompt")] = 4,
    per_task: Annotated[int, typer.Option("--per-task", help="scenes per GenEval task")] = 10,
    langs: Annotated[str, typer.Option("--langs", help="comma-separated codes, or all")] = "all",
    portraits: Annotated[bool, typer.Option("--portraits/--no-portraits")] = True,
    portrait_n: Annotated[Optional[int], typer.Option("--portrait-n", help="images per portrait cell (default -n)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b")] = 8,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    fast_batching: Annotated[bool, typer.Option("--fast-batching", help="default kernels instead of the batch-invariant op set: 1.05-1.16x faster on CPU, most at batch size 1 (benchmarks/RESULTS.md §8); images may then differ in the last bits with batch size and order (recorded in run.json)")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    no_limits: Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)] = False,
):
    """Score a model on the world with the exact detector: per-task, per-language accuracy."""
    from neobabel import preflight
    from neobabel.languages import LANGUAGE_CODES, parse_langs
    from neobabel.pipeline import BabelPipeline
    from neobabel.world.evaluate import evaluate, format_table
    from neobabel.world.spec import TASKS

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


@world_app.command("bias")
def world_bias(
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the table")] = Path("bias.yaml"),
):
    """Generate the world's planted-bias table from the parameters in neobabel/world/bias.py and
    the shipped table's captions, and write it to --out (default ./bias.yaml). The shipped table
    (configs/world/bias.yaml) is only read; to change it, review the new file and copy it there."""
    from neobabel.world.bias import write_table

    table = write_table(out)
    console.print(f"wrote {out} ({len(table.cells)} cells, version {table.version})")


def _show_usage_error(e: Exception, prog: str) -> None:
    if type(e).__name__ == "NoArgsIsHelpError" and not str(e).strip():
        return  # typer's rich help has already been printed; its message is empty
    show = getattr(e, "show", None)
    if callable(show):
        show()
    else:
        print(f"{prog}: error: {e}", file=sys.stderr)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def run_cli(typer_app: typer.Typer, prog: str) -> None:
    """Run a Typer app with the project's exit-code contract (shared by both CLIs)."""
    import click

    # Library chatter (e.g. "CLIPImageProcessor requires torchvision") is not for CLI users.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rv = typer_app(standalone_mode=False, prog_name=prog)
    except (click.exceptions.Exit, typer.Exit) as e:
        sys.exit(e.exit_code)
    except (click.ClickException, typer.TyperException) as e:
        # Usage errors (unknown option, missing argument, bare command): the usage line and
        # click's message, exit 2. Typer raises its own vendored copies of click's exceptions,
        # which subclass typer.TyperException, not click.ClickException.
        _show_usage_error(e, prog)
        sys.exit(getattr(e, "exit_code", 2))
    except (click.exceptions.Abort, typer.Abort):
        sys.exit(130)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except InputError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # runtime failure: one line unless debugging
        if os.environ.get("NEOBABEL_DEBUG"):
            raise
        print(f"{prog}: failed: {type(e).__name__}: {e} (set NEOBABEL_DEBUG=1 for a traceback)",
              file=sys.stderr)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


def main() -> None:
    run_cli(app, "neobabel")


if __name__ == "__main__":
    main()
