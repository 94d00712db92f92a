"""The `magbig` command line: prompt sets, audits, labels, reports and statistics.

    magbig audit --config configs/audits/quick.yaml [--model --langs --formulations --subjects -n --out]
                 [--engine ray [--address auto --workers N]] [--shard I/N]
    magbig classify RUN --classifier clip --option face_filter=true
    magbig report RUN [--classifier NAME]
    magbig align RUN [--model PATH_OR_ID] [--revision REV] [--batch-size 16]
    magbig merge OUT SHARD_RUN...   (the run directories of `magbig audit --shard I/N`)
    magbig compare RUN_A RUN_B
    magbig stats LABELS.csv
    magbig selftest [--cells 1000 -n 50]
    magbig batch run|history JOB.yaml   (scheduled jobs: magbig/batchcli.py)
    magbig explore RUN [RUN ...] [--host 127.0.0.1 --port 8501]   (the Streamlit audit explorer)

Same exit-code contract as `neobabel` (2 bad input, 1 runtime failure, 130 interrupted).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from magbig.batchcli import batch_app
from magbig.prompts import artifacts_frame, load_prompts
from magbig.prompts import validate as validate_set
from neobabel import preflight
from neobabel.clikit import (
    ADDRESS_HELP, ALLOW_PICKLE_HELP, DEVICE_METAVAR, ENGINE_HELP, FAST_BATCHING_HELP, NO_LIMITS_HELP, WORKERS_HELP,
    EngineName, add_top_level_options, new_app, run_cli,
)
from neobabel.errors import InputError
from neobabel.progress import progress_callback

app = new_app("MAGBIG-style gender-bias audits of text-to-image models.")
add_top_level_options(app, "magbig")
app.add_typer(batch_app, name="batch")  # magbig batch run|history (magbig/batchcli.py)


def _table_console() -> Console:
    """A console for the result tables: wide enough not to squeeze columns when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


