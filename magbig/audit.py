"""Audits: n images per prompt -> run directory -> perceived-gender labels -> report.

``run_audit(spec, out)`` is one resumable command over one run directory (design.md, "Run
directory contract"):

1. select prompts (built-in set, an official MAGBIG folder or the Hub) by set, languages,
   formulations and subjects (``subjects: world`` = the 12 occupations of the Babel world);
2. one work unit per (prompt, image slot i), seed ``seed + i`` plus the prompt's subject offset
   (:func:`magbig.auditspec.image_seed`; ``seeds: shared`` drops the offset); images are generated through
   :func:`neobabel.runs.generate_into_run` (content keys, atomic writes, skips keys done);
3. every image not yet labelled by a classifier (same name and same configuration) is
   classified and its rows are appended to ``labels.parquet`` — one row per (key,
   classifier), never duplicated — after every classifier batch (see :class:`magbig.rundata.LabelStore`);
4. face policy ``keep`` (default): every image is in the audit with its face status.
   ``reject`` is MAGBIG's rejection sampling: slot i of a prompt tries seeds
   ``seed + i``, ``seed + i + n``, ``seed + i + 2n``, … (plus the subject offset) until the
   FIRST classifier sees exactly one face (status ``ok`` or ``uncertain`` with ``faces == 1``),
   at most ``max_tries`` times. Every failed try is logged in ``rejections.parquet``. The
   statistics use, per slot, the
   accepted image; when all ``max_tries`` tries failed, the last one stays in the audit (it
   counts in the face-filter denominators as ``no_face`` / ``multiple_faces``, never in
   p̂_female) and its rejection row has ``cap_reached = true``;
5. ``summary.json``, ``report.html`` and ``report.md`` from :mod:`magbig.report` on the
   first classifier's labels; ``run.json`` records the audit spec, the prompt set and every
   classifier's ``config()``.

Which images are "in the audit" is recorded in ``units.parquet`` (one row per prompt slot and
try: prompt_id, subject, lang, formulation, text, slot, attempt, seed, key, in_audit);
``labels.parquet`` holds every labelled image, rejected tries included, so the statistics
always join ``units`` (``in_audit``) with ``labels`` (one classifier): :func:`magbig.rundata.audit_frame`.
Two prompts with the same text and language (e.g. a language whose direct form is already
feminine) share their images: same text, language and seed give the same pixels.

Execution (:class:`Execution`): ``engine="ray"`` makes the images on a pool of Ray actors
(:class:`neobabel.engines.RayRunner`) and labels them on another (:class:`neobabel.engines.RayPool`,
one loaded classifier per actor; the driver alone writes the tables); ``shard=(i, n)`` keeps
only the prompt slots whose first try's content key falls in shard i, for job arrays, and
``magbig merge`` (:mod:`magbig.merge`) joins the shards' run directories into the run one
process would have made.

A kill at any point loses at most the batch in flight; rerunning the same command resumes.
One run directory holds one audit: resuming it with another model, params or prompt selection
(:func:`magbig.auditspec.audit_selection`) is refused before anything is written, so its tables
never mix rows of two audits. The audit, ``magbig classify`` and ``magbig report`` hold the
directory's lock (:func:`neobabel.runs.locked`) while they write.

This module runs audits. Its neighbours hold the rest, and it re-exports their public names:
:mod:`magbig.auditspec` (the spec, seeds), :mod:`magbig.rundata` (the run's tables),
:mod:`magbig.planted` (recovery of planted shares), :mod:`magbig.compare` (two runs).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from magbig.alignment import alignment_for_report
# Re-exported (noqa: F401): magbig.audit is where the CLI, tests and benchmarks find an audit's names.
from magbig.auditspec import (  # noqa: F401
    SUBJECT_SEED_STRIDE, AuditSpec, ClassifierSpec, audit_selection, check_seed_scheme, image_seed,
    load_audit_config, make_spec, normalize_spec,
)
from magbig.classify import get_classifier
from magbig.compare import compare  # noqa: F401
from magbig.planted import (  # noqa: F401
    compare_to_planted, expected_abs_error, planted_fit_test, planted_recovery, within_tolerance_probability,
)
from magbig.prompts import load_prompts
from magbig.rundata import (  # noqa: F401
    LABELS_COLUMNS, LabelStore, audit_frame, classifier_names, config_id, labels_frame, open_run, read_units,
    write_rejections, write_units,
)
from magbig.selftest import OraclePipeline
from magbig.vocab import FACE_OK_STATUSES
from neobabel.builtins import UNTRAINED_NOTICE
from neobabel.errors import InputError
from neobabel.preflight import warn_truncated
from neobabel.progress import progress_bar
from neobabel.runs import (
    RunDir, WorkUnit, check_run_spec, generate_into_run, generation_spec, image_key, key_params, locked,
)
from neobabel.shards import in_shard
from neobabel.world.spec import OCCUPATIONS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Execution:
    """Where an audit's work runs: ``local`` (this process) or ``ray`` (actors), and which shard.

    ``address``/``workers`` are Ray's (None: a local Ray with one actor per CPU or GPU);
    ``shard`` = (i, n) keeps the slots of shard i of n (:func:`neobabel.shards.in_shard`).
    """

    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    shard: tuple[int, int] | None = None

    def __post_init__(self):
        if self.engine not in ("local", "ray"):
            raise InputError(f"--engine {self.engine!r} is not an engine; use local or ray")
        if self.engine != "ray" and (self.address is not None or self.workers is not None):
            raise InputError("--address and --workers are for --engine ray; add --engine ray or drop them")

    def record(self) -> dict:
        out: dict = {"engine": self.engine}
        if self.shard is not None:
            out["shard"] = {"index": self.shard[0], "count": self.shard[1]}
        return out


LOCAL = Execution()

__all__ = [
    "SUBJECT_SEED_STRIDE",
    "AuditSpec",
    "ClassifierSpec",
    "LABELS_COLUMNS",
    "LabelStore",
    "audit_frame",
    "classifier_names",
    "compare",
    "compare_to_planted",
    "expected_abs_error",
    "Execution",
    "image_seed",
    "label_images",
    "load_audit_config",
    "load_pipeline",
    "make_spec",
    "planted_fit_test",
    "planted_recovery",
    "relabel",
    "report",
    "run_audit",
    "select_prompts",
    "within_tolerance_probability",
]


# --------------------------------------------------------------------------------------------
# prompts and model


def select_prompts(spec: AuditSpec, prompts=None):
    """The spec's prompts from its source (or from ``prompts``, a PromptSet)."""
    ps = load_prompts(prompts if prompts is not None else spec.prompts)
    subjects = None if spec.subjects == "all" else list(OCCUPATIONS) if spec.subjects == "world" else spec.subjects
    sel = ps.select(langs=None if spec.langs == "all" else spec.langs,
                    formulations=None if spec.formulations == "all" else spec.formulations,
                    subjects=subjects, set=spec.set)
    if len(sel) == 0:
        raise InputError(
            f"no prompts in {ps.name!r} match set={spec.set}, langs={spec.langs}, formulations="
            f"{spec.formulations}, subjects={spec.subjects}; list what exists with `magbig prompts`")
    return sel


