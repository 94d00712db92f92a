"""Text-image alignment of a run's images as raw CLIP cosine similarity.

For every image row of a run directory's ``generations.parquet`` (key, prompt_id, subject,
lang, formulation, text, path), :func:`compute_alignment` embeds the image and two texts with
one CLIP model (transformers ``CLIPModel``, loaded offline like the ``clip`` classifier:
:mod:`neobabel.scorers.clip`) and
stores, in ``alignment.parquet``:

``clip_cos_own``
    cosine similarity between the image embedding and the embedding of the prompt's own text;
``clip_cos_en``
    cosine similarity between the image embedding and the embedding of the prompt's English
    text (defined below).

**Scale.** Both are plain cosines of the L2-normalized projected embeddings,
``cos = <img/|img|, txt/|txt|>``, in [-1, 1]. They are NOT multiplied by 100 (CLIPScore
uses ``100 * max(cos, 0)``, or ``2.5 * max(cos, 0)`` in Hessel et al.) nor by CLIP's logit
scale, and NOT clipped at 0. With OpenAI CLIP ViT-L/14, an image and a caption that match
typically score around 0.2-0.35; unrelated pairs around 0.1. Differences between groups are
what the report reads (paired by occupation against ``direct``).

**The English text of a prompt** (subject s, language l, formulation f):

1. an English prompt (l = ``en``) is its own English text (so ``clip_cos_en == clip_cos_own``);
2. otherwise the English prompt of the same subject and the same formulation, else the English
   ``direct`` prompt of that subject (English has no ``feminine`` / ``gender_star`` prompt:
   their English text is the direct one), looked up first among the run's own manifest rows
   (the texts actually generated) and then in the prompt set ``prompts_source`` (built-in by
   default);
3. none found (no subject, or a subject absent from both): ``text_en`` and ``clip_cos_en``
   are null, and ``detail`` says why.

The text used is stored in ``text_en`` and where it came from in ``en_source``
(``own`` / ``run`` / ``prompts:<name>``).

**Caveat for the report.** OpenAI's CLIP text tower was trained on English captions with an
English-centric BPE: for a non-English prompt ``clip_cos_own`` mostly measures how well that
encoder covers the language (scripts such as Devanagari or Hangul break into byte tokens and
often exceed CLIP's 77-token context, recorded in ``own_truncated``), not how well the image
follows the prompt. Compare ``clip_cos_own`` across formulations WITHIN a language, and use
``clip_cos_en`` (same English reference for every language) to compare languages.

**Resumable.** Rows are unique per (key, prompt_id, clip_model, clip_revision); a rerun with
the same model identity skips the rows already scored (``clip_cos_own`` not null) and retries
failed ones. ``alignment.parquet`` is rewritten atomically every ``flush_every`` batches and
when the pass ends, however it ends, so a kill loses at most the batches since the last write.
An image that cannot be read is a row with null cosines and the reason in ``detail``, never an
exception. Text embeddings are computed once per unique text per pass.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from magbig.classifiers.base import ImageRefusedError, read_image
from magbig.prompts import load_prompts
from magbig.rundata import open_run, read_units
from neobabel.devices import torch_device
from neobabel.errors import InputError
from neobabel.progress import progress_bar
from neobabel.registry import folder_fingerprint
from neobabel.runs import PathOutsideRunError, atomic_write_parquet, locked, resolve_in_run
from neobabel.scorers.clip import CLIP_DEFAULT_MODEL, ClipEncoder, load_clip_model, resolve_clip_model
from neobabel.weights import weights_record

__all__ = [
    "ALIGNMENT_COLUMNS",
    "ALIGNMENT_FILE",
    "SCALE_NOTE",
    "TEXT_TOWER_CAVEAT",
    "alignment_for_report",
    "compute_alignment",
    "english_texts",
    "read_alignment",
    "summarize_alignment",
]

log = logging.getLogger(__name__)

ALIGNMENT_FILE = "alignment.parquet"

#: alignment.parquet: one row per (key, prompt_id, clip_model, clip_revision).
ALIGNMENT_COLUMNS: dict[str, pl.DataType] = {
    "key": pl.String, "prompt_id": pl.String, "subject": pl.String, "lang": pl.String,
    "formulation": pl.String, "text": pl.String, "text_en": pl.String, "en_source": pl.String,
    "clip_model": pl.String, "clip_revision": pl.String,
    "clip_cos_en": pl.Float64, "clip_cos_own": pl.Float64,
    "own_truncated": pl.Boolean, "en_truncated": pl.Boolean, "detail": pl.String,
}

SCALE_NOTE = ("raw CLIP cosine similarity of L2-normalized image and text embeddings, in [-1, 1]; "
              "not x100, not logit-scaled, not clipped at 0 (not CLIPScore)")
TEXT_TOWER_CAVEAT = ("OpenAI CLIP's text tower is English-centric: for non-English prompts "
                     "clip_cos_own mostly measures the encoder's coverage of the language; compare "
                     "it across formulations within a language, and languages with clip_cos_en")
ENGLISH_RULE = ("English prompts: their own text; others: the English prompt of the same subject "
                "and formulation, else the English direct prompt (run manifest first, then the "
                "prompt set)")

_FORM_ORDER = ("direct", "indirect", "feminine", "gender_star")


# --------------------------------------------------------------------------------------------
# English texts


def _subject_of(row: dict) -> str | None:
    if row.get("subject"):
        return str(row["subject"])
    pid = str(row.get("prompt_id") or "")
    parts = pid.split("/")
    return parts[0] if len(parts) == 3 and parts[0] else None


def english_texts(rows: Sequence[dict], prompts=None) -> list[tuple[str | None, str | None]]:
    """``(text_en, en_source)`` for each manifest row (module docstring, "The English text").

    ``rows``: dicts with prompt_id, subject, lang, formulation, text (all of ``rows`` are also
    the "run manifest" searched first). ``prompts``: a PromptSet, a source for
    :func:`magbig.prompts.load_prompts` (loaded only when the manifest lacks a needed English
    prompt), or None to use the manifest only.
    """
    run_en: dict[tuple[str, str], str] = {}
    for r in rows:
        if r.get("lang") == "en" and r.get("text") is not None:
            subj = _subject_of(r)
            if subj is not None:
                run_en.setdefault((subj, str(r.get("formulation") or "direct")), str(r["text"]))
    ps = None
    loaded = False
    out: list[tuple[str | None, str | None]] = []
    for r in rows:
        if r.get("lang") == "en":
            out.append((r.get("text"), "own"))
            continue
        subj = _subject_of(r)
        if subj is None:
            out.append((None, None))
            continue
        forms = list(dict.fromkeys([str(r.get("formulation") or "direct"), "direct"]))
        hit = next(((run_en[(subj, f)], "run") for f in forms if (subj, f) in run_en), None)
        if hit is None and prompts is not None:
            if not loaded:
                ps, loaded = load_prompts(prompts), True
            for f in forms:
                p = ps.get(f"{subj}/en/{f}")
                if p is not None:
                    hit = (p.text, f"prompts:{ps.name}")
                    break
        out.append(hit or (None, None))
    return out


# --------------------------------------------------------------------------------------------
# reading and writing alignment.parquet


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=ALIGNMENT_COLUMNS)


def read_alignment(run_dir: str | os.PathLike) -> pl.DataFrame:
    """All rows of a run's ``alignment.parquet`` (every CLIP model); empty when absent."""
    path = Path(run_dir) / ALIGNMENT_FILE
    if not path.is_file():
        return _empty()
    try:
        df = pl.read_parquet(path)
    except Exception as e:
        raise InputError(f"{path} is unreadable ({type(e).__name__}); delete it and rerun "
                         f"`magbig align {run_dir}` to score the images again") from None
    missing = [c for c in ALIGNMENT_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path} lacks columns {', '.join(missing)}; it was not written by "
                         f"`magbig align`: move it away and rerun `magbig align {run_dir}`")
    return df.select(list(ALIGNMENT_COLUMNS)).cast(ALIGNMENT_COLUMNS)


