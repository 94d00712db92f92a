"""m-DPG: DPG-Bench's dense-prompt questions, scored per language, with the reference's defects fixed.

Input contract (DPG-Bench's ``dpg_bench.csv``): one row per question, columns ``item_id, text,
keywords, proposition_id, dependency, category_broad, category_detailed, tuple,
question_natural_language`` (an optional ``lang`` column names the prompt's language; default
``en``). Questions stay in English whatever the prompt's language, as in NeoBabel's m-DPG.
``dependency`` lists the parent proposition ids ("0" = none); a question's category is its
``tuple`` up to the first "(" ("entity - whole"), the broad category the part before "-".

Images: 4 per prompt, either one 2x2 grid file named ``<item_id>.<ext>`` (DPG-Bench's layout,
tiles read in the order top-left, top-right, bottom-left, bottom-right) or separate files
``<item_id>_<k>.<ext>`` (k = 0..3); a folder with one sub-folder per language code holds one
language each.

Scoring (DPG-Bench's rule): a VQA model answers every question on every tile (yes when
P(yes) >= 0.5); a question whose parent was answered "no" scores 0 (the dependency rule); a
tile's score is the mean over its questions, a prompt's the mean over its tiles, the benchmark's
the mean over prompts, times 100. Category scores are means of the raw answers (before the
dependency rule, as the reference computes them) per category, times 100.

Defects of the reference ``compute_dpg_bench.py`` (ELLA repository) fixed here; ``legacy=True``
keeps each of them, to reproduce the reference's numbers:

1. Category scores from all four tiles. The reference overwrites its per-question answers at each
   tile and keeps the last tile's answers for the category scores (a quarter of the data).
2. The first CSV row is evaluated. The reference skips row 0 (``if i == 0: continue``) as if
   pandas had not already consumed the header, so the first prompt loses its first question and
   any question depending on it raises ``KeyError``, which drops that prompt's image.
3. Failed images are counted and reported, never silently dropped. The reference catches every
   exception per image file (corrupt file, unknown item id, the KeyError above), prints a line
   and leaves the image out of every mean; a prompt with no image is not noticed at all. Here a
   missing or unreadable image counts as a failure: it scores 0 (no answer is a right answer),
   ``summary`` lists it, and the score without failures is reported beside the main one.
4. The dependency rule is applied transitively, whatever the row order (a question is zeroed
   when any ancestor was answered "no"). The reference walks the questions once in CSV order
   and sees a parent's already-zeroed score only when the parent comes first.

Dangling parents (a dependency naming a proposition id the prompt does not have) are ignored and
counted in the summary; in legacy mode they fail the image, as the reference's KeyError does.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl
from PIL import Image

from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES

DPG_COLUMNS: tuple[str, ...] = (
    "item_id", "text", "keywords", "proposition_id", "dependency", "category_broad",
    "category_detailed", "tuple", "question_natural_language",
)
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")
TILES_PER_PROMPT = 4


# --------------------------------------------------------------------------------------------
# the CSV contract
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DpgQuestion:
    """One proposition of a prompt: ``qid`` (proposition_id), its parents (0 = none), the
    DPG tuple ("attribute - color (circle, red)") and the English yes/no question."""

    qid: int
    parents: tuple[int, ...]
    tuple: str
    question: str
    category_broad: str = ""
    category_detailed: str = ""

    @property
    def category(self) -> str:
        """DPG-Bench's L2 category: the tuple up to its first "(" ("entity - whole")."""
        return self.tuple.split("(")[0].strip()

    @property
    def category_l1(self) -> str:
        """DPG-Bench's L1 category: the L2 category up to its first "-" ("entity")."""
        return self.category.split("-")[0].strip()


@dataclass(frozen=True)
class DpgItem:
    """One prompt (``item_id``, in language ``lang``) with its questions in CSV order."""

    item_id: str
    text: str
    questions: tuple[DpgQuestion, ...]
    lang: str = "en"

    def question(self, qid: int) -> DpgQuestion:
        for q in self.questions:
            if q.qid == qid:
                return q
        raise KeyError(qid)