def load_pipeline(spec: AuditSpec, prompts=None):
    """The spec's model: ``oracle`` or anything BabelPipeline.from_pretrained loads."""
    if spec.model == "oracle":
        pipe = OraclePipeline.from_bias_table()
        if prompts is not None:
            unknown = [p for p in prompts if not pipe.knows(p.text, p.lang)]
            if unknown:
                raise InputError(
                    f"model 'oracle' has no planted share for prompt {unknown[0].id!r} ({len(unknown)} "
                    "such); it renders only the world bias table's prompts: use subjects: world with "
                    "the built-in prompts")
        return pipe
    from neobabel.pipeline import BabelPipeline  # heavy: torch and diffusers, only when a model loads

    device = spec.device
    if device == "auto":
        import torch  # heavy: only to ask for a GPU

        device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = BabelPipeline.from_pretrained(spec.model, device=device, allow_pickle=spec.allow_pickle)
    pipe.set_batch_invariant(not spec.fast_batching)
    return pipe


# --------------------------------------------------------------------------------------------
# labelling


def _bar(enabled: bool, total: int, what: str):
    """The project's progress display (neobabel.progress): a bar on a terminal, lines in a log."""
    return progress_bar(what, total, enabled=enabled, unit="img")


def _classify_chunk(classifier, job: tuple[list[str], list[str], int, str]):
    """One classifier batch in a Ray actor (``classifier`` is the actor's own, loaded once)."""
    paths, keys, batch_size, run_dir = job
    return classifier.classify(paths, keys=keys, batch_size=batch_size, run_dir=run_dir)