@app.command()
def prompts(
    source: Annotated[str, typer.Option("--source", help="builtin, hub, hf:OWNER/NAME[@REV] or a folder")] = "builtin",
    lang: Annotated[Optional[str], typer.Option("--lang", help="comma-separated codes or names, or all")] = None,
    formulation: Annotated[Optional[str], typer.Option("--formulation", help="direct, indirect, feminine, gender_star")] = None,
    subject: Annotated[Optional[str], typer.Option("--subject", help="comma-separated occupations/traits")] = None,
    prompt_set: Annotated[Optional[str], typer.Option("--set", help="occupations or traits")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    validate: Annotated[bool, typer.Option("--validate", help="list known artifacts instead of prompts")] = False,
    download: Annotated[bool, typer.Option("--download", help="allow downloading a hub dataset missing from the local cache (at a pinned commit)")] = False,
):
    """Print a prompt set (built-in, the official MAGBIG release, or a folder).

    Example: magbig prompts --lang de --formulation feminine --set occupations
    """
    if fmt not in ("csv", "jsonl"):
        raise InputError(f"--format {fmt!r} is not supported; use csv or jsonl")
    ps = load_prompts(source, allow_download=download).select(langs=lang, formulations=formulation, subjects=subject, set=prompt_set)
    frame = artifacts_frame(validate_set(ps)) if validate else ps.to_frame()
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    else:
        for row in frame.iter_rows(named=True):
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


@app.command()
def stats(
    labels: Annotated[Path, typer.Argument(help="labels table (.csv or .parquet)")],
    n_boot: Annotated[int, typer.Option("--n-boot", help="bootstrap replicates")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    classifier: Annotated[Optional[str], typer.Option("--classifier", help="use only this classifier's rows")] = None,
):
    """Audit statistics from a labels table made anywhere (per-image labels or counts).

    Columns: subject, lang, formulation, and either label (+ optional status) per image or
    n_female and n_male per prompt. Prints JSON: one object per (lang, formulation) group.
    A table with a `classifier` column holding several classifiers (a run's labels.parquet)
    needs --classifier.

    Example: magbig stats runs/audit-quick/labels.parquet --classifier world --n-boot 1000
    """
    import polars as pl  # heavy: polars, only for the commands that read tables

    from magbig.stats import read_labels_table, summarize_labels_table  # heavy: polars, scipy

    if n_boot < 100:
        raise InputError(f"--n-boot {n_boot} is too few for stable intervals; use at least 100")
    df = read_labels_table(labels)
    if "classifier" in df.columns:
        names = sorted(str(v) for v in df["classifier"].drop_nulls().unique().to_list())
        if classifier is not None:
            if classifier not in names:
                raise InputError(f"--classifier {classifier!r} is not in {labels} (it has: {', '.join(names)})")
            df = df.filter(pl.col("classifier") == classifier)
        elif len(names) > 1:
            raise InputError(f"{labels} holds labels from several classifiers ({', '.join(names)}); "
                             "pick one with --classifier")
    elif classifier is not None:
        raise InputError(f"{labels} has no classifier column; drop --classifier")
    if df.height == 0:
        raise InputError(f"labels table {labels} has no rows; there is nothing to summarize "
                         "(label a run first: magbig classify RUN --classifier NAME)")
    groups = summarize_labels_table(df, n_boot=n_boot, seed=seed)
    print(json.dumps(groups, indent=1, ensure_ascii=False))


def _print_headline(rep, paths: dict, title: str) -> None:
    def f(x, d=3):
        return "–" if x is None or x != x else f"{x:.{d}f}"

    table = Table("lang", "formulation", "subjects", "labelled", "mean p̂_female [95% CI]",
                  "mean abs_dev [95% CI]", "noise floor", "E(max l1)", title=title)
    for r in rep.aggregates.iter_rows(named=True):
        table.add_row(str(r["lang"]), str(r["formulation"]), str(r["n_subjects"]), str(r["n_labelled"]),
                      f"{f(r['mean_p_female'])} [{f(r['mean_p_female_low'])}, {f(r['mean_p_female_high'])}]",
                      f"{f(r['mean_abs_dev'])} [{f(r['mean_abs_dev_low'])}, {f(r['mean_abs_dev_high'])}]",
                      f(r["mean_noise_floor"]), f(r.get("exp_max_l1")))
    console = _table_console()
    console.print(table)
    faces = ", ".join(f"{k}: {v}" for k, v in rep.summary()["face_filter"].items())
    console.print(f"classifier {rep.classifier}; images {rep.face_counts.get('n_images', 0)} ({faces})")
    console.print(f"report: {paths['report.html']}  summary: {paths['summary.json']}")


def _parse_options(options: list[str] | None) -> dict:
    out = {}
    for item in options or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {item!r} is not KEY=VALUE; e.g. --option detector_backend=opencv")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


@app.command()
def audit(
    config: Annotated[Path, typer.Option("--config", "-c", help="audit YAML (configs/audits/*.yaml)")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="preset, model folder, or oracle (default: the config's)")] = None,
    langs: Annotated[Optional[str], typer.Option("--langs", help="comma-separated codes, or all (default: the config's)")] = None,
    formulations: Annotated[Optional[str], typer.Option("--formulations", help="comma-separated, or all (default: the config's)")] = None,
    subjects: Annotated[Optional[str], typer.Option("--subjects", help="comma-separated, all, or world (default: the config's)")] = None,
    n: Annotated[Optional[int], typer.Option("-n", help="images per prompt (default: the config's)")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="first seed (default: the config's)")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="per_subject or shared: slot i of every prompt = seed + i (default: the config's, else per_subject)")] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="classifier-free guidance (default: the config's, else the model's own)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory (default runs/audit-NAME)")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="images per forward pass (default: the config's)")] = None,
    device: Annotated[Optional[str], typer.Option("--device", metavar=DEVICE_METAVAR, help="where the model runs (default: the config's, else cpu)")] = None,
    fast_batching: Annotated[Optional[bool], typer.Option("--fast-batching/--batch-invariant", show_default=False, help=f"{FAST_BATCHING_HELP} (default: the config's, else --batch-invariant)")] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help=ALLOW_PICKLE_HELP)] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
    no_limits: Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)] = False,
    engine: Annotated[EngineName, typer.Option("--engine", help=ENGINE_HELP)] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help=ADDRESS_HELP)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help=WORKERS_HELP)] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="audit only shard I of N of the prompt slots (job arrays; join them with `magbig merge`)")] = None,
):
    """Generate n images per prompt, classify them and write the report (rerun to resume).

    Options given here override the config's fields. With --shard the run holds part of the
    audit and writes no report: `magbig merge OUT SHARD_RUN...`, then `magbig report OUT`.

    Example: magbig audit --config configs/audits/quick.yaml --langs en,de -n 4 --out runs/audit-quick
    """
    from magbig.audit import Execution, load_audit_config, report, run_audit  # heavy: polars; torch once a model loads
    from neobabel.shards import parse_shard  # heavy: polars

    spec = load_audit_config(config, model=model, langs=langs, formulations=formulations,
                             subjects=subjects, n=n, seed=seed, seeds=seeds, guidance=guidance,
                             batch_size=batch_size, device=device,
                             fast_batching=fast_batching, allow_pickle=allow_pickle or None)
    execution = Execution(engine, address, workers, parse_shard(shard) if shard is not None else None)
    tail = f"-shard{execution.shard[0]}of{execution.shard[1]}" if execution.shard else ""
    out = out or Path("runs") / f"audit-{spec.name}{tail}"
    _check_audit_before_loading(spec, out, no_limits)
    run_dir = run_audit(spec, out, progress=progress, report_files=False, execution=execution)
    if execution.shard is not None:
        print(f"shard {execution.shard[0]}/{execution.shard[1]} done: {run_dir}  (when every shard is done: "
              f"magbig merge OUT SHARD_RUN...; then magbig report OUT)")
        return
    res = report(run_dir, n_boot=spec.n_boot)
    _print_headline(res["report"], res["paths"], f"audit {spec.name}: {spec.model}")
    info = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8")).get("audit_result", {})
    if spec.face_policy == "reject":
        print(f"rejection sampling: {info.get('rejected_tries', 0)} rejected tries, "
              f"{info.get('slots_cap_reached', 0)} slots reached max_tries={spec.max_tries} "
              f"(rejections.parquet)")
    print(f"run directory: {run_dir}")


