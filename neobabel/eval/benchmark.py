"""m-GenEval end to end: prompts (built-in sets, a metadata file, the world), images (generated
into a run directory, or GenEval's folder layout), backends, scores.parquet + summary.json +
geneval.html / geneval.md. The CLI (`neobabel eval geneval`) is a thin layer over this.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from neobabel.errors import InputError
from neobabel.eval import geneval as ge
from neobabel.eval.i18n import GENEVAL_COLORS, geneval_classes, geneval_specs
from neobabel.eval.report import write_reports
from neobabel.eval.scoring import ImageJob, ScoringReport, score_images
from neobabel.eval.tasks import (
    builtin_metadata, by_lang, lexicon_problems, load_metadata, parse_metadata, require_aligned, spec_key,
)
from neobabel.progress import progress_bar
from neobabel.runs import RunDir, WorkUnit, atomic_write_json, atomic_write_parquet, generate_into_run, resolve_in_run

VOCABS = ("coco", "world")
DETECTORS = ("mask2former", "owlv2", "world")


@dataclass(frozen=True)
class GenEvalPrompt:
    prompt_id: str  # the same id in every language for the same spec (pairing by spec)
    lang: str
    spec: dict
    text: str


def vocab_classes(vocab: str) -> tuple[str, ...]:
    if vocab == "world":
        from neobabel.eval.world import WORLD_CLASSES

        return WORLD_CLASSES
    return geneval_classes()


def coco_prompts(langs: Sequence[str], metadata: Path | None = None, repair: bool = False
                 ) -> tuple[list[GenEvalPrompt], dict]:
    """GenEval prompts for each language: the built-in set, or those of ``metadata`` (one
    language per file or a ``lang`` field per line), paired with GenEval's specs by spec.
    Returns the prompts and, per language, the alignment and lexicon-check findings."""
    index = {spec_key(s): i for i, s in enumerate(geneval_specs())}
    if metadata is not None:
        lines_by_lang = by_lang(load_metadata(metadata, lang=langs[0] if len(langs) == 1 else None))
        absent = [lg for lg in langs if lg not in lines_by_lang]
        if absent:
            raise InputError(f"{metadata} has no lines for {', '.join(absent)}; it has "
                             f"{', '.join(sorted(lines_by_lang))}")
    else:
        lines_by_lang = {lg: builtin_metadata(lg) for lg in langs}
    prompts, checks = [], {}
    for lang in langs:
        lines, report = require_aligned(lines_by_lang[lang], repair=repair)
        problems = lexicon_problems(lines, lang)
        checks[lang] = {"alignment": report.message(), "aligned": report.aligned,
                        "lexicon_problems": len(problems), "lexicon_examples": problems[:3]}
        prompts += [GenEvalPrompt(f"geneval/{index[ln.key]:05d}", lang, ln.spec, ln.prompt) for ln in lines]
    return prompts, checks


def world_prompts(langs: Sequence[str], per_task: int, seed: int = 1234) -> list[GenEvalPrompt]:
    from neobabel.eval.world import world_geneval_suite

    return [GenEvalPrompt(pid.rsplit("/", 1)[0], ln.lang, ln.spec, ln.prompt)
            for pid, ln in world_geneval_suite(per_task, list(langs), seed)]


def generate_jobs(pipeline, prompts: Sequence[GenEvalPrompt], out: str | Path, *, n: int, seed: int = 0,
                  batch_size: int = 8, progress: bool = True, spec: dict | None = None,
                  runner_for: Callable | None = None) -> tuple[list[ImageJob], Any]:
    """Generate ``n`` images per prompt into the run directory (resumable), then one job per
    wanted image (an image the manifest lacks is a job with no path: a counted failure).
    ``runner_for(params, run_dir)``: an engine's runner (Ray actors) for the pending batches."""
    units = [WorkUnit(p.prompt_id, p.text, p.lang, seed + i, subject=p.spec["tag"]) for p in prompts for i in range(n)]
    run = RunDir(out)
    params = pipeline.resolve_params()
    runner = runner_for(params, run.path) if runner_for is not None else None
    try:
        report = generate_into_run(pipeline, units, run, params, batch_size=batch_size, progress=progress,
                                   spec={"command": "eval geneval", **(spec or {})}, runner=runner)
    finally:
        if runner is not None:
            runner.shutdown()
    manifest = run.load_manifest()
    made = {(r["prompt_id"], r["lang"], r["text"], r["seed"]): r for r in manifest.iter_rows(named=True)}
    jobs = []
    for p in prompts:
        for i in range(n):
            r = made.get((p.prompt_id, p.lang, p.text, seed + i))
            path = resolve_in_run(run.path, r["path"]) if r is not None else None
            key = r["key"] if r is not None else f"missing:{p.lang}:{p.prompt_id}:{seed + i}"
            jobs.append(ImageJob(key, p.lang, p.prompt_id, seed + i, path, p.spec))
    return jobs, report


