"""`neobabel eval dpg` and `neobabel eval consistency`: plain typer-annotated functions that the
`eval` sub-app registers (``eval_app.command("dpg")(dpg)``).

Both generate through the resumable run machinery (``neobabel.runs.generate_into_run``: rerun
the same command and finished images are kept) unless ``--images`` points at images made
elsewhere, then score and write ``scores.parquet``, ``summary.json``, ``report.md`` and
``report.html`` into ``--out``, and print a table (language x category / encoder).
"""

# No `from __future__ import annotations`: typer reads the Annotated options as objects.

import time
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.markup import escape
from rich.table import Table

from neobabel import preflight
from neobabel.clikit import console
from neobabel.devices import resolve_device
from neobabel.errors import InputError
from neobabel.evalcli import (
    AddressOpt, DeviceOpt, EngineOpt, ModelOpt, NoLimitsOpt, ProgressOpt, WorkersOpt, check_common, check_engine,
    ray_runner_for,
)
from neobabel.languages import LANGUAGE_CODES, parse_langs

VqaName = Literal["blip", "paligemma", "world"]

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}th:first-child,td:first-child{text-align:left}</style>
</head><body><h1>{{ title }}</h1>
<p>{% for k, v in facts %}<b>{{ k }}</b>: {{ v }}<br>{% endfor %}</p>
{% for t in tables %}<h2>{{ t.title }}</h2><table><tr>{% for h in t.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>{% endfor %}
</body></html>
"""


def _render_html(title: str, facts: list, tables: list) -> str:
    from jinja2 import Environment  # heavy-ish: only when a report is written

    return Environment(autoescape=True).from_string(_HTML).render(title=title, facts=facts, tables=tables)


def _markdown(title: str, facts: list, tables: list) -> str:
    def esc(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = [f"# {title}", ""] + [f"- **{esc(k)}**: {esc(v)}" for k, v in facts] + [""]
    for t in tables:
        out += [f"## {t['title']}", "", "| " + " | ".join(esc(h) for h in t["header"]) + " |",
                "|---" * len(t["header"]) + "|"]
        out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in t["rows"]] + [""]
    return "\n".join(out)


def _write_outputs(out: Path, scores, summary: dict, title: str, facts: list, tables: list) -> None:
    from neobabel.runs import atomic_write_json, atomic_write_parquet, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(scores, out / "scores.parquet")
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.md", _markdown(title, facts, tables))
    atomic_write_text(out / "report.html", _render_html(title, facts, tables))


def _print_tables(tables: list) -> None:
    for t in tables:
        # escaped: titles and cells hold user strings (model paths, category names), not markup
        table = Table(title=escape(str(t["title"])))
        for h in t["header"]:
            table.add_column(escape(str(h)), justify="left" if h == t["header"][0] else "right")
        for row in t["rows"]:
            table.add_row(*[escape(str(c)) for c in row])
        console.print(table)


def _open_rgb(path: Path):
    """The RGB image, or the exception a missing/corrupt file raised: a counted failure, never
    a crash that loses the run's other scores."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for truncated or foreign files
        return exc


class _LazyTiles(dict):
    """{(lang, item_id): tiles}, each prompt's images opened only when it is scored (a full
    DPG run in 13 languages does not fit in memory at once)."""

    def __init__(self, paths: dict):
        super().__init__()
        self.paths = paths

    def get(self, key, default=None):
        if key not in self.paths:
            return default
        return [p if isinstance(p, Exception) else _open_rgb(p) for p in self.paths[key]]


def _generate(model: Optional[str], units: list, out: Path, device: str, batch_size: int, progress: bool,
              spec: dict, engine: str = "local", address: Optional[str] = None,
              workers: Optional[int] = None) -> dict:
    """Generate the units into the run directory ``out``; {(prompt_id, lang, seed): image path}.
    ``engine="ray"``: the batches are made by Ray actors (neobabel.engines.RayRunner)."""
    from neobabel.builtins import default_model
    from neobabel.pipeline import BabelPipeline  # heavy: torch + diffusers, only when a model loads
    from neobabel.runs import RunDir, generate_into_run, resolve_in_run

    pipe = BabelPipeline.from_pretrained(model or default_model(), device=device)
    pipe.set_batch_invariant(True)
    run = RunDir(out)
    params = pipe.resolve_params()
    runner = None
    if engine == "ray":
        runner = ray_runner_for(pipe, model, False, batch_size, address, workers)(params, run.path)
    try:
        generate_into_run(pipe, units, run, params, batch_size=batch_size, progress=progress,
                          spec={**spec, "engine": engine}, runner=runner)
    finally:
        if runner is not None:
            runner.shutdown()
    wanted = {(u.prompt_id, u.lang, u.seed) for u in units}
    images = {}
    for r in run.load_manifest().iter_rows(named=True):
        key = (r["prompt_id"], r["lang"], r["seed"])
        if key in wanted:
            images[key] = resolve_in_run(run.path, r["path"])  # never a file outside the run
    return images


def _interval_cell(d: dict | None) -> str:
    """"mean [lo, hi]" of one consistency cell; "unscored" when no pair could be scored."""
    if d is None:
        return "–"
    if d["mean"] is None:
        return f"unscored ({d['unscored_pairs']} pairs)"
    if d["lo"] is None:  # one prompt: a mean, no interval
        return f"{d['mean']:.3f} (no interval: {d['prompts']} prompt)"
    return f"{d['mean']:.3f} [{d['lo']:.3f}, {d['hi']:.3f}]"


def _checked_device(*, n: int, batch_size: int, out: Path, device: str, engine: str, address: Optional[str],
                    workers: Optional[int], no_limits: bool) -> str:
    """The checks dpg and consistency share (evalcli.check_common + the engine's), before any
    model loads; -> the device the models load on ("auto" resolved)."""
    check_common(n=n, batch_size=batch_size, out=out, device=device, no_limits=no_limits)
    check_engine(engine, address, workers)
    return resolve_device(device)


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def dpg(
    model: ModelOpt = None,
    langs: Annotated[str, typer.Option("--langs", help="comma-separated codes, or all")] = "all",
    n: Annotated[int, typer.Option("-n", help="images per prompt (DPG-Bench: 4, one 2x2 grid)")] = 4,
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory (images and scores)")] = Path("runs/eval-dpg"),
    images: Annotated[Optional[Path], typer.Option("--images", help="score images made elsewhere: <item_id>.png 2x2 grids or <item_id>_<k>.png, in <lang>/ sub-folders for several languages")] = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="a DPG-Bench CSV (default: the world m-DPG set)")] = None,
    prompts: Annotated[int, typer.Option("--prompts", help="world m-DPG prompts per language (without --csv)")] = 10,
    vqa: Annotated[Optional[VqaName], typer.Option("--vqa", help="VQA backend (default: world for the world set, else blip)")] = None,
    vqa_model: Annotated[Optional[str], typer.Option("--vqa-model", help="VQA model folder or cached hub id")] = None,
    legacy: Annotated[bool, typer.Option("--legacy", help="reproduce DPG-Bench's compute_dpg_bench.py numbers, defects included")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="images per forward pass")] = 8,
    device: DeviceOpt = "cpu",
    progress: ProgressOpt = True,
    no_limits: NoLimitsOpt = False,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
):
    """m-DPG: dense prompts, yes/no questions with dependencies, score x 100 per language and category.

    Example: neobabel eval dpg --model world --langs en,de,zh -n 4 --prompts 10 --out runs/dpg
    """
    from neobabel.eval import dpg as dpgmod  # heavy: polars, PIL
    from neobabel.eval.dpgworld import WorldOracle, world_dpg_items

    lang_list = parse_langs(langs) or list(LANGUAGE_CODES)
    device = _checked_device(n=n, batch_size=batch_size, out=out, device=device, engine=engine, address=address,
                             workers=workers, no_limits=no_limits)
    if csv is not None:
        items = dpgmod.read_dpg_csv(csv, legacy=legacy)
        items = [it for it in items if it.lang in lang_list]
        if not items:
            raise InputError(f"{csv}: no prompt in the languages {','.join(lang_list)}; check --langs and the lang column")
    else:
        preflight.check_count("--prompts", prompts, 1000, no_limits=no_limits)
        items = world_dpg_items(prompts, lang_list)
    kind = vqa or ("world" if csv is None else "blip")
    if kind == "world":
        answerer = WorldOracle()
    else:
        from neobabel.scorers.vqa import load_vqa

        answerer = load_vqa(kind, vqa_model, device=device)  # before any image is made: fails fast
    started = time.perf_counter()
    unknown: list[str] = []
    if images is not None:
        sources, unknown = dpgmod.find_images(images, items)
        result = dpgmod.score_dpg(items, sources, answerer, legacy=legacy)
    else:
        from neobabel.runs import WorkUnit

        preflight.check_units(len(items), n, no_limits=no_limits)
        units = [WorkUnit(it.item_id, it.text, it.lang, seed, subject="dpg") for it in items for seed in range(n)]
        made = _generate(model, units, out, device, batch_size, progress,
                         {"command": "eval dpg", "n": n, "langs": lang_list, "csv": str(csv) if csv else "world"},
                         engine, address, workers)
        tiles = _LazyTiles({(it.lang, it.item_id): [made.get((it.item_id, it.lang, s), FileNotFoundError("not generated"))
                                                    for s in range(n)] for it in items})
        answers = dpgmod.answer_items(items, tiles, answerer)
        result = dpgmod.score_answers(items, answers, legacy=legacy)
        result.summary["vqa"] = answerer.name
    summary = result.summary
    summary.update(vqa=answerer.name, reference_backend=False, unknown_image_files=unknown[:50],
                   n_unknown_image_files=len(unknown), seconds=round(time.perf_counter() - started, 2),
                   prompt_set=str(csv) if csv else f"world m-DPG ({prompts} prompts)")
    cats = sorted({c for v in summary["per_lang"].values() for c in v["categories_l1"]})
    rows = [[lang, _fmt(v["score"]), *[_fmt(v["categories_l1"].get(c)) for c in cats], v["failed_tiles"]]
            for lang, v in summary["per_lang"].items()]
    tables = [{"title": f"m-DPG ({summary['mode']}; VQA: {answerer.name}, non-reference backend)",
               "header": ["lang", "score", *cats, "failed"], "rows": rows}]
    facts = [("prompt set", summary["prompt_set"]), ("mode", summary["mode"]), ("VQA", answerer.name),
             ("mean over languages", summary["mean_over_langs"]), ("failed tiles", summary["failed_tiles"])]
    _write_outputs(out, result.rows, summary, "m-DPG", facts, tables)
    _print_tables(tables)
    if summary["failed_tiles"] or unknown:
        console.print(f"[yellow]{summary['failed_tiles']} tiles failed (scored 0{' and dropped: legacy' if legacy else ''}); "
                      f"{len(unknown)} image files match no prompt; see {escape(str(out))}/summary.json[/yellow]")
    print(f"scores: {out}/scores.parquet  summary: {out}/summary.json  report: {out}/report.html")