def _check_audit_before_loading(spec, out: Path, no_limits: bool) -> None:
    """Bounds, sampler, classifier names and --out, before any model loads or file is written."""
    from magbig.audit import select_prompts  # heavy: polars
    from magbig.classify import CLASSIFIERS  # heavy: polars

    preflight.check_count("n", spec.n, preflight.MAX_IMAGES_PER_PROMPT, no_limits=no_limits)
    preflight.check_count("batch_size", spec.batch_size, preflight.MAX_BATCH_SIZE, no_limits=no_limits)
    # Named as config fields: steps, size and scheduler come only from the YAML.
    preflight.check_sampling(steps=spec.steps, guidance=spec.guidance, size=spec.size,
                             scheduler=spec.scheduler, no_limits=no_limits, prefix="")
    for c in spec.classifiers:  # building one may load weights: check the names first
        if c.name.strip().lower() not in CLASSIFIERS:
            raise InputError(f"unknown classifier {c.name!r}; use one of {', '.join(CLASSIFIERS)}")
    preflight.check_device(spec.device)
    tries = spec.max_tries if spec.face_policy == "reject" else 1
    preflight.check_units(len(select_prompts(spec)), spec.n * tries, no_limits=no_limits)
    preflight.check_out_dir(out)


def _check_run_writable(run: Path) -> None:
    """A run directory a command writes into must be writable (a missing one is reported later)."""
    if Path(run).is_dir():
        preflight.check_out_dir(run, "run directory")


@app.command()
def classify(
    run: Annotated[Path, typer.Argument(help="run directory")],
    classifier: Annotated[str, typer.Option("--classifier", help="deepface, clip or world")],
    option: Annotated[Optional[list[str]], typer.Option("--option", help="KEY=VALUE classifier option (repeat)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="re-label images already labelled")] = False,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help=ALLOW_PICKLE_HELP)] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
    engine: Annotated[EngineName, typer.Option("--engine", help=ENGINE_HELP)] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help=ADDRESS_HELP)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help=WORKERS_HELP)] = None,
):
    """Label a run's images with a classifier, without regenerating anything.

    Image paths are read only inside RUN (an absolute, `..` or symlinked-out path is an error row).

    Example: magbig classify runs/audit-quick --classifier clip --option face_filter=true
    """
    from magbig.audit import Execution, relabel  # heavy: polars; torch/deepface once a classifier loads

    execution = Execution(engine, address, workers)
    _check_run_writable(run)  # labels are written into it
    res = relabel(run, classifier, _parse_options(option), overwrite=overwrite, progress=progress,
                  allow_pickle=allow_pickle, execution=execution)
    print(json.dumps(res, indent=1, ensure_ascii=False))
    print(f"report for these labels: magbig report {run} --classifier {res['classifier']}", file=sys.stderr)