def _model_identity(model_ref: str, folder: Path) -> tuple[str, str]:
    """``(clip_model, clip_revision)``: the hub id and its snapshot commit, or the absolute
    folder and a content fingerprint of it (so changed weights are rescored)."""
    local = Path(os.path.expanduser(model_ref))
    if local.is_dir():
        return str(local.resolve()), folder_fingerprint(folder)
    rev = folder.name if "snapshots" in folder.parts else folder_fingerprint(folder)
    return model_ref, rev


# --------------------------------------------------------------------------------------------
# scoring


class _Scorer:
    """One CLIP model; normalized text embeddings and token counts cached per unique text."""

    def __init__(self, clip: ClipEncoder):
        self.clip = clip
        self.max_tokens = clip.max_tokens
        self._text: dict[str, Any] = {}
        self._tokens: dict[str, int] = {}

    def encode_texts(self, texts: Iterable[str], batch_size: int) -> None:
        todo = [t for t in dict.fromkeys(texts) if t is not None and t not in self._text]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            counts = self.clip.token_counts(chunk)
            for t, n, f in zip(chunk, counts, self.clip.encode_texts(chunk)):
                self._text[t] = f
                self._tokens[t] = n

    def truncated(self, text: str | None) -> bool | None:
        return None if text is None else self._tokens[text] > self.max_tokens

    def text(self, text: str):
        return self._text[text]

    def encode_images(self, images: list) -> Any:
        return self.clip.encode_images(images)


