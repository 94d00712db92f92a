"""The GPU speed benchmark (benchmarks/bench_sd15_gpu.py, issue 24) dry-run on CPU with --tiny.

No GPU is lent to most sessions, and the one that gets one runs the script once: every code path
(bare vs ours, attention/layout options, batch sweep, torch.compile, tower overhead, FLOP count,
matmul limit, goals, the time budget) must already work, and the JSON must hold every field the
GPU run reports. Timings here are meaningless; the tests check structure and arithmetic.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sd15_gpu.py"
pytestmark = pytest.mark.slow

GOAL_NAMES = ["speedup_vs_bare_diffusers", "fraction_of_bf16_matmul", "tower_overhead_pct",
              "peak_memory_vs_diffusers"]
SUMMARY_FIELDS = ["bare_b1_images_per_s", "best", "best_images_per_s", "best_batch", "speedup_vs_bare",
                  "speedup_vs_bare_same_batch", "wrapper_ratio_b1", "achieved_tflops", "fraction_of_matmul",
                  "tower_overhead_pct", "peak_gib_ours", "peak_gib_bare", "memory_basis", "memory_ratio"]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_sd15_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # Loaded afresh per run: its budget clock starts at import. Dataclasses need it registered.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(tmp: Path, *args: str, out: Path | None = None) -> tuple[dict, dict]:
    """(returned report, report read back from --json)."""
    bench = _load_bench()
    path = tmp / "bench.json"
    with pytest.MonkeyPatch.context() as mp:
        if out is None:
            mp.delenv("OUT", raising=False)
        else:
            mp.setenv("OUT", str(out))
        returned = bench.main(["--tiny", "--json", str(path), *args])
    return returned, json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench-full")
    # Two dtypes, as on the GPU (float16, bfloat16): the second reuses the first's choices.
    returned, written = _run(tmp, "--dtypes", "float32,bfloat16", out=tmp / "out")
    return tmp, returned, written


def test_tiny_run_measures_every_configuration(full):
    tmp, returned, report = full
    assert report["complete"] is True, (report["skipped"], report["errors"])
    assert report["errors"] == [] and report["skipped"] == []
    # $OUT gets the same report the --json path got (the device tool brings $OUT back).
    assert json.loads((tmp / "out" / "bench_sd15_gpu.json").read_text()) == report
    assert report["runs"] == returned["runs"]
    labels = {r["label"] for r in report["runs"] if r["dtype"] == "float32"}
    best_batch = report["summary"]["float32"]["best_batch"]
    assert {"bare+native+sdpa@b1", "ours+native+sdpa@b1", "ours+native+sdpa+channels_last@b1"} <= labels
    assert any(r["pipeline"] == "ours" and r["batch"] == 2 and not r["compiled"] for r in report["runs"])
    if best_batch != 1:
        assert f"bare+native+sdpa@b{best_batch}" in labels
    compiled = [r for r in report["runs"] if r["compiled"] and not r["paired"] and r["dtype"] == "float32"]
    assert len(compiled) == 1 and compiled[0]["batch"] == best_batch
    pair = {r["mode"]: r for r in report["runs"] if r["paired"] and r["dtype"] == "float32"}
    assert set(pair) == {"native", "tower"} and pair["tower"]["compiled"] is True
    for run in report["runs"]:
        assert run["images_per_s"] > 0
        assert math.isclose(run["images_per_s"] * run["s_per_image"], 1.0, rel_tol=1e-2)
        assert run["peak_gib"] is None  # CPU: no allocator statistics; a number on the GPU


def test_second_dtype_reuses_the_first_dtypes_choices(full):
    _, _, report = full
    first = report["summary"]["float32"]
    best_first = next(r for r in report["runs"] if r["label"] == first["best"] and r["dtype"] == "float32")
    second = [r for r in report["runs"] if r["dtype"] == "bfloat16" and r["pipeline"] == "ours" and not r["paired"]]
    # one attention/layout (the first dtype's best), no second sweep: batch 1 and the best batch only
    assert {(r["attention"], r["channels_last"]) for r in second} == {(best_first["attention"],
                                                                       best_first["channels_last"])}
    assert {r["batch"] for r in second} == {1, first["best_batch"]}
    assert set(report["compile"]) == set(report["tower"]) == set(report["goals"]) == {"float32", "bfloat16"}


def test_tiny_run_counts_flops_and_fractions(full):
    _, _, report = full
    flops = report["flops"]
    steps = report["settings"]["steps"]
    assert flops["unet_cfg_step"] > 0 and flops["vae_decode"] > 0 and flops["text_encoders"] > 0
    assert flops["unet"] == flops["unet_cfg_step"] * steps
    assert flops["per_image"] == flops["unet"] + flops["vae_decode"] + flops["text_encoders"]
    assert flops["per_image_tower_mode"] == flops["unet"] + flops["vae_decode"] + flops["tower_encoders"]
    assert flops["issue_estimate_tflop"] == 40.0
    matmul = report["matmul"]["tflops"]
    assert matmul > 0
    for run in report["runs"]:
        per_image = flops["per_image_tower_mode" if run["mode"] == "tower" else "per_image"]
        assert math.isclose(run["achieved_tflops"], run["images_per_s"] * per_image / 1e12, rel_tol=1e-3)
        assert math.isclose(run["fraction_of_matmul"], run["achieved_tflops"] / matmul, rel_tol=1e-3)


def test_tiny_run_reports_compile_tower_summary_and_goals(full):
    _, _, report = full
    compile_ = report["compile"]["float32"]
    assert compile_["backend"] == "eager" and compile_["first_call_s"] >= compile_["compile_s"]
    assert math.isclose(compile_["first_call_s"] - compile_["steady_call_s"], compile_["compile_s"], abs_tol=0.02)
    tower = report["tower"]["float32"]
    assert math.isclose(tower["overhead_pct"],
                        100 * (tower["tower_s_per_image"] / tower["native_s_per_image"] - 1), abs_tol=0.05)
    assert tower["clip_encode_s"] > 0 and tower["tower_encode_s"] > 0
    summary = report["summary"]["float32"]
    assert list(summary) == SUMMARY_FIELDS
    ours = [r for r in report["runs"] if r["pipeline"] == "ours" and r["mode"] == "native" and not r["paired"]]
    best = max(ours, key=lambda r: r["images_per_s"])
    # the JSON rounds images/s, so two tiny runs can tie there; the summary picks one of them
    assert summary["best"] in {r["label"] for r in ours if r["images_per_s"] == best["images_per_s"]}
    best = next(r for r in ours if r["label"] == summary["best"])
    assert math.isclose(summary["speedup_vs_bare"], best["images_per_s"] / summary["bare_b1_images_per_s"],
                        rel_tol=1e-2)
    assert summary["fraction_of_matmul"] == best["fraction_of_matmul"]
    assert summary["tower_overhead_pct"] == tower["overhead_pct"]
    assert summary["memory_ratio"] is None  # no GPU memory statistics on CPU
    goals = {g["name"]: g for g in report["goals"]["float32"]}
    assert list(goals) == GOAL_NAMES
    assert goals["speedup_vs_bare_diffusers"]["pass"] == (summary["speedup_vs_bare"] >= 2.0)
    assert goals["fraction_of_bf16_matmul"]["pass"] == (summary["fraction_of_matmul"] >= 0.40)
    assert goals["tower_overhead_pct"]["pass"] == (summary["tower_overhead_pct"] <= 2.0)
    assert goals["peak_memory_vs_diffusers"]["pass"] is None  # "not measured", never a silent pass


def test_budget_skips_what_does_not_fit_and_keeps_the_rest(tmp_path):
    # A compile assumed to take a day never fits: it is skipped, everything else is measured.
    _, report = _run(tmp_path, "--compile-estimate-s", "86400")
    best_batch = report["summary"]["float32"]["best_batch"]
    assert [s["step"] for s in report["skipped"]] == [f"float32: compile b{best_batch}"]
    assert report["complete"] is False and report["compile"] == {}
    assert not any(r["compiled"] for r in report["runs"])
    assert report["tower"]["float32"]["compiled_unet"] is False
    assert report["summary"]["float32"]["speedup_vs_bare"] is not None


def test_zero_budget_still_writes_a_report(tmp_path):
    _, report = _run(tmp_path, "--budget-s", "0")
    assert report["runs"] == [] and report["complete"] is False
    assert [s["step"] for s in report["skipped"]] == ["matmul", "float32: build"]
    assert report["summary"] == {} and report["goals"] == {}


def test_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown dtype 'fp8'"):
        _run(tmp_path, "--dtypes", "fp8")
    assert not (tmp_path / "bench.json").exists()


def test_a_failing_configuration_is_recorded_and_the_rest_still_runs(tmp_path):
    # A compile that fails (here: a backend torch does not know; on the GPU, say, an inductor
    # error) is an error entry; the tower step after it still runs on the eager UNet.
    _, report = _run(tmp_path, "--compile-backend", "no-such-backend")
    assert [e["step"].split(":")[1].split()[0] for e in report["errors"]] == ["compile"]
    assert report["complete"] is False and report["compile"] == {}
    assert report["tower"]["float32"]["compiled_unet"] is False
    assert report["goals"]["float32"][2]["value"] is not None  # tower overhead measured