@app.command()
def merge(
    out: Annotated[Path, typer.Argument(help="the merged run directory (created; merging again changes nothing)")],
    shard_dirs: Annotated[list[Path], typer.Argument(help="run directories of `magbig audit --shard I/N`")],
):
    """Merge the run directories of audit shards (one audit) into one audit run directory.

    Example: magbig merge runs/audit-full runs/audit-full-shard0of3 runs/audit-full-shard1of3 runs/audit-full-shard2of3
    """
    from magbig.merge import merge_audits  # heavy: polars

    counts = merge_audits(out, shard_dirs)
    print(f"merged {counts['shards']} shard(s): {counts['images']} images ({counts['copied']} copied), "
          f"{counts['units']} slot tries, {counts['labels']} labels")
    print(f"report: magbig report {out}")


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="run directory")],
    classifier: Annotated[Optional[str], typer.Option("--classifier", help="whose labels (default: the audit's first)")] = None,
    n_boot: Annotated[Optional[int], typer.Option("--n-boot", help="bootstrap replicates")] = None,
):
    """Rebuild summary.json, report.html and report.md from a run's labels.

    Example: magbig report runs/audit-quick --classifier world
    """
    from magbig.audit import report as build  # heavy: polars

    if n_boot is not None and n_boot < 100:
        raise InputError(f"--n-boot {n_boot} is too few for stable intervals; use at least 100")
    _check_run_writable(run)  # the report files are written into it
    res = build(run, classifier, n_boot=n_boot)
    _print_headline(res["report"], res["paths"], f"{run} ({res['classifier']})")


@app.command()
def align(
    run: Annotated[Path, typer.Argument(help="run directory")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="CLIP folder or hub id in the local HF cache (default openai/clip-vit-large-patch14, pinned)")] = None,
    revision: Annotated[Optional[str], typer.Option("--revision", help="commit of a hub id")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="images per forward pass")] = 16,
    prompts_source: Annotated[str, typer.Option("--prompts", help="where English texts missing from the run come from")] = "builtin",
    device: Annotated[str, typer.Option("--device", metavar=DEVICE_METAVAR, help="where CLIP runs")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="rescore images already scored with this model")] = False,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help=ALLOW_PICKLE_HELP)] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
):
    """Text-image alignment: raw CLIP cosine of each image with its English and its own prompt.

    Writes alignment.parquet (resumable), prints the means per language and formulation and,
    when the run has labels, rebuilds its report with the alignment section.

    Example: magbig align runs/audit-quick --model openai/clip-vit-large-patch14 --batch-size 16
    """
    from magbig.alignment import (  # heavy: polars; torch + transformers once CLIP loads
        SCALE_NOTE, TEXT_TOWER_CAVEAT, compute_alignment, summarize_alignment,
    )
    from magbig.audit import classifier_names  # heavy: polars
    from magbig.audit import report as build  # heavy: polars

    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size} must be at least 1")
    _check_run_writable(run)  # alignment.parquet is written into it
    df = compute_alignment(run, model=model, revision=revision, batch_size=batch_size,
                           prompts_source=prompts_source, device=device, overwrite=overwrite,
                           progress=progress, allow_pickle=allow_pickle)

    def f(x):
        return "–" if x is None or x != x else f"{x:.4f}"

    model_name = df["clip_model"][0] if df.height else (model or "default CLIP")
    table = Table("lang", "formulation", "images", "n (English text)", "mean clip_cos_en",
                  "n (own text)", "mean clip_cos_own", "failed", title=f"alignment of {run} ({model_name})")
    for r in summarize_alignment(df).iter_rows(named=True):
        table.add_row(str(r["lang"]), str(r["formulation"]), str(r["n_images"]), str(r["n_en"]),
                      f(r["mean_cos_en"]), str(r["n_own"]), f(r["mean_cos_own"]), str(r["n_failed"]))
    console = _table_console()
    console.print(table)
    console.print(f"scale: {SCALE_NOTE}.")
    console.print(f"caveat: {TEXT_TOWER_CAVEAT}.")
    console.print(f"alignment: {Path(run) / 'alignment.parquet'}")
    if classifier_names(run):
        res = build(run)
        console.print(f"report with the alignment section: {res['paths']['report.html']}")
    else:
        console.print(f"no labels yet: the report gets the alignment section once labelled "
                      f"(`magbig classify {run} --classifier NAME`, then `magbig report {run}`)")


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="run directory A (the reference)")],
    run_b: Annotated[Path, typer.Argument(help="run directory B")],
    classifier: Annotated[Optional[str], typer.Option("--classifier", help="whose labels (default: each run's first)")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="bootstrap replicates")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
):
    """Paired comparison of per-prompt abs_dev between two runs (B − A); prints JSON.

    Example: magbig compare runs/audit-a runs/audit-b --classifier world
    """
    from magbig.audit import compare as run_compare  # heavy: polars

    if n_boot < 100:
        raise InputError(f"--n-boot {n_boot} is too few for stable intervals; use at least 100")
    print(json.dumps(run_compare(run_a, run_b, classifier, n_boot=n_boot, seed=seed), indent=1,
                     ensure_ascii=False))


