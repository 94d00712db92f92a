"""Shared, offline fixtures: tiny random models built ONCE per session under pytest's tmp dir.

Every model the tests load goes through the same `from_pretrained` paths users hit
(neobabel.testing writes ordinary diffusers/transformers folders). Nothing touches the network
or ~/.cache: NEOBABEL_CACHE points into the session's tmp dir (the `tiny-random` builtin is
built there) and the Hugging Face libraries are forced offline.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

# Fast sampling settings used across the suite: 64x64 images, 2 steps, real CFG (guidance > 1).
FAST = {"steps": 2, "guidance": 3.0, "width": 64, "height": 64}

_ENV_KEYS = ("NEOBABEL_CACHE", "NEOBABEL_MODELS_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
             "HF_DATASETS_OFFLINE")


def pytest_configure(config):
    # Read by huggingface_hub / transformers at import time, so set before test modules import them.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    # One intra-op thread: on a small shared CI box (2 cores, other jobs) torch's spinning
    # worker threads made the suite 5x slower. Subprocesses (CLI tests) inherit it. Set before
    # any test module imports torch; override by exporting OMP_NUM_THREADS.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory):
    """NEOBABEL_CACHE in tmp for the whole session (subprocesses inherit it); no user presets."""
    old = {k: os.environ.get(k) for k in _ENV_KEYS}
    os.environ["NEOBABEL_CACHE"] = str(tmp_path_factory.mktemp("neobabel-cache"))
    os.environ.pop("NEOBABEL_MODELS_DIR", None)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def fast() -> dict:
    return dict(FAST)


# -- fixture models (built once per session) ----------------------------------------------

@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def xlmr_dir(models_root) -> Path:
    from neobabel.testing import build_xlmr_encoder

    return build_xlmr_encoder(models_root / "xlmr")


@pytest.fixture(scope="session")
def tiny_sd_dir(models_root) -> Path:
    """A native diffusers StableDiffusionPipeline folder (its own CLIP text encoder)."""
    from neobabel.testing import build_tiny_sd

    return build_tiny_sd(models_root / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_sdxl_dir(models_root) -> Path:
    """A native diffusers StableDiffusionXLPipeline folder (two CLIP text encoders)."""
    from neobabel.testing import build_tiny_sdxl

    return build_tiny_sdxl(models_root / "tiny-sdxl")


@pytest.fixture(scope="session")
def babel_sd_dir(models_root) -> Path:
    """A saved BabelPipeline: tiny XLM-R tower + tiny SD backbone."""
    from neobabel.testing import build_tiny_babel

    return build_tiny_babel(models_root / "babel-sd", family="sd")


@pytest.fixture(scope="session")
def babel_sdxl_dir(models_root) -> Path:
    """A saved BabelPipeline: tiny XLM-R tower (with pooled output) + tiny SDXL backbone."""
    from neobabel.testing import build_tiny_babel

    return build_tiny_babel(models_root / "babel-sdxl", family="sdxl")


@pytest.fixture(scope="session")
def tiny_random_dir(_isolated_env) -> Path:
    """The `tiny-random` builtin, built into the session's NEOBABEL_CACHE."""
    from neobabel.registry import builtin_model_path

    return builtin_model_path("tiny-random")


@pytest.fixture
def load():
    """Load a fresh BabelPipeline (cheap: ~0.05 s) so scheduler swaps never leak across tests."""
    from neobabel.pipeline import BabelPipeline

    def _load(source, **kw):
        return BabelPipeline.from_pretrained(source, **kw)

    return _load


# -- the CLI in-process, with its real exit-code contract ------------------------------------

def run_in_process(monkeypatch, capsys, prog: str, main):
    """A function running `prog ARGS` through `main` (run_cli) -> (exit code, stdout, stderr)."""
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")

    def _run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", [prog, *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `neobabel ARGS` through neobabel.cli.main (run_cli) -> (exit code, stdout, stderr)."""
    from neobabel import cli as cli_mod

    old_term = signal.getsignal(signal.SIGTERM)  # run_cli installs its own SIGTERM handler
    yield run_in_process(monkeypatch, capsys, "neobabel", cli_mod.main)
    signal.signal(signal.SIGTERM, old_term)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for one test module (skipped without the [ray] extra)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