_SAMPLE = re.compile(r"(\d+)\.png")


def read_geneval_folder(images: str | Path, *, lang: str = "en", n: int | None = None,
                        vocab: str = "coco") -> list[ImageJob]:
    """Jobs for GenEval's layout: ``<images>/<00000>/metadata.jsonl`` (one metadata object)
    and ``samples/<0000>.png``. Every PNG there is scored; with ``n``, samples 0..n-1 that are
    absent are counted as missing; a prompt folder without samples counts ``n`` (or 1) missing."""
    root = Path(images)
    if not root.is_dir():
        raise InputError(f"--images {root} is not a folder; give GenEval's layout <00000>/metadata.jsonl + samples/")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not folders:
        raise InputError(f"--images {root} has no numbered prompt folders (<00000>/metadata.jsonl + samples/0000.png)")
    classes = vocab_classes(vocab)
    jobs = []
    for folder in folders:
        meta = folder / "metadata.jsonl"
        if not meta.is_file():
            raise InputError(f"{meta} is missing; each prompt folder needs GenEval's metadata.jsonl")
        try:
            text = meta.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {meta} ({exc}); give a UTF-8 JSON object") from None
        try:  # GenEval writes one object with json.dump (one line); a pretty-printed one is fine too
            text = json.dumps(json.loads(text), ensure_ascii=False)
        except ValueError:
            pass  # parse_metadata names the bad line
        line = parse_metadata(text, str(meta), lang, classes)[0]
        samples = folder / "samples"
        present = {int(m.group(1)): samples / f.name for f in (sorted(samples.iterdir()) if samples.is_dir() else [])
                   if f.is_file() and (m := _SAMPLE.fullmatch(f.name))}
        wanted = sorted(set(present) | set(range(n or (0 if present else 1))))
        for i in wanted:
            jobs.append(ImageJob(f"{folder.name}/{i:04d}", line.lang, folder.name, i, present.get(i), line.spec))
    return jobs


@dataclass
class Scorer:
    detector: Any
    color_classifier: Callable | None
    labels: tuple[str, ...]

    def backend(self) -> dict:
        d = self.detector
        colour = getattr(self.color_classifier, "name", None) or (
            "exact (world detector)" if self.color_classifier is not None else "none")
        return {"detector": d.name, "reference": bool(d.reference), "note": d.note, "color": colour}