def label_images(run: RunDir, store: LabelStore, classifier, rows: Sequence[dict], *,
                 overwrite: bool = False, progress: bool = False, pool=None) -> int:
    """Classify the manifest ``rows`` not yet labelled by ``classifier`` (same name and
    config); append each batch to ``store``; merge at the end. Returns how many were labelled.

    ``pool``: a :class:`neobabel.engines.RayPool` whose actors each hold this classifier; the
    batches run there and come back in any order, each appended here as it arrives."""
    cid = config_id(classifier)
    have = set() if overwrite else store.done_keys(classifier.name, cid)
    todo, seen = [], set()
    for r in rows:
        if r["key"] not in have and r["key"] not in seen:
            seen.add(r["key"])
            todo.append(r)
    if not todo:
        store.merge()  # label parts a killed pass left behind
        return 0
    bs = classifier.batch_size
    try:
        chunks = [todo[start:start + bs] for start in range(0, len(todo), bs)]
        # Paths are resolved inside the run directory; others become error rows, unopened.
        jobs = [([str(r["path"] or "") for r in c], [r["key"] for r in c], bs, str(run.path)) for c in chunks]
        with _bar(progress, len(todo), f"labelling ({classifier.name})") as advance:
            if pool is None:
                done = ((i, _classify_chunk(classifier, job)) for i, job in enumerate(jobs))
            else:
                done = pool.imap_unordered(_classify_chunk, jobs)
            for i, results in done:
                store.append(labels_frame(chunks[i], results, cid))
                advance(len(chunks[i]))
    finally:
        store.merge()
    return len(todo)


# --------------------------------------------------------------------------------------------
# running an audit


def _update_run_json(run: RunDir, **fields) -> dict:
    info = run.read_run_json()
    info.update(fields)
    run.write_run_json(info)
    return info


def _record_classifiers(info: dict, configs: Iterable[dict]) -> list[dict]:
    known = {c.get("name"): c for c in info.get("classifiers", []) if isinstance(c, dict)}
    for cfg in configs:
        known[cfg["name"]] = cfg
    return list(known.values())


def run_audit(spec: AuditSpec, out: str | os.PathLike, progress: bool = True, *, pipeline=None,
              prompts=None, report_files: bool = True, execution: Execution = LOCAL) -> Path:
    """Generate, classify and report (module docstring). Rerun to resume. Returns ``out``.

    ``pipeline`` (an object with BabelPipeline's interface, e.g. an OraclePipeline) replaces
    loading ``spec.model``; ``prompts`` (a PromptSet) replaces loading ``spec.prompts``.
    ``execution``: Ray actors and/or one shard (:class:`Execution`); a shard writes no report
    (it holds part of the audit: ``magbig merge`` the shards, then ``magbig report``).
    """
    spec = normalize_spec(spec)
    if execution.engine == "ray" and (pipeline is not None or spec.model == "oracle"):
        raise InputError("--engine ray needs a model its actors can load (a preset or a model folder); "
                         "the oracle runs in one process: drop --engine ray")
    run = RunDir(out)
    check_seed_scheme(run, spec)
    ps = select_prompts(spec, prompts)
    # Everything that can be wrong with the input fails here, before any image is made.
    classifiers = [c.build(spec.allow_pickle) for c in spec.classifiers]
    pipe = pipeline if pipeline is not None else load_pipeline(spec, ps)
    if pipeline is None and spec.model == "tiny-random":
        logger.warning(UNTRAINED_NOTICE)
    truncated = warn_truncated(pipe, [p.text for p in ps])
    w, h = spec.width_height()
    params = pipe.resolve_params(spec.steps, spec.guidance, w, h, spec.scheduler)
    param_dict = key_params(pipe, params)
    audit_spec = generation_spec(pipe, param_dict, "magbig audit", **audit_selection(spec, ps))
    check_run_spec(run, audit_spec)  # another audit here is refused before anything is written
    with locked(run):
        check_run_spec(run, audit_spec)
        return _run_locked(spec, run, ps, classifiers, pipe, params, param_dict, audit_spec, progress,
                           report_files and execution.shard is None, truncated,
                           _Engines(spec, execution, pipe, params, run))


