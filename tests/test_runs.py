"""neobabel.runs: image keys, atomic writes, PNG metadata, manifests, resume and recovery."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import run_in_process
from PIL import Image

from magbig import cli as magbig_cli
from magbig.audit import make_spec, run_audit
from magbig.selftest import OraclePipeline
from neobabel.errors import InputError
from neobabel.pipeline import BabelPipeline, GenerationParams
from neobabel.runs import (
    RunDir, RunDirInUse, RunSpecMismatch, WorkUnit, atomic_write_bytes, atomic_write_json, clean_temp_files,
    generate_into_run, image_key, lock_owner, png_bytes, read_png_metadata, sd_parameters_text, units_for,
)

DESIGN_COLUMNS = ["key", "prompt_id", "lang", "formulation", "subject", "text", "seed", "path", "sha256",
                  "seconds"]
PROMPTS = [("doctor-en", "a photo of the face of a doctor", "en"),
           ("doctor-hi", "एक डॉक्टर के चेहरे की तस्वीर", "hi"),
           ("doctor-zh", "一张医生的脸部照片", "zh")]


@pytest.fixture(scope="module")
def pipe(babel_sd_dir):
    return BabelPipeline.from_pretrained(babel_sd_dir)


@pytest.fixture(scope="module")
def params():
    return GenerationParams(steps=2, guidance=3.0, width=64, height=64)


@pytest.fixture(scope="module")
def units():
    return units_for(PROMPTS, n=2, seed=5)  # 6 images


@pytest.fixture(scope="module")
def reference(pipe, units, params, tmp_path_factory):
    """One uninterrupted run, batch size 1: the pixels every other run must reproduce."""
    run = RunDir(tmp_path_factory.mktemp("reference") / "run")
    report = generate_into_run(pipe, units, run, params, batch_size=1, progress=False)
    assert report.generated == 6
    return run


def pngs(run: RunDir) -> dict[str, np.ndarray]:
    return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted(run.images.glob("*.png"))}


def manifest(run: RunDir) -> pl.DataFrame:
    return pl.read_parquet(run.manifest_path)


def run_json(run: RunDir) -> dict:
    return json.loads(run.run_json_path.read_text(encoding="utf-8"))


def all_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def assert_consistent(run: RunDir, n: int):
    """Manifest rows == PNG files, one each, hashes and metadata matching."""
    df = manifest(run)
    files = sorted(p.stem for p in run.images.glob("*.png"))
    assert df.height == n == len(files)
    assert df["key"].n_unique() == n
    assert sorted(df["key"].to_list()) == files
    for row in df.iter_rows(named=True):
        png = run.path / row["path"]
        assert row["sha256"] == hashlib.sha256(png.read_bytes()).hexdigest()
        meta = read_png_metadata(png)
        assert (meta["key"], meta["prompt"], meta["lang"], meta["seed"]) == (
            row["key"], row["text"], row["lang"], str(row["seed"]))
    assert not [f for f in all_files(run.path) if ".tmp-" in f]


# -- keys ----------------------------------------------------------------------------------

IDENTITY = {"model": "m", "revision": "r1", "mode": "tower", "family": "sd"}
UNIT = WorkUnit("p1", "ein Foto", "de", 3)
PARAMS = {"steps": 2, "guidance": 3.0, "width": 64, "height": 64, "scheduler": None, "negative_prompt": "",
          "dtype": "float32"}


def test_image_key_is_stable():
    k = image_key(IDENTITY, UNIT, PARAMS)
    assert len(k) == 20 and int(k, 16) >= 0
    assert k == image_key(dict(IDENTITY), WorkUnit("p1", "ein Foto", "de", 3), dict(reversed(PARAMS.items())))


@pytest.mark.parametrize("change", [
    {"unit": {"text": "ein foto"}}, {"unit": {"lang": "nl"}}, {"unit": {"seed": 4}},
    {"identity": {"model": "m2"}}, {"identity": {"revision": "r2"}}, {"identity": {"mode": "native"}},
    {"params": {"steps": 3}}, {"params": {"guidance": 3.5}}, {"params": {"width": 72}},
    {"params": {"height": 72}}, {"params": {"scheduler": "dpm++"}}, {"params": {"negative_prompt": "x"}},
    {"params": {"dtype": "float16"}},
])
def test_image_key_sensitive_to_every_field(change):
    base = image_key(IDENTITY, UNIT, PARAMS)
    identity = {**IDENTITY, **change.get("identity", {})}
    params = {**PARAMS, **change.get("params", {})}
    u = change.get("unit", {})
    unit = WorkUnit(UNIT.prompt_id, u.get("text", UNIT.text), u.get("lang", UNIT.lang), u.get("seed", UNIT.seed))
    assert image_key(identity, unit, params) != base


def test_image_key_ignores_labels():
    """prompt_id / subject / formulation name an image; they do not change its pixels."""
    base = image_key(IDENTITY, UNIT, PARAMS)
    assert image_key(IDENTITY, WorkUnit("other-id", "ein Foto", "de", 3, "doctor", "direct"), PARAMS) == base


def test_keys_and_pixels_do_not_depend_on_batch_size(pipe, units, params, reference, tmp_path):
    run = RunDir(tmp_path / "b4")
    report = generate_into_run(pipe, units, run, params, batch_size=4, progress=False)
    assert report.generated == 6
    ref, got = pngs(reference), pngs(run)
    assert sorted(ref) == sorted(got)
    assert all(np.array_equal(ref[k], got[k]) for k in ref)


# -- atomic files and PNG metadata ---------------------------------------------------------

def test_atomic_writes_leave_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "data.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    atomic_write_json(tmp_path / "x.json", {"text": "中文"})
    assert target.read_bytes() == b"two"
    assert json.loads((tmp_path / "x.json").read_text(encoding="utf-8")) == {"text": "中文"}
    assert all_files(tmp_path) == ["sub/data.bin", "x.json"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "data.bin"
    atomic_write_bytes(target, b"complete")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"half")
    assert target.read_bytes() == b"complete"
    monkeypatch.undo()
    assert clean_temp_files(tmp_path) == 1  # the leftover temporary is recognised and removed
    assert all_files(tmp_path) == ["data.bin"]


@pytest.mark.parametrize("text", ["एक डॉक्टर के चेहरे की तस्वीर", "一张医生的脸部照片", "صورة لوجه طبيب",
                                  "ein Foto vom Gesicht einer Ärztin", "emoji 🩺 and\nnewline"])
def test_png_text_chunks_round_trip_utf8(tmp_path, text):
    meta = {"prompt": text, "lang": "hi", "seed": "3", "params": {"steps": 2, "negative": "нет"}}
    p = tmp_path / "x.png"
    p.write_bytes(png_bytes(Image.new("RGB", (8, 8), (1, 2, 3)), meta))
    got = read_png_metadata(p)
    assert got["prompt"] == text and got["lang"] == "hi" and got["seed"] == "3"
    assert json.loads(got["params"]) == {"steps": 2, "negative": "нет"}


def test_run_pngs_carry_their_metadata(reference, params):
    info = run_json(reference)
    for row in manifest(reference).iter_rows(named=True):
        meta = read_png_metadata(reference.path / row["path"])
        assert meta["prompt"] == row["text"] and meta["lang"] == row["lang"]
        assert meta["prompt_id"] == row["prompt_id"]
        assert json.loads(meta["params"]) == info["params"]
        assert meta["model"] == info["model"]["model"] and meta["revision"] == info["model"]["revision"]


# -- the run directory ---------------------------------------------------------------------

def test_layout_manifest_and_run_json(reference, units, params, pipe):
    df = manifest(reference)
    assert all_files(reference.path) == sorted(
        ["generations.parquet", "run.json", *(f"images/{k}.png" for k in df["key"])])
    assert_consistent(reference, 6)
    assert set(DESIGN_COLUMNS) <= set(df.columns)
    assert df.schema["seed"] == pl.Int64 and df.schema["seconds"] == pl.Float64
    got = sorted(zip(df["prompt_id"], df["lang"], df["text"], df["seed"]))
    assert got == sorted((u.prompt_id, u.lang, u.text, u.seed) for u in units)
    assert (df["seconds"] >= 0).all()

    info = run_json(reference)
    assert info["status"] == "complete" and "finished" in info and "created" in info
    assert info["model"] == pipe.identity()
    assert info["model"]["revision"] and info["model"]["mode"] == "tower"
    assert {k: info["params"][k] for k in params.as_dict()} == params.as_dict()
    assert info["params"]["dtype"] == "float32"
    assert info["attention"] == "sdpa" and info["batch_invariant"] is True
    for pkg in ("torch", "diffusers", "transformers", "numpy", "polars"):
        assert info["versions"][pkg] == metadata.version(pkg)
    assert info["versions"]["python"]
    assert info["counts"] == {"units": 6, "manifest_rows": 6}
    assert len(info["invocations"]) == 1 and info["invocations"][0]["generated"] == 6


def test_rerun_generates_nothing(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=2, progress=False)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in run.images.glob("*.png")}
    report = generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    assert (report.generated, report.already_done, report.recovered, report.total) == (0, 6, 0, 6)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in run.images.glob("*.png")} == before
    assert_consistent(run, 6)
    info = run_json(run)
    assert [i["generated"] for i in info["invocations"]] == [6, 0]


class Stop:
    """on_image callback that simulates a kill (Ctrl-C / SIGTERM) after k images."""

    def __init__(self, k: int | None = None):
        self.k, self.keys = k, []

    def __call__(self, key, unit):
        self.keys.append(key)
        if self.k is not None and len(self.keys) >= self.k:
            raise KeyboardInterrupt


def test_resume_after_interrupted_run(pipe, units, params, reference, tmp_path):
    run = RunDir(tmp_path / "run")
    first = Stop(3)  # batch size 2: killed half-way through the second batch
    with pytest.raises(KeyboardInterrupt):
        generate_into_run(pipe, units, run, params, batch_size=2, progress=False, on_image=first)
    info = run_json(run)
    assert info["status"] == "interrupted" and "stopped" in info and "finished" not in info
    assert info["invocations"][-1]["status"] == "interrupted"
    assert info["invocations"][-1]["generated"] == 3
    for p in run.images.glob("*.png"):
        with Image.open(p) as im:
            im.load()  # complete and valid
    assert_consistent(run, 3)
    assert sorted(first.keys) == sorted(p.stem for p in run.images.glob("*.png"))

    second = Stop()
    report = generate_into_run(pipe, units, run, params, batch_size=2, progress=False, on_image=second)
    assert (report.generated, report.already_done, report.total) == (3, 3, 6)
    assert not set(first.keys) & set(second.keys)  # only the missing ones, none twice
    assert_consistent(run, 6)
    assert run_json(run)["status"] == "complete"
    # The resumed run holds exactly the images an uninterrupted run makes.
    ref, got = pngs(reference), pngs(run)
    assert sorted(ref) == sorted(got) and all(np.array_equal(ref[k], got[k]) for k in ref)

    third = generate_into_run(pipe, units, run, params, batch_size=2, progress=False)
    assert third.generated == 0


def test_orphan_pngs_recovered_without_manifest(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    expected = manifest(run).drop("seconds").sort("key")
    run.manifest_path.unlink()  # killed before the manifest was written
    spy = Stop()
    report = generate_into_run(pipe, units, run, params, batch_size=3, progress=False, on_image=spy)
    assert report.generated == 0 and spy.keys == []
    assert report.recovered == 6
    assert_consistent(run, 6)
    assert manifest(run).drop("seconds").sort("key").equals(expected)


def test_missing_manifest_rows_rebuilt(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    full = manifest(run)
    full.head(4).write_parquet(run.manifest_path)
    report = generate_into_run(pipe, units, run, params, progress=False)
    assert (report.generated, report.recovered, report.already_done) == (0, 2, 4)
    assert_consistent(run, 6)


def test_corrupt_manifest_rebuilt(pipe, units, params, tmp_path, caplog):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    run.manifest_path.write_bytes(b"PAR1 not really parquet")
    with caplog.at_level("WARNING", logger="neobabel"):  # a library warning: the CLIs show it on stderr
        report = generate_into_run(pipe, units, run, params, progress=False)
    assert (report.generated, report.recovered) == (0, 6)
    assert "rebuilding" in caplog.text
    assert_consistent(run, 6)


def test_truncated_orphan_png_regenerated(pipe, units, params, reference, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    run.manifest_path.unlink()
    victim = sorted(run.images.glob("*.png"))[2]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    spy = Stop()
    report = generate_into_run(pipe, units, run, params, progress=False, on_image=spy)
    assert spy.keys == [victim.stem] and report.generated == 1 and report.recovered == 5
    assert_consistent(run, 6)
    assert np.array_equal(pngs(run)[victim.stem], pngs(reference)[victim.stem])


def test_foreign_png_at_a_key_regenerated(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    run.manifest_path.unlink()
    victim = sorted(run.images.glob("*.png"))[0]
    victim.write_bytes(png_bytes(Image.new("RGB", (64, 64)), {"key": "somethingelse"}))
    spy = Stop()
    generate_into_run(pipe, units, run, params, progress=False, on_image=spy)
    assert spy.keys == [victim.stem]
    assert_consistent(run, 6)


def test_truncated_png_listed_in_manifest_regenerated(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    victim = sorted(run.images.glob("*.png"))[1]
    victim.write_bytes(victim.read_bytes()[:100])
    spy = Stop()
    generate_into_run(pipe, units, run, params, progress=False, on_image=spy)
    assert spy.keys == [victim.stem]
    assert_consistent(run, 6)


def test_deleted_png_regenerated(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    victim = sorted(run.images.glob("*.png"))[4]
    victim.unlink()
    spy = Stop()
    generate_into_run(pipe, units, run, params, progress=False, on_image=spy)
    assert spy.keys == [victim.stem]
    assert_consistent(run, 6)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftover_temp_files_cleaned(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    dead = dead_pid()
    (run.images / f".abc.png.tmp-{dead}").write_bytes(b"\x89PNG half")
    (run.path / f".run.json.tmp-{dead}").write_text("{")
    (run.path / f".generations.parquet.tmp-{dead}").write_bytes(b"PAR1")
    report = generate_into_run(pipe, units, run, params, progress=False)
    assert report.generated == 0
    assert not [f for f in all_files(run.path) if "tmp" in f]
    assert_consistent(run, 6)


def test_overwrite_regenerates(pipe, units, params, reference, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units, run, params, batch_size=3, progress=False)
    spy = Stop()
    report = generate_into_run(pipe, units, run, params, batch_size=2, overwrite=True, progress=False,
                               on_image=spy)
    assert report.generated == 6 and sorted(spy.keys) == sorted(pngs(reference))
    assert_consistent(run, 6)
    ref, got = pngs(reference), pngs(run)
    assert all(np.array_equal(ref[k], got[k]) for k in ref)


def test_other_units_in_the_run_dir_are_kept(pipe, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units_for(PROMPTS[:1], 2, 0), run, params, progress=False)
    report = generate_into_run(pipe, units_for(PROMPTS[1:2], 1, 0), run, params, progress=False)
    assert report.generated == 1 and report.total == 1
    assert_consistent(run, 3)
    assert run_json(run)["counts"] == {"units": 1, "manifest_rows": 3}


def test_units_for():
    us = units_for([("a", "x", "en"), ("b", "y", "de")], n=3, seed=10)
    assert [(u.prompt_id, u.seed) for u in us] == [("a", 10), ("a", 11), ("a", 12), ("b", 10), ("b", 11),
                                                   ("b", 12)]


def test_run_dir_errors(tmp_path, pipe, units, params):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        RunDir(f)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.run_json_path.write_text("{broken")
    with pytest.raises(InputError, match="run.json"):
        generate_into_run(pipe, units, run, params, progress=False)
    assert not list(run.images.glob("*.png"))


def test_prompts_with_identical_text_share_one_image_and_keep_a_row_each(pipe, params, tmp_path):
    # e.g. Russian "nurse": direct and feminine forms are the same string
    same = "Фотография лица медсестры."
    units = [WorkUnit("nurse/ru/direct", same, "ru", 0, "nurse", "direct"),
             WorkUnit("nurse/ru/feminine", same, "ru", 0, "nurse", "feminine")]
    run = RunDir(tmp_path / "run")
    report = generate_into_run(pipe, units, run, params, progress=False)
    assert report.generated == 1 and report.total == 2
    rows = manifest(run)
    assert sorted(rows["prompt_id"].to_list()) == ["nurse/ru/direct", "nurse/ru/feminine"]
    assert rows["key"].n_unique() == 1 and len(list(run.images.glob("*.png"))) == 1
    again = generate_into_run(pipe, units, run, params, progress=False)
    assert again.generated == 0 and again.already_done == 2
    assert manifest(run).height == 2


# -- reproducible files ----------------------------------------------------------------------

def test_identical_specs_give_byte_identical_pngs(pipe, units, params, reference, tmp_path):
    """No wall-clock time in a PNG: two fresh runs of one spec give the same bytes and sha256."""
    run = RunDir(tmp_path / "again")
    generate_into_run(pipe, units, run, params, batch_size=4, progress=False)
    for key, png in ((p.stem, p) for p in sorted(reference.images.glob("*.png"))):
        assert (run.images / png.name).read_bytes() == png.read_bytes(), key
        assert "seconds" not in read_png_metadata(png)
    cols = ["key", "prompt_id", "sha256"]
    assert manifest(run).select(cols).sort(cols).equals(manifest(reference).select(cols).sort(cols))
    assert manifest(reference)["seconds"].is_not_null().all()  # timing lives in the manifest only


def test_pngs_carry_the_parameters_text_other_sd_tools_read(reference):
    """A1111/ComfyUI image-info views read one `parameters` chunk: prompt, then the settings line."""
    for png in sorted(reference.images.glob("*.png")):
        meta = read_png_metadata(png)
        prompt, settings = meta["parameters"].split("\n")
        assert prompt == meta["prompt"]
        assert f"Seed: {meta['seed']}," in settings
        assert settings.startswith("Steps: 2, Sampler: default, CFG scale: 3.0, ")
        assert "Size: 64x64" in settings


def test_parameters_text_layout():
    params = {**PARAMS, "steps": 20, "scheduler": "ddim", "guidance": 4.0, "width": 32, "height": 32,
              "negative_prompt": "blurry"}
    assert sd_parameters_text("a cat", 3, "world", params) == (
        "a cat\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: ddim, CFG scale: 4.0, Seed: 3, Size: 32x32, Model: world")
    # a value with a comma or colon is quoted, as A1111 does, so the line still splits into fields
    assert sd_parameters_text("x", 1, "C:/m,1", PARAMS).endswith('Model: "C:/m,1"')


# -- one spec per run directory ----------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder` with its content hash and mtime: equal snapshots = nothing written."""
    return {p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_another_spec_is_refused_before_anything_is_written(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units[:2], run, params, progress=False)
    before = snapshot(run.path)
    other = GenerationParams(steps=3, guidance=3.0, width=64, height=64)
    with pytest.raises(RunSpecMismatch) as e:
        generate_into_run(pipe, units, run, params=other, progress=False)
    msg = str(e.value)
    assert "params.steps: 2 -> 3" in msg and "new --out" in msg and "--add-to-run" in msg
    assert "\n" not in msg and "guidance" not in msg  # only what differs
    assert snapshot(run.path) == before


def test_more_prompts_and_seeds_are_not_another_spec(pipe, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units_for(PROMPTS[:1], 1, 0), run, params, progress=False)
    report = generate_into_run(pipe, units_for(PROMPTS[:2], 2, 0), run, params, progress=False)
    assert report.generated == 3
    info = run_json(run)
    assert len(info["specs"]) == 1 and [i["spec"] for i in info["invocations"]] == [0, 0]
    assert_consistent(run, 4)


def test_add_to_run_records_every_spec(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units[:2], run, params, progress=False)
    other = GenerationParams(steps=3, guidance=3.0, width=64, height=64)
    report = generate_into_run(pipe, units[:2], run, other, progress=False, add_to_run=True)
    assert report.generated == 2
    info = run_json(run)
    assert [s["params"]["steps"] for s in info["specs"]] == [2, 3]
    assert [i["spec"] for i in info["invocations"]] == [0, 1]
    assert_consistent(run, 4)
    # Both specs are held now: resuming either needs no flag.
    assert generate_into_run(pipe, units[:2], run, params, progress=False).generated == 0
    assert generate_into_run(pipe, units[:2], run, other, progress=False).generated == 0


def test_cli_refuses_another_model_or_params_in_one_run_dir(cli, babel_sd_dir, tiny_random_dir, tmp_path):
    """The issue's reproduction: three specs into one --out used to give 6 rows from 3 models."""
    out = tmp_path / "R"
    base = ["generate", "a red circle", "-n", "2", "--out", out, "--size", "64x64", "--no-progress"]
    code, stdout, err = cli(*base, "--model", babel_sd_dir, "--steps", "2")
    assert code == 0 and "2 generated" in stdout, err
    before = snapshot(out)
    model = json.loads((out / "run.json").read_text(encoding="utf-8"))["model"]["model"]
    for extra, needle in (
            (["--model", "tiny-random", "--steps", "2"], f"model: {model} -> tiny-random"),
            (["--model", babel_sd_dir, "--steps", "5"], "params.steps: 2 -> 5")):
        code, stdout, err = cli(*base, *extra)
        lines = err.strip().splitlines()
        assert code == 2, (code, stdout, err)
        assert lines[-1].startswith("neobabel: error: run directory") and needle in lines[-1], lines
        assert "--add-to-run" in lines[-1] and "--out" in lines[-1]
        assert snapshot(out) == before
    code, stdout, err = cli(*base, "--model", babel_sd_dir, "--steps", "5", "--add-to-run")
    assert code == 0 and "2 generated" in stdout, err
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert [s["params"]["steps"] for s in info["specs"]] == [2, 5]
    assert pl.read_parquet(out / "generations.parquet").height == 4


def test_unreadable_manifest_rebuilt_from_every_png(pipe, params, tmp_path):
    """Rows of earlier commands (other prompts, an added spec) come back from their PNGs' metadata."""
    run = RunDir(tmp_path / "run")
    first, second = units_for(PROMPTS[:2], 2, 0), units_for(PROMPTS[2:], 1, 0)
    generate_into_run(pipe, first, run, params, progress=False)
    other = GenerationParams(steps=3, guidance=3.0, width=64, height=64)
    generate_into_run(pipe, first[:1], run, other, progress=False, add_to_run=True)
    generate_into_run(pipe, second, run, params, progress=False)
    expected = manifest(run).drop("seconds").sort("key", "prompt_id")
    assert expected.height == 6
    # a PNG with a valid key but made by a spec this run does not hold is not adopted
    foreign = png_bytes(Image.new("RGB", (8, 8)), {"key": "f" * 20, "prompt": "x", "lang": "en", "seed": "0",
                                                     "prompt_id": "x", "model": "elsewhere", "revision": "r",
                                                     "params": {}})
    (run.images / f"{'f' * 20}.png").write_bytes(foreign)
    run.manifest_path.write_bytes(run.manifest_path.read_bytes()[:40])  # truncated
    spy = Stop()
    report = generate_into_run(pipe, second, run, params, progress=False, on_image=spy)
    assert spy.keys == [] and report.generated == 0
    assert manifest(run).drop("seconds").sort("key", "prompt_id").equals(expected)


# -- one writer at a time ------------------------------------------------------------------------

# Holds a run directory's lock; with "running", also puts run.json in the state a generation in
# flight has (what kill -9 leaves behind).
HOLD_LOCK = """\
import sys
from neobabel.runs import RunDir, locked
run = RunDir(sys.argv[1])
with locked(run):
    if sys.argv[2:] == ["running"]:
        info = run.read_run_json()
        info["status"] = "running"
        info["invocations"].append({"pid": __import__("os").getpid(), "status": "running"})
        run.write_run_json(info)
    print("locked", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path):
    """A second process holding a run directory's lock until told to go (or killed)."""
    procs = []

    def _hold(path: Path, *args: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "locked"
        procs.append(p)
        return p

    yield _hold
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_second_writer_is_refused_and_writes_nothing(pipe, units, params, tmp_path, holder, cli, babel_sd_dir):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units[:2], run, params, progress=False)
    owner = holder(run.path)
    before = snapshot(run.path)
    assert {".neobabel.lock", ".neobabel.lock.json"} <= set(before)
    with pytest.raises(RunDirInUse, match=rf"in use by pid {owner.pid} \(started .*\); wait for it to finish "
                                          r"or use another --out"):
        generate_into_run(pipe, units, run, params, progress=False)
    code, stdout, err = cli("generate", PROMPTS[0][1], "--out", run.path, "--model", babel_sd_dir, "--steps", "2",
                            "--guidance", "3", "--size", "64x64", "--no-progress")
    assert code == 2 and err.strip().splitlines()[-1].startswith(f"neobabel: error: run directory {run.path} is "
                                                                 f"in use by pid {owner.pid}"), err
    assert snapshot(run.path) == before
    owner.communicate("\n")  # the holder finishes cleanly: no lock files are left, the run goes on
    assert not (run.path / ".neobabel.lock").exists() and not (run.path / ".neobabel.lock.json").exists()
    assert generate_into_run(pipe, units, run, params, progress=False).generated == 4
    assert [i["status"] for i in run_json(run)["invocations"]] == ["complete", "complete"]


@pytest.mark.slow
def test_two_generate_processes_on_one_out(tmp_path, cli, tiny_random_dir):
    """A real `neobabel generate` holds the directory; a second one is refused and records nothing."""
    out = tmp_path / "R"
    args = ["generate", "a red circle", "-n", "100", "--model", "tiny-random", "--size", "32x32", "--steps", "2",
            "--out", str(out), "--no-progress"]
    first = subprocess.Popen([sys.executable, "-m", "neobabel.cli", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        owner_file = out / ".neobabel.lock.json"
        while not owner_file.is_file() and first.poll() is None:
            time.sleep(0.01)
        code, stdout, err = cli(*args)
        assert first.poll() is None, "the first process finished before the second started"
        assert code == 2 and f"in use by pid {first.pid}" in err.strip().splitlines()[-1], err
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
        first.wait()
    info = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert [(i["pid"], i["generated"]) for i in info["invocations"]] == [(first.pid, 100)]
    assert pl.read_parquet(out / "generations.parquet").height == 100
    assert sorted(p.name for p in out.iterdir()) == ["generations.parquet", "images", "run.json"]


def test_killed_owner_marks_the_run_interrupted(pipe, units, params, reference, tmp_path, holder):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units[:2], run, params, progress=False)
    owner = holder(run.path, "running")
    owner.kill()  # SIGKILL: no finally, no cleanup
    owner.wait()
    assert run_json(run)["status"] == "running" and lock_owner(run.path)["pid"] == owner.pid
    report = generate_into_run(pipe, units, run, params, progress=False)
    assert report.generated == 4
    info = run_json(run)
    assert info["status"] == "complete"
    killed = info["invocations"][1]
    assert killed["status"] == "interrupted" and f"pid {owner.pid} died" in killed["note"]
    assert [i["status"] for i in info["invocations"]] == ["complete", "interrupted", "complete"]
    assert all_files(run.path) == all_files(reference.path)  # no lock or owner file left


def test_temp_cleanup_spares_live_processes(pipe, units, params, tmp_path):
    run = RunDir(tmp_path / "run")
    generate_into_run(pipe, units[:1], run, params, progress=False)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = dead_pid()
        (run.images / f".a.png.tmp-{live.pid}").write_bytes(b"being written")
        (run.images / f".b.png.tmp-{dead}").write_bytes(b"left by a killed run")
        (run.path / "keep.tmp-x").write_bytes(b"not ours")
        generate_into_run(pipe, units[:1], run, params, progress=False)
        assert (run.images / f".a.png.tmp-{live.pid}").read_bytes() == b"being written"
        assert not (run.images / f".b.png.tmp-{dead}").exists()
        assert (run.path / "keep.tmp-x").exists()
    finally:
        live.kill()
        live.wait()
    assert clean_temp_files(run.images) == 1  # its owner is gone now


# -- audits hold one audit ------------------------------------------------------------------------

def _audit_spec(**kw):
    data = {"name": "t", "model": "oracle", "subjects": ["nurse"], "langs": ["en"],
            "formulations": ["direct"], "n": 2, "classifiers": [{"name": "world"}], "n_boot": 100}
    data.update(kw)
    return make_spec(data)


@pytest.fixture(scope="module")
def oracle_audit(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "run"
    run_audit(_audit_spec(), out, progress=False, pipeline=OraclePipeline.from_bias_table(), report_files=False)
    return out


@pytest.mark.parametrize("change, needle", [
    ({"n": 3}, "audit.n: 2 -> 3"),
    ({"langs": ["en", "de"]}, 'audit.langs: ["en"] -> ["en", "de"]'),
    ({"subjects": ["pilot"]}, 'audit.subjects: ["nurse"] -> ["pilot"]'),
    ({"formulations": ["indirect"]}, 'audit.formulations: ["direct"] -> ["indirect"]'),
    ({"face_policy": "reject"}, "audit.face_policy: keep -> reject"),
    ({"size": "48"}, "params.width: 64 -> 48"),
])
def test_resumed_audit_with_another_spec_is_refused(oracle_audit, change, needle):
    before = snapshot(oracle_audit)
    with pytest.raises(RunSpecMismatch) as e:
        run_audit(_audit_spec(**change), oracle_audit, progress=False, pipeline=OraclePipeline.from_bias_table(),
                  report_files=False)
    assert needle in str(e.value) and "new --out" in str(e.value)
    assert "pass --add-to-run" not in str(e.value)  # one audit per directory, no way to add another
    assert snapshot(oracle_audit) == before


def test_audit_and_generate_do_not_share_a_run_dir(oracle_audit, tmp_path, pipe, params):
    oracle = OraclePipeline.from_bias_table()
    before = snapshot(oracle_audit)
    unit = WorkUnit("x", "A photo of the face of a nurse.", "en", 0)
    with pytest.raises(RunSpecMismatch, match="command: magbig audit -> generate"):
        generate_into_run(oracle, [unit], RunDir(oracle_audit), oracle.resolve_params(), add_to_run=True,
                          progress=False)
    assert snapshot(oracle_audit) == before
    gen = RunDir(tmp_path / "gen")
    generate_into_run(pipe, units_for(PROMPTS[:1], 1, 0), gen, params, progress=False)
    before = snapshot(gen.path)
    with pytest.raises(RunSpecMismatch, match="command: generate -> magbig audit"):
        run_audit(_audit_spec(), gen.path, progress=False, pipeline=oracle, report_files=False)
    assert snapshot(gen.path) == before


def test_magbig_audit_cli_refuses_another_audit(oracle_audit, monkeypatch, capsys, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(oracle_audit, out)
    cfg = tmp_path / "a.yaml"
    cfg.write_text("name: t\nmodel: oracle\nsubjects: [nurse]\nlangs: [en]\nformulations: [direct]\nn: 2\n"
                   "classifiers: [world]\nn_boot: 100\n", encoding="utf-8")
    old = signal.getsignal(signal.SIGTERM)
    try:
        main = run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)
        assert main("audit", "--config", cfg, "--out", out, "--no-progress")[0] == 0  # the same audit resumes
        before = snapshot(out)
        code, _, err = main("audit", "--config", cfg, "--out", out, "-n", "4", "--no-progress")
    finally:
        signal.signal(signal.SIGTERM, old)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("magbig: error: run directory"), err
    assert "audit.n: 2 -> 4" in lines[0] and "new --out" in lines[0]
    assert snapshot(out) == before
