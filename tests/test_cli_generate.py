"""`neobabel generate` end to end: real processes on fixture models, resume, and every bad input.

The subprocess runs (each pays ~4 s of imports) are started together, once per module; the
rest of the bad-input matrix runs in-process through `neobabel.cli.main`, the same exit-code
contract (`run_cli`) a console script goes through.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from neobabel.registry import folder_fingerprint
from neobabel.runs import read_png_metadata

DESIGN_COLUMNS = ["key", "prompt_id", "lang", "formulation", "subject", "text", "seed", "path", "sha256",
                  "seconds"]
FAST_ARGS = ["--steps", "2", "--size", "64x64", "--no-progress"]
PROMPT_CSV = ("id,lang,prompt\n"
              "doc-hi,hi,एक डॉक्टर के चेहरे की तस्वीर\n"
              "doc-zh,Chinese,\"一张医生的脸部照片, 特写\"\n"
              "doc-fr,,une photo du visage d'un médecin\n")


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "neobabel.cli", *map(str, args)]


class Proc:
    def __init__(self, args, cwd: Path, env: dict | None = None, unset: tuple[str, ...] = ()):
        cwd.mkdir(parents=True, exist_ok=True)
        self.cwd = cwd
        environ = {k: v for k, v in os.environ.items() if k not in unset}
        self.p = subprocess.Popen(_cmd(*args), cwd=cwd, env={**environ, **(env or {})},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  encoding="utf-8")

    def result(self, timeout: float = 120):
        if not hasattr(self, "out"):
            self.out, self.err = self.p.communicate(timeout=timeout)
            self.code = self.p.returncode
        return self

    def __repr__(self):
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, babel_sd_dir, tiny_random_dir):
    """Start the CLI processes at once (they are independent); ~3 imports' worth of wall time."""
    root = tmp_path_factory.mktemp("cli")
    # Mark this session's tiny-random build so its fingerprint (the revision run.json records)
    # proves the process used it, not a build of the same bytes in ~/.cache.
    (tiny_random_dir / "session-marker.txt").write_text(str(root), encoding="utf-8")
    (root / "prompts.csv").write_text(PROMPT_CSV, encoding="utf-8")
    hf_env = {"HF_HOME": str(root / "empty-hf-home")}
    hf_unset = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")  # so HF_HOME alone decides the cache
    procs = {
        # --model <saved BabelPipeline folder>, --prompts with per-row languages, progress bar on.
        "file": Proc(["generate", "--prompts", root / "prompts.csv", "--lang", "fr", "--steps", "2",
                      "--size", "64x64", "--batch-size", "2", "--model", babel_sd_dir, "--out", root / "run2"],
                     root / "cwd-file"),
        # The built-in preset (built into this session's NEOBABEL_CACHE by the tiny_random_dir fixture).
        "tiny": Proc(["generate", "a photo of a cat", "--model", "tiny-random", "--out", root / "run3",
                      "--no-progress"], root / "cwd-tiny"),
        # Bad input in a real process: a preset whose weights are not in the (empty) HF_HOME.
        "no-weights": Proc(["generate", "a photo of a cat", "--model", "sd15"], root / "cwd-sd15", hf_env,
                           hf_unset),
    }
    for p in procs.values():
        p.result()
    return root, procs