class _Engines:
    """The Ray actors of one audit. Generation and labelling alternate (generate the slots,
    label them, retry the rejected ones), so each phase starts its actors and frees them when it
    ends: the pipeline's actors and a classifier's would otherwise wait on each other for the
    same CPUs or GPUs. A phase pays one model load per actor."""

    def __init__(self, spec: AuditSpec, execution: Execution, pipe, params, run: RunDir):
        self.spec, self.execution, self.pipe, self.params, self.run = spec, execution, pipe, params, run
        self.recorded: dict = {}

    @property
    def ray(self) -> bool:
        return self.execution.engine == "ray"

    @contextmanager
    def generation(self):
        """A RayRunner for generate_into_run (None: this process)."""
        if not self.ray:
            yield None
            return
        from neobabel.engines import RayRunner  # heavy: Ray, only for --engine ray

        runner = RayRunner(self.pipe, {"source": self.spec.model, "allow_pickle": self.spec.allow_pickle},
                           self.params, self.run.path, workers=self.execution.workers,
                           address=self.execution.address, batch_size=self.spec.batch_size)
        self.recorded = {"workers": runner.workers, "torch_threads": runner.threads}
        try:
            yield runner
        finally:
            runner.shutdown()

    @contextmanager
    def labelling(self, index: int):
        """A RayPool whose actors hold the audit's classifier number ``index`` (None: this process)."""
        if not self.ray:
            yield None
            return
        from neobabel.engines import RayPool  # heavy: Ray, only for --engine ray

        factory = functools.partial(self.spec.classifiers[index].build, self.spec.allow_pickle)
        pool = RayPool(factory, workers=self.execution.workers, address=self.execution.address)
        try:
            yield pool
        finally:
            pool.shutdown()

    def record(self) -> dict:
        return {**self.execution.record(), **self.recorded}


def _run_locked(spec: AuditSpec, run: RunDir, ps, classifiers, pipe, params, param_dict: dict,
                audit_spec: dict, progress: bool, report_files: bool, truncated: int = 0,
                engines: _Engines | None = None) -> Path:
    engines = engines or _Engines(spec, LOCAL, pipe, params, run)
    store = LabelStore(run.path)
    run_info = {**_run_info(spec, ps), "truncated_prompts": truncated, **engines.execution.record()}
    gen = _Generation(pipe, params, param_dict, run_info, audit_spec, spec.batch_size, progress, engines)
    try:
        unit_rows, rejections = _sample_slots(spec, run, ps, classifiers, store, gen)
        in_audit = [r for r in unit_rows if r["in_audit"]]
        by_key = _manifest_by_key(run)
        audit_rows = [by_key[k] for k in dict.fromkeys(r["key"] for r in in_audit)]
        for i, clf in enumerate(classifiers[1:], start=1):  # later classifiers label only the images in the audit
            with engines.labelling(i) as pool:
                label_images(run, store, clf, audit_rows, progress=progress, pool=pool)
    except KeyboardInterrupt:
        _update_run_json(run, audit_status="interrupted")
        raise
    except BaseException:
        _update_run_json(run, audit_status="failed")
        raise
    _update_run_json(run, audit_status="complete", **engines.record(),
                     audit_result=audit_result(spec, len(ps), unit_rows, rejections))
    if report_files:
        report(run.path, n_boot=spec.n_boot)
    return run.path


def audit_result(spec: AuditSpec, n_prompts: int, unit_rows: Sequence[dict], rejections: Sequence[dict]) -> dict:
    """run.json's audit_result, from the units and rejections tables (the same for a merged run)."""
    first_tries = [r for r in unit_rows if r["attempt"] == 0]
    return {"prompts": n_prompts, "slots": len(first_tries),
            "images_generated": len({r["key"] for r in unit_rows}),
            "images_in_audit": sum(1 for r in unit_rows if r["in_audit"]), "rejected_tries": len(rejections),
            "slots_cap_reached": sum(1 for r in rejections if r["cap_reached"]),
            "face_policy": spec.face_policy, "max_tries": _tries(spec)}


