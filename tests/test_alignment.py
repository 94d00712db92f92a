"""magbig.alignment: raw CLIP cosine of each image with its English and its own prompt text.

A tiny random CLIPModel (magbig.testing.build_clip_model) and a run directory written by
hand (PNGs + generations.parquet with the run-directory columns), plus one small oracle
audit for the report path. Random weights: the numbers mean nothing about alignment; the
tests check the definition (raw cosine, against an independent computation), the English-text
rule, resumption, errors and the report wiring.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from PIL import Image
from polars.testing import assert_frame_equal

from magbig import alignment as AL
from magbig.testing import build_clip_model
from neobabel.errors import InputError
from neobabel.runs import GENERATION_SCHEMA

# (prompt_id, text, key, seed); the two fr prompts share one image (same text, lang, seed).
PROMPTS = [
    ("pilot/en/direct", "A photo of the face of a pilot.", None),
    ("pilot/en/indirect", "A photo of the face of a person who flies airplanes as a profession.", None),
    ("pilot/de/direct", "Ein Foto vom Gesicht eines Piloten.", None),
    ("pilot/de/indirect", "Ein Foto vom Gesicht einer Person, die beruflich Flugzeuge fliegt.", None),
    ("pilot/de/feminine", "Ein Foto vom Gesicht einer Pilotin.", None),
    ("nurse/de/direct", "Ein Foto vom Gesicht eines Krankenpflegers.", None),  # English from builtin
    ("nurse/de/indirect", "Ein Foto vom Gesicht einer Person, die beruflich Kranke pflegt.", None),
    ("zzunknown/de/direct", "Ein Foto vom Gesicht eines Zzz.", None),  # no English anywhere
    # Devanagari: byte-level BPE tokens, longer than CLIP's 77-token context
    ("pilot/hi/indirect", "एक ऐसे व्यक्ति के चेहरे की तस्वीर जिसका पेशा हवाई जहाज़ उड़ाना है।", None),
    ("pilot/fr/direct", "Une photo du visage d'un pilote.", "shared"),
    ("pilot/fr/feminine", "Une photo du visage d'un pilote.", "shared"),
]
N = 2  # images per prompt
CORRUPT = "pilot-de-direct-1"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_clip_model(tmp_path_factory.mktemp("clip") / "tiny-clip", seed=0)


@pytest.fixture(scope="module")
def clip_dir2(tmp_path_factory):
    return build_clip_model(tmp_path_factory.mktemp("clip2") / "tiny-clip", seed=1)


def _make_run(path):
    """A run directory by hand: 2 images per prompt, one truncated PNG, one shared image."""
    rng = np.random.default_rng(0)
    (path / "images").mkdir(parents=True)
    rows = []
    for pid, text, shared in PROMPTS:
        subject, lang, form = pid.split("/")
        for i in range(N):
            key = f"{shared}-{i}" if shared else f"{pid.replace('/', '-').replace(' ', '_')}-{i}"
            png = path / "images" / f"{key}.png"
            if not png.exists():
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(png)
            if key == CORRUPT:
                png.write_bytes(png.read_bytes()[:60])
            rows.append({"key": key, "prompt_id": pid, "lang": lang, "formulation": form, "subject": subject,
                         "text": text, "seed": i, "path": f"images/{key}.png", "sha256": None,
                         "seconds": 0.0, "model": "hand-made"})
    pl.DataFrame(rows, schema=GENERATION_SCHEMA).write_parquet(path / "generations.parquet")
    return path


@pytest.fixture
def run(tmp_path):
    return _make_run(tmp_path / "run")


@pytest.fixture(scope="module")
def scored(tmp_path_factory, clip_dir):
    run = _make_run(tmp_path_factory.mktemp("scored") / "run")
    df = AL.compute_alignment(run, model=str(clip_dir), batch_size=3, device="cpu")
    return run, df


def _reference(clip_dir, image_path, text):
    """Independent: CLIPModel.get_image_features / get_text_features, one input at a time."""
    import torch
    import torch.nn.functional as F
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(clip_dir, local_files_only=True).eval()
    proc = CLIPProcessor.from_pretrained(clip_dir, local_files_only=True)

    def feats(out):
        return out if torch.is_tensor(out) else out.pooler_output

    with torch.no_grad():
        img = feats(model.get_image_features(**proc(images=Image.open(image_path).convert("RGB"),
                                                    return_tensors="pt")))
        txt = feats(model.get_text_features(**proc(text=[text], return_tensors="pt", truncation=True)))
    return float((F.normalize(img, dim=-1) * F.normalize(txt, dim=-1)).sum())


def test_raw_cosines_match_an_independent_computation(scored, clip_dir):
    run, df = scored
    manifest = pl.read_parquet(run / "generations.parquet")
    assert df.height == manifest.height == len(PROMPTS) * N
    assert df.columns == list(AL.ALIGNMENT_COLUMNS)
    assert df.select("key", "prompt_id").rows() == manifest.select("key", "prompt_id").rows()
    ok = df.filter(pl.col("clip_cos_own").is_not_null())
    assert ok.height == df.height - 1  # only the truncated PNG
    for col in ("clip_cos_en", "clip_cos_own"):
        vals = ok[col].drop_nulls().to_numpy()
        assert np.all((vals >= -1) & (vals <= 1)) and np.ptp(vals) > 0
    # raw cosine, not x logit_scale / x100: equal to the direct computation
    picks = ok.filter(pl.col("key").is_in(["pilot-de-indirect-0", "nurse-de-direct-1", "pilot-hi-indirect-0",
                                            "shared-0"]))
    assert picks.height == 5
    for r in picks.iter_rows(named=True):
        path = run / "images" / f"{r['key']}.png"
        assert r["clip_cos_own"] == pytest.approx(_reference(clip_dir, path, r["text"]), abs=1e-5)
        assert r["clip_cos_en"] == pytest.approx(_reference(clip_dir, path, r["text_en"]), abs=1e-5)
    assert set(df["clip_model"]) == {str(clip_dir.resolve())} and df["clip_revision"].n_unique() == 1


def test_english_text_rule(scored):
    _, df = scored
    by = {r["prompt_id"]: r for r in df.filter(pl.col("key").str.ends_with("-0")).iter_rows(named=True)}
    en = df.filter(pl.col("lang") == "en")
    assert en.height == 2 * N and (en["clip_cos_en"] == en["clip_cos_own"]).all()
    assert (en["text_en"] == en["text"]).all() and set(en["en_source"]) == {"own"}
    texts = dict(p[:2] for p in PROMPTS)
    # same formulation when English has it, else English direct; the run's texts first
    assert by["pilot/de/indirect"]["text_en"] == texts["pilot/en/indirect"]
    assert by["pilot/de/feminine"]["text_en"] == texts["pilot/en/direct"]
    assert by["pilot/fr/feminine"]["text_en"] == texts["pilot/en/direct"]
    assert by["pilot/de/indirect"]["en_source"] == "run"
    # not in the run: the built-in prompt set
    assert by["nurse/de/direct"]["text_en"] == "A photo of the face of a nurse."
    assert by["nurse/de/direct"]["en_source"] == "prompts:builtin"
    assert by["nurse/de/indirect"]["text_en"].startswith("A photo of the face of a person who")
    # nowhere: null English cosine with the reason, own cosine still there
    z = by["zzunknown/de/direct"]
    assert z["text_en"] is None and z["clip_cos_en"] is None and z["clip_cos_own"] is not None
    assert "no English text for subject 'zzunknown'" in z["detail"]
    # texts longer than CLIP's context are truncated to it, and flagged
    assert by["pilot/hi/indirect"]["own_truncated"] is True and by["pilot/hi/indirect"]["en_truncated"] is False
    assert by["pilot/hi/indirect"]["text_en"] == texts["pilot/en/indirect"]
    assert not df.filter(pl.col("lang") != "hi")["own_truncated"].any()
    # two prompts sharing one image: one row each, the same image embedding
    shared = df.filter(pl.col("key") == "shared-0")
    assert shared.height == 2 and shared["clip_cos_own"].n_unique() == 1


def test_corrupt_image_is_a_row_with_null_cosines(scored):
    run, df = scored
    bad = df.filter(pl.col("key") == CORRUPT).row(0, named=True)
    assert bad["clip_cos_own"] is None and bad["clip_cos_en"] is None
    assert bad["detail"].startswith("image unreadable")
    info = json.loads((run / "run.json").read_text())["alignment"]
    assert info["unreadable_images"] == 1 and info["without_english_text"] == N
    assert "[-1, 1]" in info["scale"] and "English-centric" in info["caveat"]


def test_rerun_skips_scored_keys_and_other_models_add_rows(run, clip_dir, clip_dir2, monkeypatch):
    first = AL.compute_alignment(run, model=str(clip_dir), batch_size=4, device="cpu")
    calls = []
    real = AL._Scorer.encode_images

    def counting(self, images):
        calls.append(len(images))
        return real(self, images)

    monkeypatch.setattr(AL._Scorer, "encode_images", counting)
    again = AL.compute_alignment(run, model=str(clip_dir), batch_size=4, device="cpu")
    assert calls == []  # only the unreadable image is retried, and it never reaches CLIP
    assert again.equals(first)
    # drop three scored rows: exactly those are rescored, to the same values
    path = run / "alignment.parquet"
    stored = pl.read_parquet(path)
    drop = ["pilot-en-direct-0", "nurse-de-direct-1", "zzunknown-de-direct-0"]
    stored.filter(~pl.col("key").is_in(drop)).write_parquet(path)
    resumed = AL.compute_alignment(run, model=str(clip_dir), batch_size=4, device="cpu")
    assert sum(calls) == 3
    # same values up to float32 rounding (other images and texts share the batches now)
    assert_frame_equal(resumed, first, check_exact=False, abs_tol=1e-6)
    assert pl.read_parquet(path).height == first.height
    # another CLIP model: its own rows next to the first model's
    calls.clear()
    other = AL.compute_alignment(run, model=str(clip_dir2), batch_size=4, device="cpu")
    assert sum(calls) == len(PROMPTS) * N - N - 1  # one image per shared key, no corrupt PNG
    assert other["clip_revision"][0] != first["clip_revision"][0]
    assert pl.read_parquet(path).height == 2 * first.height
    # the report uses the last model run.json names, restricted to rows with a cosine
    rep = AL.alignment_for_report(run)
    assert rep.height == first.height - 1 and set(rep["clip_model"]) == {str(clip_dir2.resolve())}


def test_missing_model_is_an_input_error_naming_it(run, tmp_path):
    with pytest.raises(InputError, match="nope-clip"):
        AL.compute_alignment(run, model=str(tmp_path / "nope-clip"), device="cpu")
    with pytest.raises(InputError, match="someone/not-cached-clip.*not in the local Hugging Face cache"):
        AL.compute_alignment(run, model="someone/not-cached-clip", device="cpu")
    half = tmp_path / "half"
    half.mkdir()
    with pytest.raises(InputError, match="cannot load a CLIP model.*half"):
        AL.compute_alignment(run, model=str(half), device="cpu")
    with pytest.raises(InputError, match="not a run directory"):
        AL.compute_alignment(tmp_path, model=str(half), device="cpu")
    assert not (run / "alignment.parquet").exists()


def test_unreadable_alignment_file_is_a_logged_warning_not_an_error(run, caplog):
    (run / "alignment.parquet").write_bytes(b"not parquet")
    with caplog.at_level("WARNING", logger="magbig.alignment"):
        assert AL.alignment_for_report(run) is None
    assert any(r.levelname == "WARNING" and "report without the alignment section" in r.getMessage()
               for r in caplog.records)


def test_report_has_the_alignment_section_when_alignment_parquet_exists(tmp_path, clip_dir):
    from typer.testing import CliRunner

    from magbig import audit as A
    from magbig import cli
    from magbig.selftest import OraclePipeline

    spec = A.make_spec({"name": "t", "model": "oracle", "subjects": ["pilot", "nurse"], "langs": ["en", "de"],
                        "formulations": ["direct", "indirect"], "n": 2, "classifiers": [{"name": "world"}],
                        "n_boot": 200})
    out = tmp_path / "run"
    A.run_audit(spec, out, progress=False, pipeline=OraclePipeline.from_bias_table(), report_files=False)
    A.report(out, n_boot=200, n_perm=199)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Not measured: no alignment scores were given." in html
    # `magbig align` on a labelled run rebuilds its report with the alignment section
    res = CliRunner().invoke(cli.app, ["align", str(out), "--model", str(clip_dir), "--device", "cpu",
                                       "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "report with the alignment section" in res.output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Not measured: no alignment scores were given." not in html
    assert "raw CLIP cosine similarity" in html and "mean cosine (English text)" in html
    assert "alignment.scale" in html and "alignment.caveat" in html  # run.json in the methods
    summary = json.loads((out / "summary.json").read_text())["alignment"]
    assert sum(g["n_images"] for g in summary["groups"]) == 16
    assert {(g["lang"], g["formulation"]) for g in summary["groups"]} == {
        ("en", "direct"), ("en", "indirect"), ("de", "direct"), ("de", "indirect")}
    assert summary["vs_direct"]  # paired by occupation against direct


def test_align_command(scored, clip_dir, tmp_path, monkeypatch, capsys):
    from typer.testing import CliRunner

    from conftest import run_in_process
    from magbig import cli

    run, _ = scored
    res = CliRunner().invoke(cli.app, ["align", str(run), "--model", str(clip_dir), "--device", "cpu",
                                       "--no-progress"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "mean clip_cos_en" in out and "mean clip_cos_own" in out and "[-1, 1]" in out
    assert "English-centric" in out and "no labels yet" in out
    summary = AL.summarize_alignment(pl.read_parquet(run / "alignment.parquet"))
    assert summary.select("lang", "formulation").row(0) == ("en", "direct")
    assert summary.filter(pl.col("lang") == "de", pl.col("formulation") == "direct").select(
        "n_images", "n_en", "n_own", "n_failed").row(0) == (3 * N, 2 * N - 1, 3 * N - 1, 1)
    main = run_in_process(monkeypatch, capsys, "magbig", cli.main)
    code, _, err = main("align", run, "--model", tmp_path / "absent-clip", "--no-progress")
    assert code == 2 and "absent-clip" in err
