"""Translate-then-generate: MT loading and batching, the run-directory record, cache, keys, preset."""

from __future__ import annotations

import json

import polars as pl
import pytest
from PIL import Image

from neobabel.errors import InputError
from neobabel.pipeline import BabelPipeline
from neobabel.registry import ModelPreset
from neobabel.runs import RunDir, WorkUnit, generate_into_run
from neobabel.testing import build_tiny_marian
from neobabel.translate import CACHE_FILE, MTTranslator

UNITS = [WorkUnit("p1", "ein Foto von drei roten Kreisen", "de", 0),
         WorkUnit("p2", "une photo du visage d'un médecin", "fr", 0),
         WorkUnit("p3", "ein Foto vom Gesicht einer Ärztin", "de", 1),
         WorkUnit("p4", "a photo of two red circles", "en", 0)]


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    return build_tiny_marian(tmp_path_factory.mktemp("mt") / "tiny-marian")


@pytest.fixture
def translator(marian_dir):
    return MTTranslator.from_pretrained(marian_dir, batch_size=2, max_new_tokens=6)


class DictTranslator:
    """A stand-in MT model whose outputs the test chooses."""

    def __init__(self, table: dict[str, str], name="dict-mt", revision="1"):
        self.table, self.name, self.revision, self.calls = table, name, revision, 0

    def translate(self, texts, lang):
        self.calls += 1
        return list(texts) if lang == "en" else [self.table.get(t, "a photo") for t in texts]


def test_mt_model_loads_translates_in_batches(translator):
    texts = [u.text for u in UNITS[:3]] + ["una foto", "een foto"]
    out = translator.translate(texts, "de")
    assert len(out) == 5 and translator.calls == 3  # batch_size 2
    assert out[0] == translator.translate([texts[0]], "de")[0]  # a text's translation ignores its batch
    assert len(set(out)) > 1
    assert translator.translate(["a photo"], "en") == ["a photo"]
    assert translator.family == "marian"


def test_missing_mt_model_is_one_paragraph(tmp_path):
    with pytest.raises(InputError, match="could not be loaded"):
        MTTranslator.from_pretrained(tmp_path / "nothing-here")


def test_translations_recorded_cached_and_keyed(tiny_sd_dir, translator, tmp_path, fast):
    pipe = BabelPipeline.from_pretrained(tiny_sd_dir).with_translator(translator)
    assert pipe.mode == "translate" and pipe.identity()["translator"]["model"] == "tiny-marian"
    params = pipe.resolve_params(**fast)
    run = RunDir(tmp_path / "run")
    report = generate_into_run(pipe, UNITS, run, params, batch_size=2, progress=False)
    assert report.generated == 4
    calls = translator.calls
    assert calls == 2  # one batch per language (de: 2 distinct texts, fr: 1); English untouched
    manifest = run.load_manifest().sort("prompt_id")
    expected = {u.prompt_id: translator.translate([u.text], u.lang)[0] for u in UNITS}
    assert dict(zip(manifest["prompt_id"], manifest["translation"])) == expected
    assert expected["p4"] == "a photo of two red circles"
    for row in manifest.iter_rows(named=True):
        with Image.open(run.path / row["path"]) as im:
            assert im.text["translation"] == row["translation"]
    cache = json.loads((run.path / CACHE_FILE).read_text())
    assert sorted(v["text"] for v in cache.values()) == sorted(u.text for u in UNITS if u.lang != "en")
    # rerun: nothing translated or generated again
    translator.calls = 0
    again = generate_into_run(pipe, UNITS, run, params, batch_size=2, progress=False)
    assert again.generated == 0 and translator.calls == 0


def test_image_key_follows_the_translation(tiny_sd_dir, tmp_path, fast):
    keys = {}
    for name, english in (("a", "a photo of three red circles"), ("b", "a photo of three blue circles")):
        pipe = BabelPipeline.from_pretrained(tiny_sd_dir).with_translator(DictTranslator({UNITS[0].text: english}))
        run = RunDir(tmp_path / name)
        generate_into_run(pipe, UNITS[:1], run, pipe.resolve_params(**fast), progress=False)
        keys[name] = run.load_manifest()["key"][0]
    native = BabelPipeline.from_pretrained(tiny_sd_dir)
    run = RunDir(tmp_path / "native")
    generate_into_run(native, UNITS[:1], run, native.resolve_params(**fast), progress=False)
    keys["native"] = run.load_manifest()["key"][0]
    assert len(set(keys.values())) == 3
    assert run.load_manifest()["translation"].to_list() == [None]


def test_generate_translates_direct_calls(tiny_sd_dir, fast):
    mt = DictTranslator({UNITS[0].text: "a photo of three red circles"})
    pipe = BabelPipeline.from_pretrained(tiny_sd_dir).with_translator(mt)
    plain = BabelPipeline.from_pretrained(tiny_sd_dir)
    a = pipe.generate([UNITS[0].text], "de", seeds=[0], output_type="np", **fast)[0]
    b = plain.generate(["a photo of three red circles"], "en", seeds=[0], output_type="np", **fast)[0]
    assert (a == b).all()


def test_translate_preset(tiny_sd_dir, marian_dir, tmp_path, fast):
    preset = tmp_path / "sd-mt.yaml"
    preset.write_text(f"mode: translate\nbackbone:\n  path: {tiny_sd_dir}\ntranslator:\n  path: {marian_dir}\n"
                      "defaults: {steps: 2, guidance: 3.0, width: 64, height: 64}\n")
    pipe = BabelPipeline.from_pretrained(preset)
    assert pipe.mode == "translate" and pipe.name == "sd-mt"
    assert pipe.generate(["ein Foto"], "de", seeds=[0])[0].size == (64, 64)
    with pytest.raises(ValueError, match="translator"):
        ModelPreset(name="x", mode="translate", backbone={"path": str(tiny_sd_dir)})
    with pytest.raises(ValueError, match="translator"):
        ModelPreset(name="x", mode="native", backbone={"path": str(tiny_sd_dir)}, translator={"path": "y"})


