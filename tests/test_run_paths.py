"""Images are read only from inside their run directory, and never when they claim too many pixels.

A hand-made run whose manifest points outside it (an absolute path, a `..` that climbs out, a
symlink in images/ to a file elsewhere) gets error rows from `magbig classify` and `magbig
align`, and the outside file is never opened. A PNG whose header claims 144 megapixels is
refused from its header, without PIL's DecompressionBombWarning.
"""

from __future__ import annotations

import builtins
import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from magbig.classifiers import MAX_IMAGE_PIXELS, ImageRefusedError, classify_paths, read_image
from neobabel.runs import GENERATION_SCHEMA, PathOutsideRunError, resolve_in_run


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height 1-bit pixels (its data is never reached)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))
    return path


def _portrait(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


# key -> manifest path; the run has images/good.png and images/inner.png -> good.png
CASES = {
    "good": "images/good.png",
    "inner-link": "images/inner.png",
    "absolute": None,  # filled in: the outside file's absolute path
    "dotdot": "images/../../outside/secret.png",
    "link-out": "images/link-out.png",
    "huge": "images/huge.png",
}
REFUSED_PATHS = ("absolute", "dotdot", "link-out")


@pytest.fixture
def hostile_run(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = _portrait(outside / "secret.png")  # a readable image: only confinement keeps it out
    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    _portrait(run / "images" / "good.png")
    os.symlink("good.png", run / "images" / "inner.png")
    os.symlink(secret, run / "images" / "link-out.png")
    png_claiming(run / "images" / "huge.png", 12000, 12000)
    rows = []
    for key, path in CASES.items():
        rows.append({"key": key, "prompt_id": f"pilot/en/{key}", "lang": "en", "formulation": "direct",
                     "subject": "pilot", "text": "a photo of the face of a pilot", "seed": 0,
                     "path": str(secret) if key == "absolute" else path, "sha256": None, "seconds": 0.0,
                     "model": "hand-made"})
    pl.DataFrame(rows, schema=GENERATION_SCHEMA).write_parquet(run / "generations.parquet")
    return run, secret


@pytest.fixture
def opened(monkeypatch):
    """Every file name passed to open() while the test runs (PIL opens files through it)."""
    names: list[str] = []
    real_open = builtins.open

    def spy(file, *args, **kw):
        if isinstance(file, (str, os.PathLike)):
            names.append(os.path.realpath(os.fspath(file)))
        return real_open(file, *args, **kw)

    monkeypatch.setattr(builtins, "open", spy)
    return names


# -- the resolver -----------------------------------------------------------------------------

def test_resolve_in_run_confines_paths(hostile_run):
    run, secret = hostile_run
    assert resolve_in_run(run, "images/good.png") == (run / "images" / "good.png").resolve()
    assert resolve_in_run(run, "images/inner.png") == (run / "images" / "good.png").resolve()
    for bad in (str(secret), "images/../../outside/secret.png", "images/link-out.png", "..", ".", "", None):
        with pytest.raises(PathOutsideRunError):
            resolve_in_run(run, bad)
    # a run directory reached through a symlink is still the same run
    alias = run.parent / "alias"
    os.symlink(run, alias)
    assert resolve_in_run(alias, "images/good.png") == (run / "images" / "good.png").resolve()


def test_a_symlinked_images_folder_pointing_out_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "run" / "images")
    with pytest.raises(PathOutsideRunError, match="path outside the run directory"):
        resolve_in_run(tmp_path / "run", "images/x.png")


# -- magbig classify ---------------------------------------------------------------------------

@pytest.fixture
def magbig_main(monkeypatch, capsys):
    import signal

    from conftest import run_in_process

    from magbig import cli as magbig_cli

    old = signal.getsignal(signal.SIGTERM)
    yield run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)
    signal.signal(signal.SIGTERM, old)


def test_classify_refuses_paths_outside_the_run_and_huge_images(magbig_main, hostile_run, opened):
    run, secret = hostile_run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = magbig_main("classify", run, "--classifier", "world", "--no-progress")
    assert code == 0, err
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert str(secret.resolve()) not in opened
    labels = {r["key"]: r for r in pl.read_parquet(run / "labels.parquet").iter_rows(named=True)}
    for key in REFUSED_PATHS:
        assert labels[key]["status"] == "error"
        assert labels[key]["detail"].startswith("path outside the run directory"), labels[key]["detail"]
    assert labels["huge"]["status"] == "error" and labels["huge"]["detail"].startswith("image too large")
    assert labels["good"]["status"] != "error" and labels["inner-link"]["status"] != "error"
    assert json.loads(out)["statuses"]["error"] == 4


def test_classify_paths_caps_pixels_from_the_header(tmp_path, opened):
    big = png_claiming(tmp_path / "big.png", 5000, 4000)  # 20 MP: below PIL's bomb limit, above ours
    bomb = png_claiming(tmp_path / "bomb.png", 12000, 12000)  # 144 MP: PIL would warn
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = classify_paths([big, bomb, _portrait(tmp_path / "ok.png")], "world")
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert df["status"].to_list()[:2] == ["error", "error"] and df["status"][2] != "error"
    assert "5000x4000 (20.0 MP; limit 16 MP)" in df["detail"][0]
    assert "image too large" in df["detail"][1] and "144000000 pixels" in df["detail"][1]
    with pytest.raises(ImageRefusedError):
        read_image(big)
    assert MAX_IMAGE_PIXELS == 16_000_000
    # Under a higher limit the header passes and decoding starts (and fails: the data is fake).
    with pytest.raises(Exception) as e:
        read_image(big, max_pixels=25_000_000)
    assert not isinstance(e.value, ImageRefusedError)


# -- magbig align ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from magbig.testing import build_clip_model

    return build_clip_model(tmp_path_factory.mktemp("clip") / "tiny-clip")


def test_align_refuses_paths_outside_the_run_and_huge_images(magbig_main, hostile_run, clip_dir, opened):
    run, secret = hostile_run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = magbig_main("align", run, "--model", clip_dir, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert str(secret.resolve()) not in opened
    rows = {r["key"]: r for r in pl.read_parquet(run / "alignment.parquet").iter_rows(named=True)}
    for key in REFUSED_PATHS:
        assert rows[key]["clip_cos_own"] is None
        assert rows[key]["detail"].startswith("image refused: path outside the run directory"), rows[key]["detail"]
    assert rows["huge"]["detail"].startswith("image refused: image too large")
    assert rows["good"]["clip_cos_own"] is not None and rows["inner-link"]["clip_cos_own"] is not None
    assert json.loads((run / "run.json").read_text())["alignment"]["refused_images"] == 4