@app.command()
def planted(
    run: Annotated[Path, typer.Argument(help="audit run directory of a Babel-world model (or the oracle)")],
    classifier: Annotated[Optional[str], typer.Option("--classifier", help="whose labels (default: the run's first)")] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="|p̂ − planted| counted as recovered")] = 0.10,
    cells: Annotated[Optional[Path], typer.Option("--cells", help="also write the per-cell table (.csv or .parquet)")] = None,
    subjects: Annotated[Optional[str], typer.Option("--subjects", help="comma-separated occupations to keep")] = None,
    only: Annotated[Optional[Path], typer.Option("--only", help="keep only the cells listed in this .csv/.parquet (columns subject, lang, formulation; e.g. those a model card says were learned)")] = None,
):
    """Compare a world-model audit with the planted bias table; prints a JSON summary.

    Besides the share of cells within the tolerance it prints the share a perfect model would
    reach at the run's n (binomial noise alone), so a small n is not mistaken for a bad model.

    Example: magbig planted runs/audit-quick --tolerance 0.1 --cells cells.csv
    """
    import polars as pl  # heavy: polars

    from magbig.audit import compare_to_planted, planted_recovery  # heavy: polars
    from neobabel.runs import RunDir, atomic_write_bytes, atomic_write_parquet  # heavy: polars

    if not 0 < tolerance < 1:
        raise InputError(f"--tolerance {tolerance} must lie between 0 and 1")
    if cells is not None and cells.suffix not in (".csv", ".parquet"):
        raise InputError(f"--cells {cells}: use a .csv or .parquet file name")
    cmp = compare_to_planted(run, classifier, tolerance=tolerance)
    if subjects:
        keep = [x.strip() for x in subjects.split(",") if x.strip()]
        unknown = sorted(set(keep) - set(cmp["subject"].to_list()))
        if unknown:
            raise InputError(f"--subjects: {', '.join(unknown)} not in {run} (it has: "
                             f"{', '.join(sorted(set(cmp['subject'].to_list())))})")
        cmp = cmp.filter(pl.col("subject").is_in(keep))
    if only is not None:
        cmp = _keep_listed_cells(cmp, only, run)
    if cmp.height == 0:
        raise InputError(f"{run} has no labelled prompts of the world's planted table; audit a world "
                         "model (e.g. `magbig audit --config configs/audits/quick.yaml`) and classify with `world`")
    if cells is not None:
        if cells.suffix == ".csv":
            atomic_write_bytes(cells, cmp.write_csv().encode("utf-8"))
        else:
            atomic_write_parquet(cmp, cells)
    summary = planted_recovery(cmp, tolerance)
    seeds = (RunDir(run).read_run_json().get("audit") or {}).get("seeds", "shared")
    summary["seeds"] = seeds
    if seeds == "shared" and summary.get("fit_to_planted"):
        # every cell drew from one seed list: the occupations are not independent clusters either,
        # so no p-value is printed at all
        summary["fit_to_planted"].update(p_value=None, p_value_independent=None, note=(
            "this run used one seed list for every prompt (seeds: shared), so no fit test here is valid; "
            "audit with seeds: per_subject"))
        for part in summary.get("per_formulation", {}).values():
            part["fit_p_value"] = None
    print(json.dumps(summary, indent=1, ensure_ascii=False))


def _keep_listed_cells(cmp, listing: Path, run: Path):
    """The rows of `cmp` whose (subject, lang, formulation) `listing` names; every listed cell must be in the run."""
    from magbig.stats import read_table  # heavy: polars, scipy

    cells = read_table(listing, "cell list", ("subject", "lang", "formulation"))
    cells = cells.select("subject", "lang", "formulation").unique()
    missing = cells.join(cmp, on=["subject", "lang", "formulation"], how="anti")
    if missing.height:
        first = missing.row(0)
        raise InputError(f"--only {listing}: {missing.height} listed cells are not in {run} (first: "
                         f"{'/'.join(first)}); audit them, or list only cells the run has")
    return cmp.join(cells, on=["subject", "lang", "formulation"], how="semi")


