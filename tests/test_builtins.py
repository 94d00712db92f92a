"""neobabel.builtins: the embedded models, built by the library alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from neobabel import builtins

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_random_builds_without_the_test_helpers(tmp_path, monkeypatch, babel_sd_dir):
    monkeypatch.setenv("NEOBABEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "neobabel.testing", None)  # any import of it now fails
    path = builtins.builtin_model_path("tiny-random")
    assert path == tmp_path / "cache" / "fixtures" / builtins.TINY_RANDOM_VERSION
    assert not [p for p in path.parent.iterdir() if p != path]  # helper and temporary folders gone

    from neobabel.pipeline import BabelPipeline

    pipe = BabelPipeline.from_pretrained(path)
    assert (pipe.mode, pipe.family, pipe.name) == ("tower", "sd", "tiny-babel-sd")
    # The same model as the test suite's SD fixture: one set of builders, same seeds, same bytes.
    weights = sorted(p.relative_to(path) for p in path.rglob("*.safetensors"))
    assert len(weights) == 4  # unet, vae, tower adapter, tower encoder
    for rel in weights:
        assert (path / rel).read_bytes() == (babel_sd_dir / rel).read_bytes(), rel


def test_listing_presets_loads_no_torch():
    """The registry imports builtins; the builders' heavy imports must stay inside them."""
    code = "import sys, neobabel.registry as R; R.list_presets(); print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"