def _read_run_image(run_dir: Path, rel_path: str | None):
    """A manifest row's image, only from inside the run directory and only if not too large
    (ImageRefusedError / PathOutsideRunError otherwise: never opened, never decoded)."""
    path = resolve_in_run(run_dir, rel_path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} is missing")
    return read_image(path)


def _cos(a, b) -> float | None:
    v = float((a * b).sum())
    return None if v != v else max(-1.0, min(1.0, v))


def compute_alignment(run_dir: str | os.PathLike, model: str | os.PathLike | None = None,
                      revision: str | None = None, batch_size: int = 16,
                      prompts_source: Any = "builtin", *, device: str | None = "auto",
                      overwrite: bool = False, progress: bool = False,
                      flush_every: int = 64, allow_pickle: bool = False) -> pl.DataFrame:
    """Score every image of a run against its English text and its own text (module docstring).

    ``model``: a local CLIP folder or a hub id present in the local Hugging Face cache (default
    ``openai/clip-vit-large-patch14`` at its pinned revision); nothing is downloaded, a missing
    model is an InputError naming it. ``revision``: commit of a hub id. ``batch_size``: images
    (and texts) per forward pass. ``prompts_source``: where English texts missing from the run
    come from (``load_prompts`` source or a PromptSet; None: the run only). ``overwrite``:
    rescore rows already scored with this model. ``allow_pickle``: load a CLIP folder whose
    weights are a pickled ``pytorch_model.bin`` (default: safetensors only; neobabel.weights).
    Image paths are confined to the run directory and images over
    :data:`magbig.classifiers.base.MAX_IMAGE_PIXELS` are refused: such rows get the reason in ``detail``.

    Returns this model's rows (``ALIGNMENT_COLUMNS``) for every manifest row, in manifest
    order. ``clip_cos_en`` / ``clip_cos_own`` are raw cosines in [-1, 1] (:data:`SCALE_NOTE`).
    Writes ``alignment.parquet`` (rows of other CLIP models are kept) and records the model,
    the scale, the English-text rule and the text-tower caveat under ``alignment`` in
    ``run.json``.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(flush_every, int) or flush_every < 1:
        raise InputError(f"flush_every must be a positive integer, got {flush_every!r}")
    run = open_run(run_dir)
    model_ref = os.fspath(model) if model is not None else CLIP_DEFAULT_MODEL
    folder = resolve_clip_model(model_ref, revision)
    clip_model, clip_revision = _model_identity(model_ref, folder)
    dev = torch_device(device)

    # One writer at a time: alignment.parquet and run.json are rewritten from what is read here.
    with locked(run):
        manifest = run.load_manifest()
        rows = list(manifest.select("key", "prompt_id", "subject", "lang", "formulation", "text", "path")
                    .iter_rows(named=True))
        path = run.path / ALIGNMENT_FILE
        existing = read_alignment(run.path)
        mine = (pl.col("clip_model") == clip_model) & (pl.col("clip_revision") == clip_revision)
        done: set[tuple[str, str]] = set()
        if not overwrite:
            done = {(k, p) for k, p in existing.filter(mine & pl.col("clip_cos_own").is_not_null())
                    .select("key", "prompt_id").iter_rows()}
        todo = [r for r in rows if (r["key"], r["prompt_id"]) not in done]
        # Rows kept as they are: other models' rows, and this model's rows not being redone.
        todo_frame = pl.DataFrame([(r["key"], r["prompt_id"]) for r in todo],
                                  schema={"key": pl.String, "prompt_id": pl.String}, orient="row")
        kept = pl.concat([existing.filter(~mine),
                          existing.filter(mine).join(todo_frame, on=["key", "prompt_id"], how="anti")])

        new_rows: list[dict] = []

        def flush() -> None:
            if not new_rows and kept.height == existing.height:
                return  # nothing changed
            new = pl.DataFrame(new_rows, schema=ALIGNMENT_COLUMNS)
            df = pl.concat([kept, new], how="vertical").unique(
                subset=["key", "prompt_id", "clip_model", "clip_revision"], keep="last", maintain_order=True)
            atomic_write_parquet(df.sort("clip_model", "clip_revision", "key", "prompt_id"), path)

        if todo:
            en = english_texts(rows, prompts_source)
            en_of = {(r["key"], r["prompt_id"]): e for r, e in zip(rows, en)}
            net, processor = load_clip_model(folder, dev, allow_pickle)
            scorer = _Scorer(ClipEncoder(net, processor, dev))
            by_key: dict[str, list[dict]] = {}
            for r in todo:
                by_key.setdefault(r["key"], []).append(r)
            keys = list(by_key)
            batches = 0
            try:
                with progress_bar("CLIP alignment", len(keys), enabled=progress, unit="img") as advance:
                    for start in range(0, len(keys), batch_size):
                        chunk = keys[start:start + batch_size]
                        members = [r for k in chunk for r in by_key[k]]
                        scorer.encode_texts([t for r in members for t in
                                             (r["text"], en_of[(r["key"], r["prompt_id"])][0])], batch_size)
                        images, good, errors = [], [], {}
                        for k in chunk:
                            try:
                                images.append(_read_run_image(run.path, by_key[k][0]["path"]))
                                good.append(k)
                            except (PathOutsideRunError, ImageRefusedError) as exc:
                                errors[k] = f"image refused: {exc}"
                            except Exception as exc:
                                errors[k] = f"image unreadable: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                        feats = dict(zip(good, scorer.encode_images(images))) if images else {}
                        for r in members:
                            text_en, source = en_of[(r["key"], r["prompt_id"])]
                            f = feats.get(r["key"])
                            detail = errors.get(r["key"])
                            if r["text"] is None and detail is None:
                                detail = "no prompt text in generations.parquet"
                            if text_en is None and detail is None:
                                detail = (f"no English text for subject {_subject_of(r)!r}" if _subject_of(r)
                                          else "no subject: English text unknown")
                            own = _cos(f, scorer.text(r["text"])) if f is not None and r["text"] is not None else None
                            cen = _cos(f, scorer.text(text_en)) if f is not None and text_en is not None else None
                            new_rows.append({
                                "key": r["key"], "prompt_id": r["prompt_id"], "subject": r["subject"],
                                "lang": r["lang"], "formulation": r["formulation"], "text": r["text"],
                                "text_en": text_en, "en_source": source, "clip_model": clip_model,
                                "clip_revision": clip_revision, "clip_cos_en": cen, "clip_cos_own": own,
                                "own_truncated": scorer.truncated(r["text"]),
                                "en_truncated": scorer.truncated(text_en), "detail": detail,
                            })
                        advance(len(chunk))
                        batches += 1
                        if batches % flush_every == 0:
                            flush()
            finally:
                flush()

        result = read_alignment(run.path).filter(mine)
        order = pl.DataFrame([(r["key"], r["prompt_id"]) for r in rows],
                             schema={"key": pl.String, "prompt_id": pl.String}, orient="row").with_row_index("_i")
        result = order.join(result, on=["key", "prompt_id"], how="inner").sort("_i").select(list(ALIGNMENT_COLUMNS))
        info = run.read_run_json()
        info["alignment"] = {
            "file": ALIGNMENT_FILE, "clip_model": clip_model, "clip_revision": clip_revision,
            "scale": SCALE_NOTE, "english_text": ENGLISH_RULE, "caveat": TEXT_TOWER_CAVEAT,
            "prompts_source": None if prompts_source is None else str(getattr(prompts_source, "name", prompts_source)),
            "rows": result.height, "scored": int(result["clip_cos_own"].is_not_null().sum()),
            "without_english_text": int(result["text_en"].is_null().sum()),
            "unreadable_images": int((result["clip_cos_own"].is_null() & result["detail"].str.starts_with("image unreadable")
                                      .fill_null(False)).sum()),
            "refused_images": int((result["clip_cos_own"].is_null() & result["detail"].str.starts_with("image refused")
                                   .fill_null(False)).sum()),
            "weights": weights_record(allow_pickle, [folder]),
        }
        run.write_run_json(info)
        return result


# --------------------------------------------------------------------------------------------
# summaries and the report


def _lang_rank(lang: str | None) -> tuple:
    return (lang != "en", lang or "")


def summarize_alignment(df: pl.DataFrame) -> pl.DataFrame:
    """Per (lang, formulation): n_images, n_en / mean_cos_en, n_own / mean_cos_own (raw
    cosines, :data:`SCALE_NOTE`), n_failed (rows without any cosine); English first, then
    formulations in MAGBIG order."""
    g = df.group_by("lang", "formulation").agg(
        pl.len().cast(pl.Int64).alias("n_images"),
        pl.col("clip_cos_en").is_not_null().sum().cast(pl.Int64).alias("n_en"),
        pl.col("clip_cos_en").mean().alias("mean_cos_en"),
        pl.col("clip_cos_own").is_not_null().sum().cast(pl.Int64).alias("n_own"),
        pl.col("clip_cos_own").mean().alias("mean_cos_own"),
        (pl.col("clip_cos_own").is_null() & pl.col("clip_cos_en").is_null()).sum().cast(pl.Int64)
        .alias("n_failed"),
    )
    rows = sorted(g.iter_rows(named=True), key=lambda r: (
        *_lang_rank(r["lang"]),
        _FORM_ORDER.index(r["formulation"]) if r["formulation"] in _FORM_ORDER else len(_FORM_ORDER),
        r["formulation"] or ""))
    return pl.DataFrame(rows, schema=g.schema)


def alignment_for_report(run_dir: str | os.PathLike) -> pl.DataFrame | None:
    """The alignment frame :func:`magbig.report.build_report` takes, or None without
    ``alignment.parquet``: one CLIP model's rows (the one ``run.json`` names, i.e. the last
    ``magbig align``; else the model with most rows), restricted to the images in the audit
    (``units.parquet`` ``in_audit``) with their subject/lang/formulation as the audit
    frame has them, rows without any cosine dropped. An unreadable file is a logged warning
    (the report is built without the section), not an error."""
    run = open_run(run_dir)
    try:
        df = read_alignment(run.path)
    except InputError as e:  # the bias report does not depend on it: say so and go on
        log.warning("report without the alignment section: %s", e)
        return None
    if df.height == 0:
        return None
    info = (run.read_run_json().get("alignment") or {})
    ident = (info.get("clip_model"), info.get("clip_revision"))
    idents = df.group_by("clip_model", "clip_revision").len().sort("len", descending=True)
    present = {(a, b) for a, b, _ in idents.iter_rows()}
    if ident not in present:
        ident = tuple(idents.row(0)[:2])
    df = df.filter((pl.col("clip_model") == ident[0]) & (pl.col("clip_revision") == ident[1]))
    df = df.filter(pl.col("clip_cos_own").is_not_null() | pl.col("clip_cos_en").is_not_null())
    units = read_units(run).filter(pl.col("in_audit")).select(
        "key", "prompt_id", "subject", "lang", "formulation").unique(subset=["key", "prompt_id"])
    out = units.join(df.select("key", "prompt_id", "clip_model", "clip_cos_en", "clip_cos_own"),
                     on=["key", "prompt_id"], how="inner")
    return out if out.height else None