def consistency(
    model: ModelOpt = None,
    langs: Annotated[str, typer.Option("--langs", help="comma-separated codes, or all (English is the anchor)")] = "all",
    n: Annotated[int, typer.Option("-n", help="seeds per prompt")] = 4,
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory")] = Path("runs/eval-consistency"),
    prompts: Annotated[int, typer.Option("--prompts", help="world prompts")] = 10,
    images: Annotated[Optional[Path], typer.Option("--images", help="score images made elsewhere: <lang>/<prompt_id>_<seed>.png and <variant>/<lang>/... (variant: cs_en_first, cs_en_second)")] = None,
    encoders: Annotated[str, typer.Option("--encoders", help="comma-separated: clip, dinov2, world-parse")] = "clip,dinov2,world-parse",
    clip_model: Annotated[Optional[str], typer.Option("--clip-model", help="CLIP folder or cached hub id")] = None,
    dino_model: Annotated[Optional[str], typer.Option("--dino-model", help="DINOv2 folder or cached hub id")] = None,
    code_switch: Annotated[bool, typer.Option("--code-switch/--no-code-switch", help="also the code-switched prompts (CSS)")] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="images per forward pass")] = 8,
    device: DeviceOpt = "cpu",
    progress: ProgressOpt = True,
    no_limits: NoLimitsOpt = False,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
):
    """Cross-lingual (CLC) and code-switching (CSS) consistency against the English image, same seed.

    Example: neobabel eval consistency --model world --langs en,de,ja -n 2 --prompts 8 --out runs/clc
    """
    import polars as pl

    from neobabel.eval import consistency as cons

    lang_list = parse_langs(langs) or list(LANGUAGE_CODES)
    wanted = [e.strip() for e in encoders.split(",") if e.strip()]
    bad = [e for e in wanted if e not in ("clip", "dinov2", cons.PARSE_ENCODER)]
    if bad or not wanted:
        raise InputError(f"unknown encoder {bad[0] if bad else encoders!r}; use a comma-separated list of "
                         "clip, dinov2, world-parse")
    preflight.check_count("--prompts", prompts, 1000, no_limits=no_limits)
    device = _checked_device(n=n, batch_size=batch_size, out=out, device=device, engine=engine, address=address,
                             workers=workers, no_limits=no_limits)
    embedders = {}
    if "clip" in wanted or "dinov2" in wanted:
        from neobabel.scorers.embed import load_embedder

        for kind, path in (("clip", clip_model), ("dinov2", dino_model)):
            if kind in wanted:  # loaded before any image is made: a missing model fails fast
                embedders[kind] = load_embedder(kind, path, device=device).embed
    started = time.perf_counter()
    failed: list[str] = []
    if images is not None:
        table, image_list, failed = cons.read_image_folder(images)
        table = table.filter(pl.col("lang").is_in(lang_list) | (pl.col("lang") == "en"))
        n_units = table.height + len(failed)
    else:
        plist = cons.world_consistency_prompts(prompts, lang_list, code_switch=code_switch)
        preflight.check_units(len(plist), n, no_limits=no_limits)
        from neobabel.runs import WorkUnit

        units = [WorkUnit(f"{p.prompt_id}|{p.variant}", p.text, p.lang, seed, subject="consistency",
                          formulation=p.variant) for p in plist for seed in range(n)]
        made = _generate(model, units, out, device, batch_size, progress,
                         {"command": "eval consistency", "n": n, "langs": lang_list, "prompts": prompts},
                         engine, address, workers)
        image_list, rows = [], []
        for p in plist:
            for seed in range(n):
                path = made.get((f"{p.prompt_id}|{p.variant}", p.lang, seed))
                if path is None:
                    continue
                im = _open_rgb(path)
                if isinstance(im, Exception):
                    failed.append(f"{path.name}: {type(im).__name__}")
                    continue
                rows.append({"prompt_id": p.prompt_id, "lang": p.lang, "variant": p.variant, "seed": seed,
                             "image_index": len(image_list)})
                image_list.append(im)
        table = pl.DataFrame(rows, schema={"prompt_id": pl.String, "lang": pl.String, "variant": pl.String,
                                           "seed": pl.Int64, "image_index": pl.Int64})
        n_units = len(units)
    pairs = cons.pair_images(table)
    scores = cons.score_pairs(pairs, image_list, embedders, world_parse=cons.PARSE_ENCODER in wanted)
    summary = {"metrics": cons.summarize(scores), "prompts": prompts if images is None else str(images),
               "seeds": n, "langs": lang_list, "encoders": wanted, "pairs": pairs.height, "images": table.height,
               "images_missing": n_units - table.height, "failed_files": failed[:50],
               "seconds": round(time.perf_counter() - started, 2), "anchor": "en", "code_switch": code_switch}
    tables = []
    for metric, by_enc in summary["metrics"].items():
        encs = sorted(by_enc)
        lang_rows = [lang for lang in LANGUAGE_CODES if any(lang in by_enc[e] for e in encs)]
        tables.append({"title": metric, "header": ["lang", *encs], "rows": [
            [lang, *[_interval_cell(by_enc[e].get(lang)) for e in encs]] for lang in lang_rows]})
    facts = [("anchor", "English image, same prompt id and seed"), ("prompts", summary["prompts"]), ("seeds", n),
             ("encoders", ", ".join(wanted))]
    _write_outputs(out, scores.drop("en_index", "other_index"), summary, "Cross-lingual consistency", facts, tables)
    _print_tables(tables)
    print(f"scores: {out}/scores.parquet  summary: {out}/summary.json  report: {out}/report.html")


__all__ = ["dpg", "consistency"]