def _stamps(run: Path) -> dict[str, tuple[int, int]]:
    """Identity of each PNG on disk: an atomic rewrite makes a new inode."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (run / "images").glob("*.png")}


def _manifest(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "generations.parquet")


def _check_run_dir(run: Path, n: int) -> pl.DataFrame:
    files = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    df = _manifest(run)
    assert files == sorted(["run.json", "generations.parquet", *(f"images/{k}.png" for k in df["key"])])
    assert df.height == n and df["key"].n_unique() == n
    assert set(DESIGN_COLUMNS) <= set(df.columns)
    for row in df.iter_rows(named=True):
        png = run / row["path"]
        assert row["sha256"] == hashlib.sha256(png.read_bytes()).hexdigest()
        with Image.open(png) as im:
            im.load()
            assert im.size == (64, 64)
        meta = read_png_metadata(png)
        assert (meta["prompt"], meta["lang"], meta["seed"]) == (row["text"], row["lang"], str(row["seed"]))
    return df


# -- successful runs ---------------------------------------------------------------------------

def test_generate_from_a_prompts_file_with_row_langs(runs, babel_sd_dir):
    root, procs = runs
    p = procs["file"]
    assert p.code == 0, p
    assert "3 generated" in p.out
    df = _check_run_dir(root / "run2", 3)
    langs = dict(zip(df["prompt_id"], df["lang"]))
    assert langs == {"doc-hi": "hi", "doc-zh": "zh", "doc-fr": "fr"}  # blank lang -> --lang fr
    texts = dict(zip(df["prompt_id"], df["text"]))
    assert texts["doc-zh"] == "一张医生的脸部照片, 特写"
    info = json.loads((root / "run2" / "run.json").read_text(encoding="utf-8"))
    assert info["status"] == "complete"
    assert info["langs"] == ["fr", "hi", "zh"] and info["batch_size"] == 2
    assert info["prompts"]["count"] == 3
    assert info["prompts"]["sha256"] == hashlib.sha256((root / "prompts.csv").read_bytes()).hexdigest()
    assert info["model"]["mode"] == "tower"
    assert info["model"]["revision"] == folder_fingerprint(babel_sd_dir)
    assert info["params"]["steps"] == 2 and info["params"]["width"] == 64
    assert info["attention"] == "sdpa" and info["batch_invariant"] is True
    assert info["versions"]["torch"] and info["versions"]["diffusers"]


def test_rerun_of_the_same_command_generates_nothing(runs, cli, babel_sd_dir):
    """Resume across processes: the run the subprocess wrote is complete, nothing is redone."""
    root, procs = runs
    assert procs["file"].code == 0, procs["file"]
    before = _stamps(root / "run2")
    code, out, err = cli("generate", "--prompts", root / "prompts.csv", "--lang", "fr", "--steps", "2",
                         "--size", "64x64", "--batch-size", "3", "--model", babel_sd_dir, "--out", root / "run2",
                         "--no-progress")
    assert code == 0, err
    assert "0 generated, 3 already there" in out
    assert _stamps(root / "run2") == before
    _check_run_dir(root / "run2", 3)
    info = json.loads((root / "run2" / "run.json").read_text(encoding="utf-8"))
    assert [i["generated"] for i in info["invocations"]] == [3, 0]


def test_generate_with_the_tiny_random_preset(runs, tiny_random_dir):
    root, procs = runs
    p = procs["tiny"]
    assert p.code == 0, p
    assert "UNTRAINED" in p.err
    _check_run_dir(root / "run3", 1)
    info = json.loads((root / "run3" / "run.json").read_text(encoding="utf-8"))
    assert info["model"]["mode"] == "tower"
    # It ran on the build in this session's NEOBABEL_CACHE, not one in ~/.cache.
    assert info["model"]["revision"] == folder_fingerprint(tiny_random_dir)
    assert info["params"]["scheduler"] == "ddim" and info["params"]["steps"] == 4


# -- bad input in a real process ------------------------------------------------------------

def _assert_bad_input(code: int, out: str, err: str, *needles: str):
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in err


def test_missing_preset_weights_process(runs):
    root, procs = runs
    p = procs["no-weights"]
    _assert_bad_input(p.code, p.out, p.err, "stable-diffusion-v1-5/stable-diffusion-v1-5", "HF_HOME",
                      "--model PATH", str(root / "empty-hf-home"))
    assert not (p.cwd / "runs").exists()


# -- in-process: the same contract, cheaply ---------------------------------------------------

def test_overwrite_and_default_out(cli, babel_sd_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["generate", "ein Foto von drei roten Kreisen", "--lang", "German", "-n", "2", *FAST_ARGS,
            "--model", babel_sd_dir]
    code, out, err = cli(*args)
    assert code == 0, err
    assert "2 generated" in out
    (run,) = (tmp_path / "runs").iterdir()  # the default --out, named after the model
    assert run.name.startswith(babel_sd_dir.name)
    before = _stamps(run)
    code, out, _ = cli(*args)
    assert code == 0 and "0 generated" in out
    assert len(list((tmp_path / "runs").iterdir())) == 1  # same command -> same run directory
    code, out, _ = cli(*args, "--overwrite")
    assert code == 0 and "2 generated" in out
    after = _stamps(run)
    assert sorted(after) == sorted(before) and all(after[k] != before[k] for k in before)
    df = _check_run_dir(run, 2)
    assert set(df["lang"]) == {"de"} and sorted(df["seed"]) == [0, 1]  # "German" normalised
    assert [i["generated"] for i in json.loads((run / "run.json").read_text())["invocations"]] == [2, 0, 2]


def test_negative_prompt_and_scheduler_options(cli, babel_sd_dir, tmp_path):
    code, _, err = cli("generate", "a cat", *FAST_ARGS, "--model", babel_sd_dir, "--out", tmp_path / "r",
                       "--negative-prompt", "blurry", "--scheduler", "dpm++", "--guidance", "4")
    assert code == 0, err
    params = json.loads((tmp_path / "r" / "run.json").read_text())["params"]
    assert (params["negative_prompt"], params["scheduler"], params["guidance"]) == ("blurry", "dpm++", 4.0)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


BAD_INPUTS = {
    "unknown lang": (["a photo", "--lang", "xx"], ["'xx'", "en, de, fr"]),
    "missing model path": (["a photo", "--model", "./no/such/model"], ["no/such/model"]),
    "unknown preset": (["a photo", "--model", "nosuchpreset"], ["'nosuchpreset'"]),
    "preset weights missing": (["a photo", "--model", "sdxl"], ["stabilityai/stable-diffusion-xl-base-1.0",
                                                               "HF_HOME"]),
    "size not multiple of 8": (["a photo", "--size", "63x64"], ["63"]),
    "size not WxH": (["a photo", "--size", "big"], ["'big'"]),
    "n zero": (["a photo", "-n", "0"], ["-n", "got 0"]),
    "steps zero": (["a photo", "--steps", "0"], ["--steps", "got 0"]),
    "negative guidance": (["a photo", "--guidance", "-2"], ["--guidance", "-2"]),
    "prompt and file": (["a photo", "--prompts", "PROMPTS_FILE"], ["PROMPT", "--prompts"]),
    "neither prompt nor file": ([], ["PROMPT", "--prompts"]),
    "empty prompt": (["   "], ["empty"]),
    "malformed prompts file": (["--prompts", "BAD_FILE"], ["bad.jsonl", "line 2"]),
    "prompts file lang": (["--prompts", "BAD_LANG_FILE"], ["badlang.csv", "line 3", "'xx'"]),
    "missing prompts file": (["--prompts", "MISSING_FILE"], ["missing.txt"]),
    "xformers on cpu": (["a photo", "--attention", "xformers"], ["xformers", "sdpa"]),
    "cuda without cuda": (["a photo", "--device", "cuda"], ["cuda"]),
    "out is a file": (["a photo", "--out", "OUT_FILE"], ["taken.txt"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exit_2_one_line_nothing_written(case, cli, babel_sd_dir, tmp_path, monkeypatch,
                                                   empty_hf_cache):
    if case == "cuda without cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    args, needles = BAD_INPUTS[case]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    files = {
        "PROMPTS_FILE": ("ok.txt", "a photo\n"),
        "BAD_FILE": ("bad.jsonl", '{"prompt": "ok"}\n{"prompt": oops}\n'),
        "BAD_LANG_FILE": ("badlang.csv", "prompt,lang\na,de\nb,xx\n"),
        "OUT_FILE": ("taken.txt", "not a directory"),
    }
    resolved = []
    for a in args:
        if a in files:
            name, text = files[a]
            (tmp_path / name).write_text(text, encoding="utf-8")
            a = str(tmp_path / name)
        elif a == "MISSING_FILE":
            a = str(tmp_path / "missing.txt")
        resolved.append(a)
    extra = [] if "--model" in resolved else ["--model", str(babel_sd_dir)]
    if "--steps" not in resolved:
        extra += ["--steps", "2"]
    if "--size" not in resolved:
        extra += ["--size", "64x64"]
    code, out, err = cli("generate", *resolved, *extra)
    _assert_bad_input(code, out, err, *needles)
    assert "error" in err
    assert list(work.iterdir()) == []  # no runs/ directory, nothing at all
    if "--out" in resolved:
        assert (tmp_path / "taken.txt").read_text() == "not a directory"


def test_bad_scheduler_writes_nothing(cli, babel_sd_dir, tmp_path):
    code, out, err = cli("generate", "a photo", *FAST_ARGS, "--model", babel_sd_dir, "--out", tmp_path / "r",
                         "--scheduler", "bogus")
    _assert_bad_input(code, out, err, "'bogus'")
    assert not (tmp_path / "r").exists()


def test_sampler_that_cannot_run_writes_nothing(cli, babel_sd_dir, tmp_path):
    # diffusers' PNDM fails mid-run below 4 steps: refused before the run directory exists
    args = [a for a in FAST_ARGS if a not in ("--steps", "2")]
    code, out, err = cli("generate", "a photo", *args, "--steps", "3", "--model", babel_sd_dir,
                         "--out", tmp_path / "r", "--scheduler", "pndm")
    _assert_bad_input(code, out, err, "--steps >= 4")
    assert not (tmp_path / "r").exists()


def test_bad_batch_size_writes_nothing(cli, babel_sd_dir, tmp_path):
    code, out, err = cli("generate", "a photo", *FAST_ARGS, "--model", babel_sd_dir, "--out", tmp_path / "r",
                         "--batch-size", "0")
    _assert_bad_input(code, out, err, "--batch-size")
    assert not (tmp_path / "r").exists()