def load_scorer(detector: str, vocab: str, *, detector_model: str | None = None, detector_revision: str | None = None,
                clip_model: str | None = None, device: str = "cpu", allow_pickle: bool = False) -> Scorer:
    """The detection backend and colour classifier (models load here: a missing one is an
    InputError before any image is made)."""
    labels = vocab_classes(vocab)
    if detector == "world":
        if vocab != "world":
            raise InputError("--detector world reads world images only; use --vocab world (or another detector)")
        from neobabel.eval.world import WorldDetector, world_colors

        return Scorer(WorldDetector(), world_colors, labels)
    from neobabel.scorers.detector import ClipColorClassifier, Mask2FormerDetector, Owlv2Detector

    if detector == "mask2former":
        from neobabel.scorers.detector import MASK2FORMER_DEFAULT_MODEL

        # COCO: GenEval's class names by the detector's class index (object_names.txt)
        det = Mask2FormerDetector.load(detector_model or MASK2FORMER_DEFAULT_MODEL, detector_revision, device=device,
                                       class_names=labels if vocab == "coco" else None, allow_pickle=allow_pickle)
    elif detector == "owlv2":
        from neobabel.scorers.detector import OWLV2_DEFAULT_MODEL

        det = Owlv2Detector.load(detector_model or OWLV2_DEFAULT_MODEL, detector_revision, device=device,
                                 allow_pickle=allow_pickle)
    else:
        raise InputError(f"unknown detector {detector!r}; use one of {', '.join(DETECTORS)}")
    colour = ClipColorClassifier.load(clip_model, device=device, colors=GENEVAL_COLORS, allow_pickle=allow_pickle)
    return Scorer(det, colour, labels)


def _score_chunk(scorer: Scorer, job: tuple) -> ScoringReport:
    """One chunk of jobs scored in a Ray actor (``scorer``: the actor's own, loaded once)."""
    jobs, options, batch_size = job
    return score_images(jobs, scorer.detector, scorer.color_classifier, options, batch_size=batch_size,
                        labels=scorer.labels)


def score_on_pool(pool, jobs: Sequence[ImageJob], options: ge.GenEvalOptions, batch_size: int,
                  progress: bool = True) -> ScoringReport:
    """score_images on a :class:`neobabel.engines.RayPool` of scorers: chunks of whole batches,
    rows put back in job order, so scores.parquet is the one this process would write."""
    start = time.perf_counter()
    step = max(1, batch_size) * 4
    chunks = [list(jobs[i:i + step]) for i in range(0, len(jobs), step)]
    done: dict[int, ScoringReport] = {}
    with progress_bar("scoring", len(jobs), enabled=progress) as advance:
        for i, part in pool.imap_unordered(_score_chunk, [(c, options, batch_size) for c in chunks]):
            done[i] = part
            advance(len(chunks[i]))
    rows = [row for i in range(len(chunks)) for row in done[i].rows]
    return ScoringReport(rows, len(jobs), sum(r.failed for r in done.values()), time.perf_counter() - start)


def score_run(jobs: Sequence[ImageJob], scorer: Scorer, out: str | Path, *, options: ge.GenEvalOptions,
              meta: dict, batch_size: int = 8, progress: bool = True, title: str = "",
              pool=None) -> tuple[dict, ScoringReport]:
    """Score the jobs; write scores.parquet, summary.json, geneval.html and geneval.md in ``out``.
    ``pool``: Ray actors each holding a scorer (:func:`score_on_pool`) instead of ``scorer``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if pool is not None:
        report = score_on_pool(pool, list(jobs), options, batch_size, progress)
    else:
        report = score_images(list(jobs), scorer.detector, scorer.color_classifier, options, batch_size=batch_size,
                              labels=scorer.labels, progress=progress)
    scores = ge.scores_frame(report.rows)
    summary = ge.summarize(scores)
    summary.update(backend=scorer.backend(), options=options.to_dict(), **meta)
    summary["scoring"] = {"images": report.images, "failed": report.failed, "seconds": round(report.seconds, 3),
                          "images_per_second": round(report.images_per_second, 2), "batch_size": batch_size}
    atomic_write_parquet(scores, out / "scores.parquet")
    atomic_write_json(out / "summary.json", summary)
    write_reports(out, summary, title or str(out))
    return summary, report


__all__ = [
    "VOCABS", "DETECTORS", "GenEvalPrompt", "Scorer", "vocab_classes", "coco_prompts", "world_prompts",
    "generate_jobs", "read_geneval_folder", "load_scorer", "score_on_pool", "score_run",
]