def _parse_int(value: str, what: str, row: int, path: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError(f"{path}: line {row}: {what} {value!r} is not an integer; "
                         "DPG-Bench writes whole numbers there") from None


def read_dpg_csv(path: str | Path, *, legacy: bool = False, lang: str | None = None) -> list[DpgItem]:
    """The prompts of a DPG-Bench CSV, in file order (grouped by ``item_id``).

    ``legacy`` skips the first data row, as the reference does. ``lang`` sets every prompt's
    language when the file has no ``lang`` column. Raises InputError (one line) for a missing
    file, a missing column or a malformed number."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"DPG CSV {str(path)!r} does not exist; pass DPG-Bench's dpg_bench.csv "
                         "or a file with the same columns")
    try:
        df = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except Exception as exc:  # polars raises several types for unreadable files
        raise InputError(f"{path}: not a readable CSV ({' '.join(str(exc).split())[:160]})") from None
    return dpg_items_from_frame(df, str(path), legacy=legacy, lang=lang)


def dpg_items_from_frame(df: pl.DataFrame, source: str = "<frame>", *, legacy: bool = False,
                         lang: str | None = None) -> list[DpgItem]:
    """:func:`read_dpg_csv` on an already-read table of strings."""
    missing = [c for c in DPG_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing column {missing[0]!r}; a DPG CSV has the columns "
                         f"{', '.join(DPG_COLUMNS)}")
    has_lang = "lang" in df.columns
    rows = list(df.iter_rows(named=True))
    if legacy:
        rows = rows[1:]  # defect 2, kept on purpose: the reference skips the first data row
    grouped: dict[tuple[str, str], list] = {}
    texts: dict[tuple[str, str], str] = {}
    for i, r in enumerate(rows, start=3 if legacy else 2):  # file line numbers (header = line 1)
        item = (r["item_id"] or "").strip()
        if not item:
            raise InputError(f"{source}: line {i}: empty item_id; every row names its prompt")
        code = (r["lang"] if has_lang else None) or lang or "en"
        if code not in LANGUAGE_CODES:
            raise InputError(f"{source}: line {i}: unknown language {code!r}; use one of "
                             f"{', '.join(LANGUAGE_CODES)}")
        qid = _parse_int(r["proposition_id"], "proposition_id", i, source)
        deps = tuple(_parse_int(d, "dependency", i, source)
                     for d in str(r["dependency"] or "0").split(",") if d.strip())
        q = DpgQuestion(qid, deps or (0,), (r["tuple"] or "").strip(), (r["question_natural_language"] or "").strip(),
                        (r["category_broad"] or "").strip(), (r["category_detailed"] or "").strip())
        key = (code, item)
        grouped.setdefault(key, []).append(q)
        texts.setdefault(key, r["text"] or "")
    return [DpgItem(k[1], texts[k], tuple(qs), k[0]) for k, qs in grouped.items()]


def dpg_frame(items: Iterable[DpgItem]) -> pl.DataFrame:
    """The DPG CSV table of ``items`` (with a ``lang`` column): the inverse of
    :func:`dpg_items_from_frame`."""
    rows = [{"item_id": it.item_id, "text": it.text, "keywords": "", "proposition_id": str(q.qid),
             "dependency": ",".join(str(p) for p in q.parents), "category_broad": q.category_broad,
             "category_detailed": q.category_detailed, "tuple": q.tuple,
             "question_natural_language": q.question, "lang": it.lang}
            for it in items for q in it.questions]
    return pl.DataFrame(rows, schema={c: pl.String for c in (*DPG_COLUMNS, "lang")})


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSource:
    """Where a prompt's 4 images are: one grid file, or one file per tile (None = missing)."""

    grid: Path | None = None
    tiles: tuple[Path | None, ...] = ()

    @property
    def missing(self) -> bool:
        return self.grid is None and not any(self.tiles)


def split_grid(image: Image.Image) -> list[Image.Image]:
    """The 4 tiles of a 2x2 grid, in the reference's order (TL, TR, BL, BR). The tile side is
    half the grid's; a grid that is not square with an even side is an error (a ValueError,
    counted as a failed image by the scorer)."""
    w, h = image.size
    if w != h or w % 2:
        raise ValueError(f"a DPG grid is square with an even side, got {w}x{h}")
    r = w // 2
    boxes = [(0, 0, r, r), (r, 0, 2 * r, r), (0, r, r, 2 * r), (r, r, 2 * r, 2 * r)]
    return [image.crop(b) for b in boxes]


def make_grid(images: Sequence[Image.Image]) -> Image.Image:
    """4 equal square images -> one 2x2 grid (TL, TR, BL, BR), DPG-Bench's file layout."""
    if len(images) != TILES_PER_PROMPT:
        raise ValueError(f"a grid holds {TILES_PER_PROMPT} images, got {len(images)}")
    r = images[0].size[0]
    grid = Image.new("RGB", (2 * r, 2 * r))
    for k, im in enumerate(images):
        grid.paste(im.convert("RGB").resize((r, r)), ((k % 2) * r, (k // 2) * r))
    return grid


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def find_images(folder: str | Path, items: Sequence[DpgItem]) -> tuple[dict[tuple[str, str], ImageSource], list[str]]:
    """Locate each prompt's images under ``folder`` (see the module docstring for the layouts).

    Returns ``({(lang, item_id): ImageSource}, unknown)``: ``unknown`` lists image files that
    belong to no prompt (the reference crashes on them and drops them; here they are reported).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder {str(folder)!r} does not exist; pass the folder holding "
                         "<item_id>.png grids or <item_id>_<k>.png tiles")
    langs = sorted({it.lang for it in items})
    per_lang = {code: folder / code for code in langs if (folder / code).is_dir()}
    out: dict[tuple[str, str], ImageSource] = {}
    known: set[Path] = set()
    for it in items:
        base = per_lang.get(it.lang, folder)
        grid = next((base / f"{it.item_id}{e}" for e in IMAGE_EXTENSIONS if (base / f"{it.item_id}{e}").is_file()), None)
        tiles = tuple(next((base / f"{it.item_id}_{k}{e}" for e in IMAGE_EXTENSIONS
                            if (base / f"{it.item_id}_{k}{e}").is_file()), None) for k in range(TILES_PER_PROMPT))
        src = ImageSource(grid, () if grid is not None else tiles)
        out[(it.lang, it.item_id)] = src
        known.update(p for p in (grid, *tiles) if p is not None)
    dirs = set(per_lang.values()) or {folder}
    unknown = sorted(str(p.relative_to(folder)) for d in dirs for p in d.iterdir()
                     if p.suffix.lower() in IMAGE_EXTENSIONS and p not in known)
    return out, unknown


def load_tiles(src: ImageSource) -> list[Image.Image | Exception]:
    """The 4 tiles of a prompt; each failed tile is the exception that says why."""
    if src.grid is not None:
        try:
            return split_grid(_open_rgb(src.grid))
        except Exception as exc:  # a corrupt file, any decoder error: one failure, counted
            return [exc] * TILES_PER_PROMPT
    tiles: list[Image.Image | Exception] = []
    for k in range(TILES_PER_PROMPT):
        p = src.tiles[k] if k < len(src.tiles) else None
        if p is None:
            tiles.append(FileNotFoundError(f"no image for tile {k}"))
            continue
        try:
            tiles.append(_open_rgb(p))
        except Exception as exc:
            tiles.append(exc)
    return tiles


# --------------------------------------------------------------------------------------------
# answering
# --------------------------------------------------------------------------------------------


class Answerer(Protocol):
    """What the scorer needs from a VQA backend (:mod:`neobabel.scorers.vqa`): P(yes) for each
    (image, question) pair. ``questions`` carry the English text and the DPG tuple (the world
    oracle reads the tuple)."""

    name: str

    def p_yes_questions(self, images: Sequence[Image.Image], questions: Sequence[DpgQuestion]) -> np.ndarray: ...


ROW_SCHEMA = {
    "lang": pl.String, "item_id": pl.String, "tile": pl.Int64, "status": pl.String, "error": pl.String,
    "qid": pl.Int64, "question": pl.String, "category": pl.String, "category_l1": pl.String,
    "p_yes": pl.Float64, "answer_yes": pl.Boolean, "score_raw": pl.Float64,
}


def answer_items(items: Sequence[DpgItem], tiles: Mapping[tuple[str, str], Sequence[Image.Image | Exception]],
                 answerer: Answerer, batch_size: int = 32) -> pl.DataFrame:
    """One row per (prompt, tile, question): the backend's P(yes) and the raw answer, or
    ``status="failed"`` with the reason for a tile that could not be read."""
    rows: list[dict] = []
    pending: list[tuple[int, Image.Image, DpgQuestion]] = []

    def flush() -> None:
        if not pending:
            return
        p = np.asarray(answerer.p_yes_questions([x[1] for x in pending], [x[2] for x in pending]), dtype=float)
        for (idx, _, _), v in zip(pending, p):
            rows[idx].update(p_yes=float(v), answer_yes=bool(v >= 0.5), score_raw=float(v >= 0.5))
        pending.clear()

    for it in items:
        its = tiles.get((it.lang, it.item_id)) or [FileNotFoundError("no image for this prompt")] * TILES_PER_PROMPT
        for k, tile in enumerate(its):
            failed = isinstance(tile, Exception)
            for q in it.questions:
                rows.append({"lang": it.lang, "item_id": it.item_id, "tile": k,
                             "status": "failed" if failed else "ok",
                             "error": f"{type(tile).__name__}: {tile}"[:200] if failed else None,
                             "qid": q.qid, "question": q.question, "category": q.category,
                             "category_l1": q.category_l1, "p_yes": None, "answer_yes": None, "score_raw": None})
                if not failed:
                    pending.append((len(rows) - 1, tile, q))
                    if len(pending) >= batch_size:
                        flush()
    flush()
    return pl.DataFrame(rows, schema=ROW_SCHEMA)


# --------------------------------------------------------------------------------------------
# the dependency rule and the means
# --------------------------------------------------------------------------------------------


def apply_dependencies(item: DpgItem, answers: Mapping[int, float], *, legacy: bool = False) -> tuple[dict[int, float], int]:
    """Scores after the dependency rule and the number of dangling parents met.

    Fixed: a question scores 0 when any ancestor (transitively) was answered no; dangling
    parents are ignored. Legacy: the reference's single pass in CSV order (a parent's score is
    read as it stands at that moment), and a dangling parent raises KeyError as it does there.
    """
    if legacy:
        scores = {q.qid: answers[q.qid] for q in item.questions}
        for q in item.questions:
            for parent in q.parents:
                if parent == 0:
                    continue
                if scores[parent] == 0:  # KeyError on a dangling parent, as in the reference
                    scores[q.qid] = 0.0
                    break
        return scores, 0
    qids = {q.qid for q in item.questions}
    parents = {q.qid: [p for p in q.parents if p != 0] for q in item.questions}
    dangling = sum(1 for q in item.questions for p in parents[q.qid] if p not in qids)
    memo: dict[int, bool] = {}

    def valid(qid: int, seen: frozenset) -> bool:  # all ancestors answered yes
        if qid in memo:
            return memo[qid]
        ok = True
        for p in parents[qid]:
            if p not in qids or p in seen:  # dangling parents and cycles are ignored
                continue
            if answers[p] == 0 or not valid(p, seen | {p}):
                ok = False
                break
        memo[qid] = ok
        return ok

    return {q.qid: (answers[q.qid] if valid(q.qid, frozenset({q.qid})) else 0.0) for q in item.questions}, dangling


@dataclass
class DpgScores:
    """Scored answers (``rows``: one per prompt x tile x question, with ``score`` after the
    dependency rule) and the summary (``summary``: per language overall and category scores,
    failures)."""

    rows: pl.DataFrame
    summary: dict = field(default_factory=dict)


def _mean100(values: Sequence[float]) -> float | None:
    return round(100.0 * float(np.mean(values)), 6) if len(values) else None


def score_answers(items: Sequence[DpgItem], answers: pl.DataFrame, *, legacy: bool = False) -> DpgScores:
    """Apply the dependency rule and DPG-Bench's means to answered rows (:func:`answer_items`).

    Fixed mode (default): failed tiles score 0 on every question; category scores pool all
    tiles. ``legacy=True``: the reference's numbers (see the module docstring)."""
    by_key = {(it.lang, it.item_id): it for it in items}
    scored_rows: list[dict] = []
    per_lang: dict[str, dict] = {}
    groups = answers.partition_by(["lang", "item_id"], as_dict=True, maintain_order=True)
    lang_prompt_scores: dict[str, list[float]] = defaultdict(list)
    lang_prompt_scores_ok: dict[str, list[float]] = defaultdict(list)
    lang_cat: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    failures: dict[str, list[dict]] = defaultdict(list)
    dangling_total: dict[str, int] = defaultdict(int)
    for (lang, item_id), g in groups.items():
        item = by_key[(lang, item_id)]
        tile_scores: list[float] = []
        any_failed = False
        last_raw: dict[int, float] | None = None
        prompt_cat: dict[str, list[float]] = defaultdict(list)
        out_rows: list[dict] = []
        for tile, tg in sorted(g.partition_by("tile", as_dict=True).items()):
            recs = list(tg.iter_rows(named=True))
            if recs[0]["status"] != "ok":
                any_failed = True
                failures[lang].append({"item_id": item_id, "tile": int(tile[0]), "error": recs[0]["error"]})
                for r in recs:
                    out_rows.append({**r, "score": 0.0})
                tile_scores.append(0.0)
                for q in item.questions:
                    prompt_cat[q.category].append(0.0)
                continue
            raw = {r["qid"]: r["score_raw"] for r in recs}
            if legacy:
                try:
                    dep, dangling = apply_dependencies(item, raw, legacy=True)
                except KeyError as exc:
                    any_failed = True
                    failures[lang].append({"item_id": item_id, "tile": int(tile[0]),
                                           "error": f"KeyError: dangling parent {exc} (the reference drops this image)"})
                    dep = {q: math.nan for q in raw}
                    dangling = 0
            else:
                dep, dangling = apply_dependencies(item, raw)
            if last_raw is None:  # once per prompt, not per tile
                dangling_total[lang] += dangling
            for r in recs:
                out_rows.append({**r, "score": dep[r["qid"]]})
            tile_scores.append(float(np.mean(list(dep.values()))))
            last_raw = raw
            for q in item.questions:
                prompt_cat[q.category].append(raw[q.qid])
        scored_rows.extend(out_rows)
        if legacy:
            # the reference drops an image with any failure from every mean, and keeps only
            # the last tile's raw answers for the category scores
            if any_failed or last_raw is None:
                continue
            lang_prompt_scores[lang].append(float(np.mean(tile_scores)))
            for q in item.questions:
                lang_cat[lang][q.category].append(last_raw[q.qid])
        else:
            lang_prompt_scores[lang].append(float(np.mean(tile_scores)))
            if not any_failed:
                lang_prompt_scores_ok[lang].append(float(np.mean(tile_scores)))
            for cat, vals in prompt_cat.items():
                lang_cat[lang][cat].extend(vals)
    for lang in sorted({k[0] for k in groups}):
        cats = lang_cat[lang]
        l1: dict[str, list[float]] = defaultdict(list)
        for cat, vals in cats.items():
            l1[cat.split("-")[0].strip()].extend(vals)
        n_prompts = sum(1 for k in groups if k[0] == lang)
        entry = {
            "score": _mean100(lang_prompt_scores[lang]),
            "prompts": n_prompts,
            "prompts_scored": len(lang_prompt_scores[lang]),
            "failed_tiles": len(failures[lang]),
            "failures": failures[lang][:50],
            "categories_l1": {k: _mean100(v) for k, v in sorted(l1.items())},
            "categories_l2": {k: _mean100(v) for k, v in sorted(cats.items())},
        }
        if not legacy:
            entry["score_without_failed"] = _mean100(lang_prompt_scores_ok[lang])
            entry["dangling_parents"] = dangling_total[lang]
        per_lang[lang] = entry
    rows = pl.DataFrame(scored_rows, schema={**ROW_SCHEMA, "score": pl.Float64}) if scored_rows else \
        pl.DataFrame(schema={**ROW_SCHEMA, "score": pl.Float64})
    scores = [v["score"] for v in per_lang.values() if v["score"] is not None]
    summary = {
        "benchmark": "m-DPG",
        "mode": "legacy (reproduces DPG-Bench's compute_dpg_bench.py)" if legacy else "fixed",
        "per_lang": per_lang,
        "mean_over_langs": round(float(np.mean(scores)), 4) if scores else None,
        "failed_tiles": sum(v["failed_tiles"] for v in per_lang.values()),
    }
    return DpgScores(rows, summary)


def score_dpg(items: Sequence[DpgItem], sources: Mapping[tuple[str, str], ImageSource], answerer: Answerer, *,
              legacy: bool = False, batch_size: int = 32) -> DpgScores:
    """Load each prompt's tiles, answer every question on every tile, score (see module doc)."""
    tiles = {key: (load_tiles(src) if not src.missing else [FileNotFoundError("no image for this prompt")] * TILES_PER_PROMPT)
             for key, src in sources.items()}
    answers = answer_items(items, tiles, answerer, batch_size=batch_size)
    result = score_answers(items, answers, legacy=legacy)
    result.summary["vqa"] = getattr(answerer, "name", type(answerer).__name__)
    result.summary["reference_backend"] = bool(getattr(answerer, "reference", False))
    return result


def parse_tuple(text: str) -> tuple[str, list[str]]:
    """A DPG tuple "attribute - color (circle, red)" -> ("attribute - color", ["circle", "red"])."""
    m = re.fullmatch(r"\s*([^(]*?)\s*\((.*)\)\s*", text)
    if not m:
        return text.strip(), []
    return m[1], [a.strip() for a in m[2].split(",") if a.strip()]


__all__ = [
    "DPG_COLUMNS", "DpgItem", "DpgQuestion", "DpgScores", "ImageSource", "Answerer", "answer_items",
    "apply_dependencies", "dpg_frame", "dpg_items_from_frame", "find_images", "load_tiles", "make_grid",
    "parse_tuple", "read_dpg_csv", "score_answers", "score_dpg", "split_grid",
]