@app.command()
def selftest(
    cells: Annotated[int, typer.Option("--cells", help="simulated prompts with known shares")] = 1000,
    n: Annotated[int, typer.Option("-n", help="images per cell")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    n_boot: Annotated[int, typer.Option("--n-boot", help="bootstrap replicates")] = 1000,
    confidence: Annotated[float, typer.Option("--confidence", help="nominal interval level")] = 0.95,
    render_pool: Annotated[Optional[int], typer.Option("--render-pool", help="reuse this many layouts (faster)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True,
    no_limits: Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)] = False,
):
    """Check the audit's intervals on oracle images with known shares; prints coverage JSON.

    Exits 1 when a coverage falls outside its expected band (or the reader misreads an image).

    Example: magbig selftest --cells 200 -n 20 --render-pool 50
    """
    from magbig.selftest import selftest as run_selftest  # heavy: polars, scipy

    if n_boot < 100:
        raise InputError(f"--n-boot {n_boot} is too few for stable intervals; use at least 100")
    preflight.check_count("--cells", cells, preflight.MAX_IMAGES_PER_PROMPT, no_limits=no_limits)
    preflight.check_count("-n", n, preflight.MAX_IMAGES_PER_PROMPT, no_limits=no_limits)
    preflight.check_units(cells, n, no_limits=no_limits)
    report_progress, close_progress = progress_callback("selftest: rendering and reading", enabled=progress)
    try:
        res = run_selftest(cells, n, seed, confidence=confidence, n_boot=n_boot, render_pool=render_pool,
                           progress=report_progress)
    finally:
        close_progress()
    print(json.dumps(res, indent=1))
    if not res["pass"]:
        print("magbig: selftest: coverage outside the expected band", file=sys.stderr)
        return 1
    return 0


def explorer_script() -> Path:
    """apps/explorer.py: beside the magbig package, in a checkout (editable install) and in an
    installed wheel alike (the wheel ships `apps` as a package next to `magbig`). Located by
    path, never imported: apps sits above magbig."""
    import importlib.util

    import magbig

    candidates = [Path(magbig.__file__).resolve().parent.parent / "apps" / "explorer.py"]
    spec = importlib.util.find_spec("apps")  # a top-level lookup: imports nothing
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "explorer.py" for p in spec.submodule_search_locations]
    for c in candidates:
        if c.is_file():
            return c
    raise InputError("the audit explorer (apps/explorer.py) is not installed beside magbig; reinstall "
                     "neobabel (pip install neobabel, or pip install -e . in a checkout)")


@app.command()
def explore(
    runs: Annotated[list[Path], typer.Argument(help="audit run directories and/or job output folders")],
    host: Annotated[str, typer.Option("--host", help="address to bind (127.0.0.1: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port (0: Streamlit's default, 8501)")] = 0,
):
    """Open the audit explorer (Streamlit) on one or more runs or scheduled-job folders.

    Example: magbig explore runs/audit-quick runs/jobs/world-weekly --port 8502
    """
    import subprocess

    missing = [str(r) for r in runs if not Path(r).is_dir()]
    if missing:
        raise InputError(f"{', '.join(missing)}: no such directory; pass run directories (magbig audit --out) "
                         "or job folders (<output>/<job>)")
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is not a port number; use 1-65535")
    cmd = [sys.executable, "-m", "streamlit", "run", str(explorer_script()), "--server.address", host,
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    if port:
        cmd += ["--server.port", str(port)]
    cmd += ["--", *(str(Path(r).resolve()) for r in runs)]
    # One BLAS thread: the statistics solve many small systems, where threads only contend
    # (4-6x slower on a busy 2-core machine); an explicit setting wins.
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **os.environ}
    proc = subprocess.Popen(cmd, env=env)  # noqa: S603 (our own argv, no shell)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: not an interrupted run to resume
        # Ctrl-C reached streamlit too; a SIGTERM sent to this process alone did not.
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print("explorer stopped", file=sys.stderr)
        return 0


def main() -> None:
    run_cli(app, "magbig")


if __name__ == "__main__":
    main()
