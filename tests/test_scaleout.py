"""Scale-out: `generate --shard I/N` + `neobabel merge`, and `--engine ray` (skipped without Ray).

Every way of making a run must give the run a single process gives: the same keys, the same PNG
bytes (sha256) and the same manifest rows, timing columns aside.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import polars as pl
import pytest

FAST_ARGS = ["--steps", "2", "--size", "64x64", "--no-progress"]
PROMPTS = ("id,lang,prompt\n"
           "a,en,a photo of a doctor\n"
           "b,de,ein Foto einer Ärztin\n"
           "c,fr,une photo d'un médecin\n"
           "d,en,a photo of a doctor\n")  # same text as `a`: one image, two rows


def _snapshot(run: Path) -> tuple[dict, list[dict]]:
    """PNG sha256 by file name, manifest rows without timing, sorted."""
    pngs = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run / "images").glob("*.png")}
    rows = pl.read_parquet(run / "generations.parquet").drop("seconds").sort("key", "prompt_id").to_dicts()
    return pngs, rows


def _all_files(run: Path) -> dict:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def single(tmp_path_factory, babel_sd_dir):
    """The reference: one process, the whole run."""
    from neobabel import cli as cli_mod  # noqa: F401  (imports before the in-process runs)

    root = tmp_path_factory.mktemp("scale")
    (root / "prompts.csv").write_text(PROMPTS, encoding="utf-8")
    return root


def _generate(cli, root: Path, model: Path, out: Path, *extra) -> None:
    code, stdout, stderr = cli("generate", "--prompts", root / "prompts.csv", "-n", "3", "--model", model,
                               "--out", out, *FAST_ARGS, *extra)
    assert code == 0, stderr


def test_three_shards_merged_equal_a_single_run(cli, single, babel_sd_dir):
    root = single
    _generate(cli, root, babel_sd_dir, root / "single")
    for i in range(3):
        _generate(cli, root, babel_sd_dir, root / f"shard{i}", "--shard", f"{i}/3")
    parts = [_snapshot(root / f"shard{i}")[0] for i in range(3)]
    assert sum(len(p) for p in parts) == len(_snapshot(root / "single")[0])  # disjoint
    info0 = json.loads((root / "shard0" / "run.json").read_text())
    assert info0["shard"]["index"] == 0 and info0["shard"]["count"] == 3

    code, out, err = cli("merge", root / "merged", *[root / f"shard{i}" for i in range(3)])
    assert code == 0, err
    assert _snapshot(root / "merged") == _snapshot(root / "single")
    info = json.loads((root / "merged" / "run.json").read_text())
    assert info["status"] == "complete" and [s["shard"]["index"] for s in info["merged_from"]] == [0, 1, 2]
    assert info["specs"] == json.loads((root / "single" / "run.json").read_text())["specs"]

    before = _all_files(root / "merged")
    code, out, err = cli("merge", root / "merged", *[root / f"shard{i}" for i in range(3)])
    assert code == 0, err
    assert "0 copied" in out
    assert _all_files(root / "merged") == before  # merging twice changes nothing, byte for byte

    # The merged run is an ordinary run directory: rerunning the single command there makes nothing.
    code, out, err = cli("generate", "--prompts", root / "prompts.csv", "-n", "3", "--model", babel_sd_dir,
                         "--out", root / "merged", *FAST_ARGS)
    assert code == 0 and out.startswith("0 generated"), out + err


def test_shards_partition_keys_evenly():
    from neobabel.runs import WorkUnit, image_key
    from neobabel.shards import in_shard, parse_shard, shard_units

    identity = {"model": "m", "revision": "r", "mode": "tower"}
    units = [WorkUnit(f"p{i}", f"text {i}", "en", i) for i in range(600)]
    parts = [shard_units(units, identity, {}, i, 3) for i in range(3)]
    assert sorted(u.prompt_id for p in parts for u in p) == sorted(u.prompt_id for u in units)  # each once
    assert all(150 < len(p) < 250 for p in parts)
    assert all(in_shard(image_key(identity, u, {}), 1, 3) for u in parts[1])
    assert parse_shard(" 2 / 5 ") == (2, 5)


def test_an_empty_shard_merges(single, babel_sd_dir, tmp_path):
    """A shard that got no units (few images, many jobs) is a complete, empty run."""
    from neobabel.pipeline import BabelPipeline
    from neobabel.runs import RunDir, generate_into_run, units_for
    from neobabel.shards import merge_runs

    pipe = BabelPipeline.from_pretrained(babel_sd_dir)
    params = pipe.resolve_params(2, None, 64, 64, None, None)
    generate_into_run(pipe, [], RunDir(tmp_path / "empty"), params, progress=False)
    generate_into_run(pipe, units_for([("x", "a cat", "en")], 2, 0), RunDir(tmp_path / "full"), params,
                      progress=False)
    assert merge_runs(tmp_path / "m", [tmp_path / "empty", tmp_path / "full"])["rows"] == 2
    assert _snapshot(tmp_path / "m") == _snapshot(tmp_path / "full")


def test_merge_refuses_mixed_specs_and_unfinished_shards(cli, single, babel_sd_dir):
    root = single
    _generate(cli, root, babel_sd_dir, root / "s0", "--shard", "0/2")
    _generate(cli, root, babel_sd_dir, root / "s1-other", "--shard", "1/2", "--guidance", "5")
    code, out, err = cli("merge", root / "mixed", root / "s0", root / "s1-other")
    assert code == 2 and "holds another spec" in err and "params.guidance" in err
    assert len(err.strip().splitlines()) == 1
    assert not (root / "mixed").exists()

    info = json.loads((root / "s0" / "run.json").read_text())
    (root / "half").mkdir()
    (root / "half" / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    code, out, err = cli("merge", root / "m2", root / "s0", root / "half")
    assert code == 2 and "not complete" in err and not (root / "m2").exists()


@pytest.mark.parametrize("bad", ["3/3", "1", "-1/2", "a/b", "0/0"])
def test_bad_shard_exit_2(cli, single, babel_sd_dir, bad):
    code, out, err = cli("generate", "x", "--model", babel_sd_dir, "--out", single / "bad", "--shard", bad,
                         *FAST_ARGS)
    assert code == 2 and "--shard" in err and not (single / "bad").exists()


def test_ray_options_need_engine_ray(cli, single, babel_sd_dir):
    code, out, err = cli("generate", "x", "--model", babel_sd_dir, "--out", single / "bad2", "--workers", "2",
                         *FAST_ARGS)
    assert code == 2 and "--engine ray" in err


# -- Ray -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_ray_run_equals_single_process(cli, single, babel_sd_dir, ray_cluster):
    root = single
    if not (root / "single").is_dir():
        _generate(cli, root, babel_sd_dir, root / "single")
    _generate(cli, root, babel_sd_dir, root / "ray", "--engine", "ray", "--workers", "2", "--batch-size", "2")
    assert _snapshot(root / "ray") == _snapshot(root / "single")
    info = json.loads((root / "ray" / "run.json").read_text())
    assert info["engine"] == "ray" and info["workers"] == 2 and info["status"] == "complete"
    assert info["torch_threads"] == 1


@pytest.mark.slow
def test_killing_a_ray_actor_mid_run(single, babel_sd_dir, ray_cluster):
    """An actor killed while it works restarts and its batch is retried: no duplicate row, no
    partial file, the run completes (or a rerun completes it)."""
    from neobabel.engines import RayRunner
    from neobabel.pipeline import BabelPipeline
    from neobabel.runs import RunDir, generate_into_run, units_for

    ray = ray_cluster
    root = single
    pipe = BabelPipeline.from_pretrained(babel_sd_dir)
    params = pipe.resolve_params(2, None, 64, 64, None, None)
    units = units_for([("k", "a photo of a nurse", "en"), ("l", "una foto de una enfermera", "es")], 6, 0)
    run = RunDir(root / "ray-kill")

    def make_runner():
        return RayRunner(pipe, {"source": str(babel_sd_dir)}, params, run.path, workers=2, batch_size=1)

    runner = make_runner()
    killed = threading.Event()
    pngs_at_kill = []

    def kill_when_working():
        while runner.first_image_at is None and not killed.is_set():
            time.sleep(0.02)
        pngs_at_kill.append(len(list(run.images.glob("*.png"))))
        ray.kill(runner.actors[0], no_restart=False)
        killed.set()

    threading.Thread(target=kill_when_working, daemon=True).start()
    try:
        generate_into_run(pipe, units, run, params, progress=False, spec={"engine": "ray"}, runner=runner)
    except Exception as e:  # a retry that still failed: the rerun below must complete the run
        print(f"first run failed after the kill: {type(e).__name__}")
    finally:
        killed.set()
        runner.shutdown()
    assert pngs_at_kill and pngs_at_kill[0] < len(units), "the actor must be killed while images remain"
    print(f"killed at {pngs_at_kill[0]} PNGs; first run: {json.loads(run.run_json_path.read_text())['status']}")
    rerun = make_runner()
    try:
        report = generate_into_run(pipe, units, run, params, progress=False, spec={"engine": "ray"},
                                   runner=rerun)
    finally:
        rerun.shutdown()
    assert report.already_done + report.recovered + report.generated == len(units)
    df = pl.read_parquet(run.manifest_path)
    assert df.height == len(units) and df.select("key", "prompt_id").is_duplicated().sum() == 0
    leftovers = [p.name for p in run.images.iterdir() if not p.name.endswith(".png") or p.name.startswith(".")]
    assert leftovers == []
    assert json.loads(run.run_json_path.read_text())["status"] == "complete"
    # Every PNG is the single-process image of its key.
    single_run = RunDir(root / "ray-kill-single")
    generate_into_run(pipe, units, single_run, params, progress=False)
    assert _snapshot(run.path) == _snapshot(single_run.path)


def test_more_workers_than_the_cluster_holds_is_refused():
    """An actor holds its CPU/GPU for life: actors beyond the cluster's would never start."""
    from neobabel.engines import pool_size
    from neobabel.errors import InputError

    assert pool_size(None, 0, 2) == 2 and pool_size(None, 4, 16) == 4 and pool_size(1, 0, 2) == 1
    with pytest.raises(InputError, match="--workers 4 is more than the Ray cluster's 2 CPUs"):
        pool_size(4, 0, 2)
    with pytest.raises(InputError, match="2 GPUs"):
        pool_size(3, 2, 64)
