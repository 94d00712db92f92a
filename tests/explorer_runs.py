"""Run directories for the explorer tests (AppTest and the browser), built by the real audit
code: the world oracle (planted shares, two classifiers), a hostile run (a `<script>` prompt,
image paths that point out of the run), a scheduled job with three dates (an alert on the
third), and a tiny-random diffusion model run."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from magbig import audit as A
from magbig.prompts import Prompt, PromptSet
from magbig.selftest import OraclePipeline

OCCS = ["nurse", "firefighter", "construction worker"]
EVIL = 'A photo of a <script>alert("x")</script> <img src=x onerror=alert(1)> nurse'
DAYS = ["2026-03-02", "2026-03-09", "2026-03-16"]


def spec(**kw) -> A.AuditSpec:
    data = {"name": "t", "model": "oracle", "subjects": OCCS, "langs": ["en", "de"],
            "formulations": ["direct", "indirect"], "n": 8, "seed": 0, "batch_size": 16,
            "classifiers": [{"name": "world"}], "n_boot": 200}
    data.update(kw)
    return A.make_spec(data)


def world_run(out: Path) -> Path:
    """The planted-share oracle, labelled by `world` and by a second configuration `world2`."""
    A.run_audit(spec(), out, progress=False, pipeline=OraclePipeline.from_bias_table())
    A.relabel(out, "world", {"alias": "world2", "uncertain_margin": 0.1}, progress=False)
    return out


def hostile_run(out: Path, outside: Path) -> Path:
    """A run whose prompt holds `<script>` and `<img onerror>`, and whose manifest's image paths
    point outside it: `../`, absolute, and a symlink out (``outside`` is a real PNG there)."""
    ps = PromptSet("evil", "1", (Prompt.make("occupations", "nurse", "en", "direct", EVIL),))
    pipe = OraclePipeline({(EVIL, "en"): ("nurse", 0.8)})
    A.run_audit(spec(subjects=["nurse"], langs=["en"], formulations=["direct"], n=6), out,
                progress=False, pipeline=pipe, prompts=ps)
    gens = pl.read_parquet(out / "generations.parquet").sort("key")
    first = gens["path"][0]
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_bytes((out / first).read_bytes())
    link = out / "images" / "link-out.png"
    if not link.is_symlink():
        os.symlink(outside, link)
    bad = {1: "../" + outside.name, 2: str(outside), 3: "images/link-out.png"}
    paths = [bad.get(i, p) for i, p in enumerate(gens["path"].to_list())]
    gens.with_columns(pl.Series("path", paths)).write_parquet(out / "generations.parquet")
    return out


def job_dir(out: Path, monkeypatch) -> Path:
    """A scheduled job run on three dates; on the third the model turned all-masculine, which
    fires the rising-abs_dev alert."""
    import yaml

    import magbig.audit
    from magbig.batch import load_job, run_job

    out.mkdir(parents=True, exist_ok=True)
    path = out / "weekly.yaml"
    path.write_text(yaml.safe_dump({
        "name": "weekly", "output": str(out), "models": [{"model": "oracle", "name": "m"}],
        "audit": {"subjects": OCCS, "langs": ["en", "de"], "formulations": ["direct", "indirect"], "n": 6,
                  "seed": 0, "batch_size": 24, "classifiers": ["world"], "n_boot": 200},
        "alerts": {"rising_abs_dev": True, "min_face_found_rate": 0.5}}), encoding="utf-8")
    job = load_job(path)
    run_job(job, DAYS[0])
    run_job(job, DAYS[1])
    base = OraclePipeline.from_bias_table()
    skewed = OraclePipeline({k: (c.occupation, 0.0) for k, c in base.cells.items()},
                            ambiguous_share=base.ambiguous_share)
    monkeypatch.setattr(magbig.audit, "load_pipeline", lambda spec, prompts=None: skewed)
    run_job(job, DAYS[2])
    return out / "weekly"


def tiny_run(out: Path, model_dir: Path) -> Path:
    """The tiny-random diffusion model (random weights: mostly no face found) audited for real."""
    A.run_audit(spec(model=str(model_dir), subjects=["nurse"], n=2, steps=2, size="64x64", guidance=3.0),
                out, progress=False)
    return out