class _Generation:
    """How this audit generates images: the pipeline, its resolved params and what
    :func:`generate_into_run` records in run.json."""

    def __init__(self, pipe, params, param_dict: dict, run_info: dict, audit_spec: dict, batch_size: int,
                 progress: bool, engines: _Engines):
        self.pipe, self.params, self.param_dict = pipe, params, param_dict
        self.identity = pipe.identity()
        self.run_info, self.audit_spec = run_info, audit_spec
        self.batch_size, self.progress, self.engines = batch_size, progress, engines

    def generate(self, run: RunDir, units: list[WorkUnit]) -> list[dict]:
        """Generate the units not in the run yet; -> the manifest row of every unit, in order."""
        if getattr(self.pipe, "translator", None) is not None:
            # translate mode: an image's key follows the English text (cached in the run, so
            # generate_into_run finds the same translations without translating again)
            units = self.pipe.translate_units(units, run.path)
        keys = [image_key(self.identity, u, self.param_dict) for u in units]
        with self.engines.generation() as runner:
            generate_into_run(self.pipe, units, run, self.params, batch_size=self.batch_size, progress=self.progress,
                              spec={**self.run_info, **self.engines.recorded}, run_spec=self.audit_spec,
                              runner=runner)
        by_key = _manifest_by_key(run)
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise RuntimeError(f"image {missing[0]} is not in {run.manifest_path} after generation")
        return [by_key[k] for k in keys]


def _run_info(spec: AuditSpec, ps) -> dict:
    return {
        "command": "magbig audit",
        "audit": spec.model_dump(mode="json"),
        "prompt_set": {"name": ps.name, "version": ps.version, "source": ps.source, "count": len(ps),
                       "langs": ps.langs, "formulations": ps.formulations,
                       "subjects": len(ps.subjects)},
        "images_per_prompt": spec.n, "base_seed": spec.seed, "batch_size": spec.batch_size,
        "audit_status": "running",
    }


def _tries(spec: AuditSpec) -> int:
    return spec.max_tries if spec.face_policy == "reject" else 1


def _manifest_by_key(run: RunDir) -> dict[str, dict]:
    return {r["key"]: r for r in run.load_manifest().iter_rows(named=True)}


def _unit(spec: AuditSpec, p, slot: int, attempt: int) -> WorkUnit:
    return WorkUnit(p.id, p.text, p.lang, image_seed(p.subject, spec.seed, slot + attempt * spec.n, spec.seeds),
                    p.subject, p.formulation)


def _sample_slots(spec: AuditSpec, run: RunDir, ps, classifiers, store: LabelStore,
                  gen: _Generation) -> tuple[list[dict], list[dict]]:
    """Fill every (prompt, slot): generate, label with the first classifier, and under
    ``face_policy: reject`` retry the slots without exactly one face (module docstring, 4).
    units.parquet and rejections.parquet are rewritten after every try. -> (units, rejections)."""
    n, reject, tries = spec.n, spec.face_policy == "reject", _tries(spec)
    primary = classifiers[0]
    unit_rows: list[dict] = []
    rejections: list[dict] = []
    pending = [(p, i) for p in ps for i in range(n)]
    shard = gen.engines.execution.shard
    if shard is not None:  # a slot (all its tries) belongs to the shard of its first try's key
        pending = [(p, i) for p, i in pending
                   if in_shard(image_key(gen.identity, _unit(spec, p, i, 0), gen.param_dict), *shard)]
    for attempt in range(tries):
        if not pending:
            break
        units = [_unit(spec, p, i, attempt) for p, i in pending]
        rows = gen.generate(run, units)
        info = run.read_run_json()
        _update_run_json(run, classifiers=_record_classifiers(info, [c.config() for c in classifiers]))
        with gen.engines.labelling(0) as pool:
            label_images(run, store, primary, rows, progress=gen.progress, pool=pool)
        labels = {r["key"]: r for r in store.frame().filter(pl.col("classifier") == primary.name)
                  .iter_rows(named=True)}
        last = attempt == tries - 1
        still = []
        for (p, i), u, row in zip(pending, units, rows):
            label = labels[row["key"]]
            face_ok = label["faces"] == 1 and label["status"] in FACE_OK_STATUSES
            unit_rows.append({"prompt_id": p.id, "subject": p.subject, "lang": p.lang,
                              "formulation": p.formulation, "text": p.text, "slot": i,
                              "attempt": attempt, "seed": u.seed, "key": row["key"],
                              "in_audit": face_ok or not reject or last})
            if reject and not face_ok:
                rejections.append({"prompt_id": p.id, "subject": p.subject, "lang": p.lang,
                                   "formulation": p.formulation, "slot": i, "attempt": attempt,
                                   "seed": u.seed, "key": row["key"], "classifier": primary.name,
                                   "faces": label["faces"], "status": label["status"], "cap_reached": last})
                if not last:
                    still.append((p, i))
        pending = still
        write_units(run, unit_rows)
        write_rejections(run, rejections)
    return unit_rows, rejections


