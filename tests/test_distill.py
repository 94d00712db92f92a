"""neobabel.distill: parallel data, the loss falls, save/load round-trip, preset, resume, CLI errors."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from neobabel.distill import (
    DistillConfig, Teacher, distill, evaluate_student, load_distill_config, read_parallel, split_rows,
)
from neobabel.errors import InputError
from neobabel.pipeline import BabelPipeline
from neobabel.tower import ADAPTER_WEIGHTS, MultilingualTower

NUMBERS = {"en": ["one", "two", "three"], "de": ["ein", "zwei", "drei"], "fr": ["un", "deux", "trois"]}
COLORS = {"en": ["red", "blue", "green"], "de": ["roter", "blauer", "grüner"], "fr": ["rouge", "bleu", "vert"]}
SHAPES = {"en": ["circle", "square", "triangle"], "de": ["Kreis", "Quadrat", "Dreieck"],
          "fr": ["cercle", "carré", "triangle"]}
PHOTO = {"en": "a photo of", "de": "ein Foto von", "fr": "une photo de"}


def parallel_rows() -> list[dict]:
    rows = []
    for n in range(3):
        for c in range(3):
            for s in range(3):
                en = f"{PHOTO['en']} {NUMBERS['en'][n]} {COLORS['en'][c]} {SHAPES['en'][s]}"
                for lang in ("de", "fr"):
                    text = f"{PHOTO[lang]} {NUMBERS[lang][n]} {COLORS[lang][c]} {SHAPES[lang][s]}"
                    rows.append({"en": en, "lang": lang, "text": text})
    return rows


@pytest.fixture(scope="module")
def tsv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "parallel.tsv"
    path.write_text("en\tlang\ttext\n" + "".join(f"{r['en']}\t{r['lang']}\t{r['text']}\n" for r in parallel_rows()),
                    encoding="utf-8")
    return path


FAST_CFG = dict(batch_size=8, lr=3e-3, warmup=2, eval_fraction=0.2, log_every=5)


@pytest.fixture(scope="module")
def distilled(tiny_sd_dir, xlmr_dir, tsv, tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "sd-tower"
    cfg = DistillConfig(steps=60, eval_every=20, checkpoint_every=20, **FAST_CFG)
    return distill(str(tiny_sd_dir), str(xlmr_dir), tsv, out, cfg, progress=False)


# -- data -------------------------------------------------------------------------------------

def test_reads_tsv_and_jsonl_alike(tsv, tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in parallel_rows()), encoding="utf-8")
    assert read_parallel(tsv) == read_parallel(jsonl)
    assert read_parallel(tsv)[0].lang == "de"


@pytest.mark.parametrize("content, name, message", [
    ("en\ttext\na photo\tein Foto\n", "p.tsv", "missing column 'lang'"),
    ('{"en": "a photo", "text": "ein Foto"}\n', "p.jsonl", "p.jsonl:1: missing column 'lang'"),
    ("en\tlang\ttext\na photo\txx\tein Foto\n", "p.tsv", "p.tsv:2: unknown language 'xx'"),
    ("", "p.tsv", "holds no rows"),
    ("en\tlang\ttext\n", "p.tsv", "holds no rows"),
    ("\n\n", "p.jsonl", "holds no rows"),
    ("en\tlang\ttext\na photo\tde\t\n", "p.tsv", "p.tsv:2: empty text"),
    ("a,b", "p.csv", "unknown format .csv"),
])
def test_bad_data_one_clear_line(tmp_path, content, name, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_parallel(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_split_holds_out_whole_sentences(tsv):
    train, held = split_rows(read_parallel(tsv), 0.2, include_english=True)
    assert held and train
    assert not {r.en for r in train} & {r.en for r in held}
    # every held-out sentence is evaluated in English as well as in its translations
    assert {r.lang for r in held} == {"en", "de", "fr"}
    assert all(r.text == r.en for r in train if r.lang == "en")


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("steps: 10\nlr: 0.01\n")
    cfg = load_distill_config(path, steps=20, lr=None)
    assert (cfg.steps, cfg.lr) == (20, 0.01)
    path.write_text("stepz: 10\n")
    with pytest.raises(InputError, match="stepz"):
        load_distill_config(path)


# -- training ---------------------------------------------------------------------------------

def test_loss_falls_and_cosine_rises(distilled):
    log = [json.loads(line) for line in (distilled.out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 60
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]
    evals = [json.loads(line) for line in (distilled.out / "eval_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [20, 40, 60]
    assert set(evals[-1]["per_lang"]) == {"en", "de", "fr"}
    for lang in ("en", "de", "fr"):
        assert evals[-1]["per_lang"][lang]["tokens"] > evals[0]["per_lang"][lang]["tokens"]


def test_saved_tower_round_trips(distilled, tiny_sd_dir, tsv):
    tower = MultilingualTower.from_pretrained(distilled.out)
    assert tower.config.num_tokens == 77 and tower.config.out_dim == 32  # the tiny CLIP teacher's shape
    teacher = Teacher(BabelPipeline.from_pretrained(tiny_sd_dir, dtype=torch.float32))
    _, held = split_rows(read_parallel(tsv), 0.2, include_english=True)
    again = evaluate_student(tower, teacher, held, 8)
    for lang, r in distilled.eval.items():
        assert again[lang]["tokens"] == pytest.approx(r["tokens"], abs=1e-4)
    record = json.loads((distilled.out / "distill.json").read_text())
    assert record["steps"] == 60 and record["eval"] == distilled.eval


def test_preset_loads_the_distilled_tower(distilled, fast):
    for source in (distilled.out, distilled.preset):
        pipe = BabelPipeline.from_pretrained(source)
        assert pipe.mode == "tower"
        saved = load_file(str(distilled.out / ADAPTER_WEIGHTS))
        for k, v in pipe.tower.adapter.state_dict().items():
            assert torch.equal(v, saved[k])
        images = pipe.generate(["ein Foto von zwei roten Kreisen"], "de", seeds=[0], **fast)
        assert images[0].size == (64, 64)


def test_resume_continues_from_checkpoint(tiny_sd_dir, xlmr_dir, tsv, tmp_path):
    def run(out, steps):
        cfg = DistillConfig(steps=steps, eval_every=0, checkpoint_every=2, trainable_layers=1, **FAST_CFG)
        return distill(str(tiny_sd_dir), str(xlmr_dir), tsv, out, cfg, progress=False)

    straight = run(tmp_path / "straight", 6)
    run(tmp_path / "resumed", 3)
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())["step"] == 3
    resumed = run(tmp_path / "resumed", 6)
    assert resumed.steps == 6
    a = load_file(str(straight.out / "checkpoint" / "trainable.safetensors"))
    b = load_file(str(resumed.out / "checkpoint" / "trainable.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("encoder.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the encoder's trained layer is saved with the tower
    assert (resumed.out / "encoder" / "config.json").is_file()


def test_a_save_killed_between_its_renames_resumes_from_the_previous_checkpoint(tiny_sd_dir, xlmr_dir, tsv, tmp_path):
    """save_checkpoint renames the old checkpoint away, then the new one in: a kill between the
    two leaves only `.checkpoint.old-PID`. The next run resumes from it, not from step 0."""
    def run(steps):
        cfg = DistillConfig(steps=steps, eval_every=0, checkpoint_every=2, trainable_layers=1, **FAST_CFG)
        return distill(str(tiny_sd_dir), str(xlmr_dir), tsv, tmp_path / "t", cfg, progress=False)

    run(3)
    os.replace(tmp_path / "t" / "checkpoint", tmp_path / "t" / ".checkpoint.old-12345")  # the kill's state
    logged = (tmp_path / "t" / "train_log.jsonl").read_text().splitlines()
    resumed = run(6)
    assert resumed.steps == 6 and not list((tmp_path / "t").glob(".checkpoint.old-*"))
    after = (tmp_path / "t" / "train_log.jsonl").read_text().splitlines()
    assert after[:len(logged)] == logged  # the log was continued, not started over


def test_resume_refuses_another_student(tiny_sd_dir, xlmr_dir, tsv, tmp_path):
    distill(str(tiny_sd_dir), str(xlmr_dir), tsv, tmp_path / "t",
            DistillConfig(steps=2, eval_every=0, **FAST_CFG), progress=False)
    with pytest.raises(InputError, match="adapter"):
        distill(str(tiny_sd_dir), str(xlmr_dir), tsv, tmp_path / "t",
                DistillConfig(steps=4, adapter="linear", eval_every=0, **FAST_CFG), progress=False)


def test_sdxl_backbone_gets_pooled_embeddings(tiny_sdxl_dir, xlmr_dir, tsv, tmp_path):
    result = distill(str(tiny_sdxl_dir), str(xlmr_dir), tsv, tmp_path / "xl",
                     DistillConfig(steps=2, eval_every=0, denoise_weight=0.5, **FAST_CFG), progress=False)
    tower = MultilingualTower.from_pretrained(result.out)
    assert tower.config.pooled_dim == 32
    assert all("pooled" in r for r in result.eval.values())
    pipe = BabelPipeline.from_pretrained(result.out)
    assert pipe.family == "sdxl" and pipe.tower.config.pooled_dim == 32


def test_cli_bad_data_exits_2_with_one_line(cli, tiny_sd_dir, xlmr_dir, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("en\tlanguage\ttext\na\tde\tb\n", encoding="utf-8")
    code, out, err = cli("distill", "--backbone", str(tiny_sd_dir), "--encoder",
                                                      str(xlmr_dir), "--data", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "missing column 'lang'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_backbone_given_as_a_distilled_folder_keeps_its_backbone(distilled, xlmr_dir, tsv, tmp_path, tiny_sd_dir):
    """A tower distilled onto a tower-mode model (e.g. an English-only one) pairs with that
    model's own backbone: the written preset names the backbone, never the tower folder."""
    import yaml

    result = distill(str(distilled.out), str(xlmr_dir), tsv, tmp_path / "second",
                     DistillConfig(steps=2, eval_every=0, **FAST_CFG), progress=False)
    preset = yaml.safe_load(result.preset.read_text())
    assert preset["backbone"] == {"path": str(tiny_sd_dir.resolve())}
    assert BabelPipeline.from_pretrained(result.out).mode == "tower"