def test_world_oracle_inverts_the_caption_grammar():
    from neobabel.world.data import scene_caption
    from neobabel.eval.world import object_suite
    from neobabel.world.parallel import WorldOracleTranslator
    from neobabel.world.spec import ObjectScene

    oracle = WorldOracleTranslator()
    for p in object_suite(3, ["nl", "ru", "zh", "ja", "ko", "ar", "de", "hi"]):
        english = scene_caption(ObjectScene.from_dict(p.spec), "en", False)
        got = oracle.translate([p.text], p.lang)[0]
        if oracle.clashes[p.lang] == 0:
            assert got == english, (p.lang, p.text)
        else:  # these languages say "a" and "one" alike: "a photo of one X" for "a photo of a X"
            assert got == english or got == english.replace(" a ", " one ").replace(" an ", " one "), (p.lang, got)
    assert oracle.misses == 0
    assert oracle.translate(["not a world caption"], "de") == ["not a world caption"] and oracle.misses == 1


def test_cli_generate_with_a_translate_preset_file(cli, tiny_sd_dir, marian_dir, tmp_path):
    preset = tmp_path / "sd-mt.yaml"
    preset.write_text(f"mode: translate\nbackbone:\n  path: {tiny_sd_dir}\ntranslator:\n  path: {marian_dir}\n"
                      "defaults: {steps: 2, guidance: 3.0, width: 64, height: 64}\n")
    code, out, err = cli("generate", "ein Foto von drei roten Kreisen", "--lang", "de", "--model", str(preset),
                         "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 0, err
    row = pl.read_parquet(tmp_path / "run" / "generations.parquet").row(0, named=True)
    assert row["translation"] and row["translation"] != row["text"]
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["model"]["mode"] == "translate" and run_json["model"]["translator"]["model"] == "tiny-marian"


def test_world_parallel_command_writes_distill_data(cli, tmp_path):
    out = tmp_path / "p.tsv"
    code, stdout, err = cli("world", "parallel", "--out", str(out), "--scenes", "3")
    assert code == 0, err
    rows = read_parallel_rows(out)
    assert len(rows) == 3 * 12 and {r.lang for r in rows} == set(LANGS) - {"en"}
    assert len({r.en for r in rows}) <= 3


def read_parallel_rows(path):
    from neobabel.distill import read_parallel

    return read_parallel(path)


LANGS = ("en", "de", "fr", "es", "it", "nl", "ru", "zh", "ja", "ko", "ar", "hi", "fa")


def test_world_training_languages_restrict_the_data(tmp_path):
    from neobabel.world.bias import load_table
    from neobabel.world.data import WorldSampler
    from neobabel.world.train import WorldTrainConfig, _data_config

    cfg = WorldTrainConfig(langs=["English"], portrait_fraction=0.5)
    assert cfg.langs == ["en"]
    sampler = WorldSampler(load_table(), _data_config(cfg, False), seed=0)
    _, _, metas = sampler.batch(0, 16)
    assert {m["lang"] for m in metas} == {"en"}
    from neobabel.world.train import load_config

    bad = tmp_path / "train.yaml"
    bad.write_text("langs: [xx]\n")
    with pytest.raises(InputError, match="unknown language 'xx'") as err:
        load_config(bad)
    assert "\n" not in str(err.value)


def test_an_audit_in_translate_mode_keys_images_by_the_english_text(tmp_path):
    """magbig audit on a translate-mode pipeline: a feminine prompt whose translation drops the
    gender gets the English direct prompt's pixels (its key still names its own text); the
    audit's keys follow the translations and it completes."""
    import polars as pl

    from magbig.audit import make_spec, run_audit
    from neobabel.pipeline import BabelPipeline
    from neobabel.world.parallel import WorldOracleTranslator

    pipe = BabelPipeline.from_pretrained("world").with_translator(WorldOracleTranslator(portraits=True))
    spec = make_spec({"model": "world", "subjects": ["doctor"], "langs": ["en", "de"],
                      "formulations": ["direct", "feminine"], "n": 2, "steps": 3, "batch_size": 2,
                      "classifiers": [{"name": "world"}], "n_boot": 100})
    out = run_audit(spec, tmp_path / "audit", progress=False, pipeline=pipe, report_files=False)
    units = pl.read_parquet(out / "units.parquet")
    keys = {(r["lang"], r["formulation"], r["slot"]): r["key"] for r in units.iter_rows(named=True)}
    assert len(keys) == 6 and len(set(keys.values())) == 6  # the source text stays in the key
    manifest = pl.read_parquet(out / "generations.parquet")
    from PIL import Image

    def pixels(lang, formulation, slot):  # the PNGs' text chunks name their own prompt: compare pixels
        with Image.open(out / "images" / f"{keys[(lang, formulation, slot)]}.png") as im:
            return im.tobytes()

    for slot in (0, 1):  # one English text: the same pixels for the three prompts
        assert pixels("de", "feminine", slot) == pixels("de", "direct", slot) == pixels("en", "direct", slot)
    assert pixels("en", "direct", 0) != pixels("en", "direct", 1)
    assert set(manifest["translation"].to_list()) == {"A photo of the face of a doctor."}
    assert (out / "translations.json").is_file()
    labels = pl.read_parquet(out / "labels.parquet")
    assert set(labels["key"].to_list()) == set(keys.values())