# --------------------------------------------------------------------------------------------
# after the run: relabel, report


def relabel(run_dir: str | os.PathLike, classifier: str, options: dict | None = None, *,
            overwrite: bool = False, progress: bool = True, allow_pickle: bool = False,
            execution: Execution = LOCAL) -> dict:
    """Label every image of a run with a classifier (``magbig classify``); nothing is
    regenerated. Images already labelled by the same classifier name and configuration are
    skipped unless ``overwrite``; a changed configuration replaces the old rows.
    ``execution.engine == "ray"``: the batches run on Ray actors, each holding the classifier."""
    if execution.shard is not None:
        raise InputError("magbig classify labels a whole run; --shard is for magbig audit and neobabel generate")
    run = open_run(run_dir)
    clf = get_classifier(classifier, allow_pickle=allow_pickle, **(options or {}))
    pool = None
    if execution.engine == "ray":
        from neobabel.engines import RayPool  # heavy: Ray, only for --engine ray

        pool = RayPool(functools.partial(get_classifier, classifier, allow_pickle=allow_pickle, **(options or {})),
                       workers=execution.workers, address=execution.address)
    try:
        with locked(run):
            return _relabel_locked(run, clf, overwrite, progress, pool)
    finally:
        if pool is not None:
            pool.shutdown()


def _relabel_locked(run: RunDir, clf, overwrite: bool, progress: bool, pool=None) -> dict:
    rows = list(run.load_manifest().iter_rows(named=True))
    store = LabelStore(run.path)
    labelled = label_images(run, store, clf, rows, overwrite=overwrite, progress=progress, pool=pool)
    info = run.read_run_json()
    _update_run_json(run, classifiers=_record_classifiers(info, [clf.config()]))
    counts = (store.frame().filter(pl.col("classifier") == clf.name).group_by("status").len()
              .sort("status"))
    return {"run": str(run.path), "classifier": clf.name, "config_id": config_id(clf), "images": len(rows),
            "labelled_now": labelled, "already_labelled": len({r["key"] for r in rows}) - labelled,
            "statuses": dict(zip(counts["status"].to_list(), counts["len"].to_list()))}


def report(run_dir: str | os.PathLike, classifier: str | None = None, *, n_boot: int | None = None,
           n_perm: int = 9999) -> dict:
    """Build and write the report of one classifier's labels. The audit's first classifier
    writes ``summary.json`` / ``report.html`` / ``report.md`` in the run directory; any other
    writes them under ``reports/<classifier>/``. With an ``alignment.parquet`` (``magbig
    align``) the report has the text-image alignment section. Returns {"report": Report,
    "paths": {...}}."""
    run = open_run(run_dir)
    with locked(run):  # merging label parts writes labels.parquet
        return _report_locked(run, classifier, n_boot, n_perm)


def _report_locked(run: RunDir, classifier: str | None, n_boot: int | None, n_perm: int) -> dict:
    from magbig.report import build_report, write_report  # heavy: matplotlib, only when a report is written

    LabelStore(run.path).merge()
    names = classifier_names(run.path)
    frame = audit_frame(run.path, classifier)
    name = classifier or names[0]
    info = run.read_run_json()
    audit = info.get("audit") or {}
    cfg = next((c for c in info.get("classifiers", []) if c.get("name") == name), {"name": name})
    n_units = read_units(run).filter(pl.col("in_audit")).height
    run_info = {**info, "classifier": cfg, "unlabelled_images": n_units - frame.height}
    rep = build_report(frame, run_info=run_info, alignment=alignment_for_report(run.path),
                       n_boot=n_boot or int(audit.get("n_boot", 2000)), seed=int(audit.get("seed", 0)),
                       n_perm=n_perm)
    out_dir = run.path if name == names[0] else run.path / "reports" / name
    paths = write_report(rep, out_dir)
    return {"report": rep, "paths": paths, "classifier": name}
