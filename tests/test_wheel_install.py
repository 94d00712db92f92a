"""A wheel built from the checkout works outside it: package data (presets, audit configs, the
world model, report templates, prompt tables) ships inside, and the README's commands run from a
directory that is not the repository.

The wheel is installed into a fresh virtualenv without its dependencies; the test environment's
site-packages is appended to that venv's path by a plain path line in a .pth file, which adds
the directory but does not run the .pth files inside it. So the editable install of the
checkout is invisible there: `neobabel` can only come from the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _checkout_files() -> list[str]:
    """Tracked files plus untracked ones git does not ignore: what a clean checkout would hold."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                         capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p]


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for rel in _checkout_files():
        p, dst = REPO / rel, src / rel
        if not p.exists() and not p.is_symlink():
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            dst.symlink_to(os.readlink(p))
        else:
            shutil.copy2(p, dst)
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(dist), str(src)], check=True, capture_output=True)
    wheel = next(dist.glob("neobabel-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                    "--target", str(site), str(wheel)], check=True, capture_output=True)
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py


def _run(py: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(py), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_package_comes_from_the_wheel(wheel_python, tmp_path):
    res = _run(wheel_python, tmp_path, "-c", "import neobabel, magbig; print(neobabel.__file__); print(magbig.__file__)")
    assert res.returncode == 0, res.stderr
    for line in res.stdout.split():
        assert str(REPO) not in line and "site-packages" in line


def test_generate_and_quick_audit_run_outside_the_repo(wheel_python, tmp_path):
    gen = _run(wheel_python, tmp_path, "-m", "neobabel.cli", "generate", "a photo of a red circle", "--lang", "en",
               "-n", "2", "--out", "runs/gen", "--no-progress")
    assert gen.returncode == 0, gen.stderr
    assert len(list((tmp_path / "runs/gen/images").glob("*.png"))) == 2
    audit = _run(wheel_python, tmp_path, "-m", "magbig.cli", "audit", "--config", "configs/audits/quick.yaml",
                 "--langs", "en,de", "--subjects", "doctor,nurse", "-n", "2", "--out", "runs/audit", "--no-progress")
    assert audit.returncode == 0, audit.stderr
    assert (tmp_path / "runs/audit/report.html").is_file()
    assert (tmp_path / "runs/audit/labels.parquet").is_file()
    # the shipped configs are also found by name
    by_name = _run(wheel_python, tmp_path, "-m", "magbig.cli", "audit", "--config", "quick", "--langs", "en",
                   "--subjects", "doctor", "-n", "1", "--out", "runs/audit-by-name", "--no-progress")
    assert by_name.returncode == 0, by_name.stderr


def test_the_explorer_ships_in_the_wheel_and_magbig_explore_finds_it(wheel_python, tmp_path):
    res = _run(wheel_python, tmp_path, "-c", "from magbig.cli import explorer_script; import magbig, sys; "
               "print(explorer_script()); print(magbig.__file__); print('apps' in sys.modules)")
    assert res.returncode == 0, res.stderr
    script, magbig_file, imported = res.stdout.split()
    assert str(REPO) not in script and Path(script).name == "explorer.py" and Path(script).is_file()
    assert Path(script).parent.parent == Path(magbig_file).parent.parent  # apps/ beside magbig/
    assert (Path(script).parent / "data.py").is_file()
    assert imported == "False"  # located by path, not imported
