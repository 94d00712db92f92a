"""The import-linter contracts in pyproject.toml hold, and they do fail when a forbidden import
is added (checked on a temporary copy of the packages, so the checkout is never touched)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is a dev dependency")


def _lint(root: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first: grimp finds the packages through the import system, so the copy wins
    # over the editable install of the checkout.
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "250"}  # one line per contract
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def _copy(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "weights", "*.safetensors", "data")
    for pkg in ("neobabel", "magbig", "apps"):
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=ignore, symlinks=True)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_line(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def _verdict(out: str, contract: str) -> str:
    """KEPT or BROKEN, from the contract's line in the summary."""
    verdicts = [re.search(r" (KEPT|BROKEN)\b", x) for x in out.splitlines() if x.startswith(contract)]
    return next(v.group(1) for v in verdicts if v)


def test_the_checkout_keeps_every_contract():
    res = _lint(REPO)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "BROKEN" not in res.stdout


def test_a_forbidden_import_breaks_its_contract(tmp_path):
    root = _copy(tmp_path)
    _add_line(root / "neobabel" / "errors.py", "import magbig.stats  # forbidden: neobabel -> magbig")
    _add_line(root / "neobabel" / "pipeline.py", "import neobabel.testing  # forbidden: library -> fixtures")
    res = _lint(root)
    assert res.returncode != 0
    assert "neobabel.errors -> magbig.stats" in res.stdout
    assert "neobabel.pipeline -> neobabel.testing" in res.stdout
    assert _verdict(res.stdout, "neobabel never imports magbig") == "BROKEN"
    assert _verdict(res.stdout, "library code never imports the test fixtures") == "BROKEN"


def test_an_upward_import_inside_neobabel_breaks_the_layers(tmp_path):
    root = _copy(tmp_path)
    _add_line(root / "neobabel" / "languages.py", "import neobabel.pipeline  # upward: vocabulary -> pipeline")
    res = _lint(root)
    assert res.returncode != 0
    assert "neobabel.languages -> neobabel.pipeline" in res.stdout
    assert _verdict(res.stdout, "neobabel's layers") == "BROKEN"


def test_importing_the_explorer_from_magbig_breaks_the_apps_layer(tmp_path):
    root = _copy(tmp_path)
    _add_line(root / "magbig" / "cli.py", "import apps.data  # forbidden: magbig -> apps (apps sits on top)")
    res = _lint(root)
    assert res.returncode != 0
    assert "magbig.cli -> apps.data" in res.stdout
    assert _verdict(res.stdout, "apps (the explorer) sits on top") == "BROKEN"
