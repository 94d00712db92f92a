"""Babel world: bias table, training sampler, evaluation scoring, training resume, shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from diffusers import DDIMScheduler
from safetensors.torch import load_file
from scipy import stats

from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES, LANGUAGES
from neobabel.pipeline import BabelPipeline
from neobabel.registry import REPO_ROOT, world_weights_path
from neobabel.world import bias, detect
from neobabel.world.bias import FEMININE_FORM_SHARE, build_table, load_table, planted_share
from neobabel.world.captions import caption_for_task
from neobabel.world.data import WorldDataConfig, WorldSampler, scene_caption
from neobabel.eval.world import object_suite, score_objects, summarize
from neobabel.world.render import render
from neobabel.world.spec import COLORS, OCCUPATIONS, RELATIONS, SHAPES, TASKS, ObjectScene, sample_object_scene
from neobabel.world.supervision import HEADS, caption_batch, caption_labels, masked_mean, pretrain_tower
from neobabel.world.train import (
    FinetuneSpec, WorldTrainConfig, batch_stream, build_models, check_resume, ema_update, export_checkpoint,
    learning_rate, load_config, loss_weights, run_stream, sampling_scheduler, train,
)


@pytest.fixture(scope="module")
def table():
    return load_table()


def test_shipped_table_is_what_the_parameters_generate(table):
    # The versioned YAML must not drift from the generator (regenerate with `neobabel world bias`).
    built = build_table()
    assert [(c.occupation, c.lang, c.formulation, c.p_feminine, c.prompt) for c in table.cells] == \
           [(c.occupation, c.lang, c.formulation, c.p_feminine, c.prompt) for c in built.cells]


def test_portrait_captions_cover_every_language_formulation_and_occupation(table):
    cells = {(c.occupation, c.lang, c.formulation): c.prompt for c in table.cells}
    for occ in OCCUPATIONS:
        for lang in LANGUAGE_CODES:
            for form in ("direct", "indirect"):
                assert cells.get((occ, lang, form), "").strip(), (occ, lang, form)
            if lang in ("de", "fr", "es", "it", "ru", "ar"):
                assert (occ, lang, "feminine") in cells
        assert (occ, "de", "gender_star") in cells
        assert "*" in cells[(occ, "de", "gender_star")]
    # untranslated: a non-English prompt never equals the English one
    for (occ, lang, form), text in cells.items():
        if lang != "en" and form in ("direct", "indirect"):
            assert text != cells[(occ, "en", form)]


def test_cells_with_the_same_caption_have_one_share(table):
    # The model sees only the caption: two shares for one text could never both be learned.
    share_of = {}
    for c in table.cells:
        assert share_of.setdefault((c.lang, c.prompt), c.p_feminine) == c.p_feminine, (c.occupation, c.lang)
    assert len(share_of) < len(table.cells)  # the case exists (ru nurse), so the check is live


def test_planted_bias_has_the_intended_structure(table):
    for occ in OCCUPATIONS:
        for lang in LANGUAGE_CODES:
            direct = table.lookup(occ, lang, "direct").p_feminine
            indirect = table.lookup(occ, lang, "indirect").p_feminine
            # direct prompts are more skewed than indirect ones, everywhere
            assert abs(direct - 0.5) > abs(indirect - 0.5)
            if LANGUAGES[lang].grammatical_gender and lang not in ("nl", "hi"):
                feminine = table.lookup(occ, lang, "feminine")
                if feminine.prompt == table.lookup(occ, lang, "direct").prompt:
                    assert feminine.p_feminine == direct  # one caption, one share (ru nurse)
                else:
                    assert feminine.p_feminine == FEMININE_FORM_SHARE
        star = table.lookup(occ, "de", "gender_star").p_feminine
        assert abs(star - 0.5) <= 0.05
    # generic masculine pulls direct prompts towards masculine: German nurse < English nurse
    assert planted_share("nurse", "de", "direct", "generic_masculine") < \
        planted_share("nurse", "de", "direct", "ungendered")


def test_sampler_draws_the_bias_table(table):
    """Chi-square: presentations drawn per cell follow (ambiguous share, p_feminine)."""
    sampler = WorldSampler(table, seed=3)
    rng = np.random.default_rng(5)
    cells = {}
    for _ in range(60000):
        spec, text, meta = sampler.draw_portrait(rng)
        key = (meta["occupation"], meta["lang"], meta["formulation"])
        cells.setdefault(key, {"feminine": 0, "masculine": 0, "ambiguous": 0})[spec.presentation] += 1
        assert spec.occupation == meta["occupation"]
    assert len(cells) == len(table.cells)  # every cell is drawn
    observed, expected = [], []
    a = table.ambiguous_share
    for key, counts in cells.items():
        p = table.lookup(*key).p_feminine
        n = sum(counts.values())
        observed += [counts["feminine"], counts["masculine"], counts["ambiguous"]]
        expected += [n * (1 - a) * p, n * (1 - a) * (1 - p), n * a]
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected))
    dof = len(observed) - len(cells)
    assert stats.chi2.sf(chi2, dof) > 1e-3
    # and a wrong table is rejected by the same test: pretend every cell were 50/50
    wrong = sum((o - e) ** 2 / e for o, e in zip(
        observed, [x for key, c in cells.items() for x in
                   (sum(c.values()) * 0.45, sum(c.values()) * 0.45, sum(c.values()) * 0.1)]))
    assert stats.chi2.sf(wrong, dof) < 1e-6


def test_sampler_batches_are_a_function_of_seed_and_step(table):
    s = WorldSampler(table, seed=1)
    a_img, a_txt, _ = s.batch(7, 6)
    b_img, b_txt, _ = WorldSampler(table, seed=1).batch(7, 6)
    c_img, c_txt, _ = s.batch(8, 6)
    assert np.array_equal(a_img, b_img) and a_txt == b_txt
    assert a_txt != c_txt


def test_scene_captions_name_colours_only_when_asked():
    rng = np.random.default_rng(0)
    scene = sample_object_scene("counting", rng)
    bare = scene_caption(scene, "en", name_colors=False)
    coloured = scene_caption(scene, "en", name_colors=True)
    assert scene.objects[0].color not in bare and scene.objects[0].color in coloured
    colors_task = sample_object_scene("colors", rng)
    assert colors_task.objects[0].color in scene_caption(colors_task, "en", name_colors=False)


def test_object_scoring_accepts_ground_truth_and_rejects_wrong_scenes():
    suite = object_suite(per_task=4, langs=["en"])
    right = wrong = 0
    for i, p in enumerate(suite):
        scene = ObjectScene.from_dict(p.spec)
        right += score_objects(detect.read_image(render(scene, i)), scene)
        other = sample_object_scene(scene.task, np.random.default_rng(100 + i))
        if other != scene:
            wrong += score_objects(detect.read_image(render(other, i)), scene)
    assert right == len(suite)
    assert wrong < len(suite) * 0.6  # a different scene mostly fails the same check


def test_summary_overall_and_spread():
    rows = []
    for lang, acc in (("en", 1.0), ("de", 0.5)):
        for task in TASKS:
            rows += [{"lang": lang, "task": task, "correct": k < acc * 4, "key": f"{lang}{task}{k}"}
                     for k in range(4)]
    s = summarize(pl.DataFrame(rows))
    assert s["per_lang"]["en"]["overall"] == 1.0 and s["per_lang"]["de"]["overall"] == 0.5
    assert s["language_spread"] == 0.5


# The shipped recipe's architecture and objective, in miniature.
TINY_TRAIN = dict(steps=4, batch_size=4, checkpoint_every=2, log_every=1, warmup=2, threads=None,
                  lr_schedule="cosine", prediction_type="sample", min_snr_gamma=5.0,
                  tower=dict(hidden=32, layers=1, heads=2, intermediate=64, vocab_size=1000, max_length=64),
                  unet=dict(block_out_channels=[32, 32, 32], layers_per_block=1, cross_attention_dim=32,
                            attention_heads=2, text_time_embedding=True))


@pytest.mark.parametrize("name", ["train.yaml", "train-gpu.yaml"])
def test_shipped_training_configs_validate(name):
    cfg = load_config(REPO_ROOT / "configs" / "world" / name)
    assert cfg.prediction_type == "sample" and cfg.unet.text_time_embedding
    assert cfg.tower.max_length >= 53  # the longest world caption (ru), in tokens


def test_shipped_weights_record_the_shipped_training_config():
    """`world train --config configs/world/train.yaml` is the one command that made them."""
    recorded = json.loads((world_weights_path() / "training.json").read_text())
    cfg = load_config(REPO_ROOT / "configs" / "world" / "train.yaml")
    assert recorded["config"] == cfg.model_dump(mode="json")
    assert recorded["steps"] == cfg.total_steps


def test_malformed_training_config_is_an_input_error(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("steps: 10\nprediction_type: x0\n")
    with pytest.raises(InputError, match="prediction_type"):
        load_config(bad)
    bad.write_text("tower_pretrain_steps: -5\n")
    with pytest.raises(InputError, match="tower_pretrain_steps"):
        load_config(bad)


def test_cross_attention_levels_need_one_flag_per_level(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("unet:\n  block_out_channels: [32, 64, 128]\n  cross_attention_levels: [false, true]\n")
    with pytest.raises(InputError, match="cross_attention_levels has 2 entries for 3 levels"):
        load_config(bad)


def test_loss_weights_follow_the_stated_x0_weighting():
    snr = torch.tensor([0.01, 1.0, 4.0, 100.0])
    assert torch.equal(loss_weights("v_prediction", snr, None), torch.ones(4))
    # sample: x0 weight min(snr + 1, 5), at least 1 at high noise
    assert torch.allclose(loss_weights("sample", snr, 5.0), torch.tensor([1.01, 2.0, 5.0, 5.0]))
    # epsilon (x0 weight snr) and v (x0 weight snr + 1), both capped at min(snr, 5) in x0 terms
    assert torch.allclose(loss_weights("epsilon", snr, 5.0) * snr, torch.clamp(snr, max=5.0))
    assert torch.allclose(loss_weights("v_prediction", snr, 5.0) * (snr + 1), torch.clamp(snr, max=5.0))


def test_learning_rate_warms_up_then_follows_the_schedule():
    cosine = WorldTrainConfig(steps=1100, warmup=100, lr=1e-3, lr_schedule="cosine", lr_final_scale=0.1)
    assert learning_rate(cosine, 0) == pytest.approx(1e-5) and learning_rate(cosine, 99) == pytest.approx(1e-3)
    assert learning_rate(cosine, 100) == pytest.approx(1e-3)
    assert learning_rate(cosine, 600) == pytest.approx(0.55e-3)  # half-way: the mean of lr and final
    assert learning_rate(cosine, 1100) == pytest.approx(1e-4)
    lrs = [learning_rate(cosine, s) for s in range(100, 1101, 50)]
    assert lrs == sorted(lrs, reverse=True)
    constant = cosine.model_copy(update={"lr_schedule": "constant"})
    assert learning_rate(constant, 1000) == 1e-3


def test_batch_stream_is_in_step_order_for_any_number_of_workers(table):
    sampler = WorldSampler(table, WorldDataConfig(size=32), seed=3)
    serial = list(batch_stream(sampler, 5, 12, 4))
    assert [b[0] for b in serial] == list(range(5, 12))
    parallel = list(batch_stream(sampler, 5, 12, 4, workers=3))
    assert [b[0] for b in parallel] == list(range(5, 12))
    for (_, im_a, tx_a, p_a), (_, im_b, tx_b, p_b) in zip(serial, parallel):
        assert torch.equal(im_a, im_b) and tx_a == tx_b and torch.equal(p_a, p_b)


def test_learning_rate_of_the_finetune_phase():
    main = WorldTrainConfig(steps=1000, warmup=100, lr=1e-3, lr_schedule="cosine", lr_final_scale=0.1)
    both = main.model_copy(update={"finetune": FinetuneSpec(steps=500, lr=2e-4, warmup=50)})
    assert both.total_steps == 1500 and main.total_steps == 1000
    # the main phase is untouched by the phase after it
    assert all(learning_rate(both, s) == learning_rate(main, s) for s in (0, 99, 500, 999))
    assert learning_rate(both, 1000) == pytest.approx(2e-4 / 50)  # its own warmup
    assert learning_rate(both, 1049) == pytest.approx(2e-4)
    assert learning_rate(both, 1499) == pytest.approx(2e-4)  # constant: the phase can be lengthened


def test_run_stream_switches_to_the_finetune_data_after_the_main_phase(table):
    cfg = WorldTrainConfig(steps=4, batch_size=6, size=32, portrait_fraction=0.0,
                           finetune=FinetuneSpec(steps=3, portrait_fraction=1.0))
    batches = list(run_stream(cfg, table, 2))
    assert [b[0] for b in batches] == [2, 3, 4, 5, 6]
    main = list(batch_stream(WorldSampler(table, WorldDataConfig(size=32, portrait_fraction=0.0), seed=0), 2, 4, 6))
    assert all(torch.equal(a[1], b[1]) and a[2] == b[2] for a, b in zip(batches[:2], main))
    assert not any((b[3] >= 0).any() for b in batches[:2]) and all((b[3] >= 0).all() for b in batches[2:])
    # resumed inside the finetune phase: only its remaining steps
    assert [b[0] for b in run_stream(cfg, table, 5)] == [5, 6]


def test_ema_update_matches_the_per_tensor_formula():
    g = torch.Generator().manual_seed(0)
    current = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g),
               "n": torch.tensor([7])}
    ema = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g), "n": torch.tensor([1])}
    want = {k: ema[k] * 0.9 + current[k] * 0.1 for k in ("w", "b")}
    ema_update(ema, current, 0.9)
    assert torch.allclose(ema["w"], want["w"]) and torch.allclose(ema["b"], want["b"])
    assert ema["n"].item() == 7  # integer buffers are copied, not averaged


@pytest.mark.slow
def test_finetune_phase_added_to_a_finished_run_equals_the_straight_run(tmp_path):
    """How the shipped model was made: its config's main phase had run, the phase after it was
    added and the run resumed; one command from scratch must give the same weights."""
    # ema_decay ~ 0: the phase's EMA follows the raw weights (the main phase's lags behind them)
    finetune = dict(steps=2, portrait_fraction=1.0, high_noise_fraction=1.0, high_noise_from=900, warmup=1,
                    presentation_head=0.5, ema_decay=1e-6)
    straight = train(WorldTrainConfig(**{**TINY_TRAIN, "finetune": finetune}), tmp_path / "a", progress=False)
    train(WorldTrainConfig(**TINY_TRAIN), tmp_path / "b", progress=False)
    after_main = load_file(str(tmp_path / "b" / "checkpoint" / "unet.safetensors"))
    ema_main = load_file(str(tmp_path / "b" / "checkpoint" / "ema.safetensors"))
    assert max((ema_main[f"unet.{k}"] - v).abs().max().item() for k, v in after_main.items()) > 1e-4
    # the phase added, stopped after its first step, resumed with the head's own state
    train(WorldTrainConfig(**{**TINY_TRAIN, "finetune": {**finetune, "steps": 1}}), tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "checkpoint" / "presentation_head.safetensors").is_file()
    train(WorldTrainConfig(**{**TINY_TRAIN, "finetune": finetune}), tmp_path / "b", progress=False)
    ua = load_file(str(tmp_path / "a" / "checkpoint" / "unet.safetensors"))
    ub = load_file(str(tmp_path / "b" / "checkpoint" / "unet.safetensors"))
    assert all(torch.equal(ua[k], ub[k]) for k in ua)
    ha = load_file(str(tmp_path / "a" / "checkpoint" / "presentation_head.safetensors"))
    hb = load_file(str(tmp_path / "b" / "checkpoint" / "presentation_head.safetensors"))
    assert all(torch.equal(ha[k], hb[k]) for k in ha)
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "presentation_loss" in r] == [5, 6]  # logged in the phase only
    recorded = json.loads((straight / "training.json").read_text())
    assert recorded["steps"] == TINY_TRAIN["steps"] + 2
    assert json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())["step"] == 6
    ema = load_file(str(tmp_path / "b" / "checkpoint" / "ema.safetensors"))
    assert max((ema[f"unet.{k}"] - v).abs().max().item() for k, v in ub.items()) < 1e-5
    # the phase trained: the weights moved on from the main phase's
    assert any(not torch.equal(after_main[k], ub[k]) for k in ub)


@pytest.mark.slow
def test_training_resumes_exactly_and_exports_a_loadable_babel_pipeline(tmp_path):
    # rendered by two data workers here, in the training process below: the same data
    straight = train(WorldTrainConfig(**{**TINY_TRAIN, "data_workers": 2, "keep_ema_every": 2}), tmp_path / "a",
                     progress=False)
    # the same run, stopped after 2 steps and resumed
    train(WorldTrainConfig(**{**TINY_TRAIN, "steps": 2}), tmp_path / "b", progress=False)
    # a resumed run may train longer, not become another model: refused before anything is written
    other = {**TINY_TRAIN, "tower": {**TINY_TRAIN["tower"], "zero_padding": True}, "cfg_drop": 0.2}
    with pytest.raises(InputError, match=r"cfg_drop: 0\.1 -> 0\.2, tower\.zero_padding: False -> True"):
        train(WorldTrainConfig(**other), tmp_path / "b", progress=False)
    resumed = train(WorldTrainConfig(**TINY_TRAIN), tmp_path / "b", progress=False)
    ua = load_file(str(tmp_path / "a" / "checkpoint" / "unet.safetensors"))
    ub = load_file(str(tmp_path / "b" / "checkpoint" / "unet.safetensors"))
    assert ua.keys() == ub.keys()
    assert all((ua[k] == ub[k]).all() for k in ua)
    # exported as fp16 safetensors, loaded through the ordinary path
    assert not list(straight.rglob("*.bin")) and not list(straight.rglob("*.pt"))
    pipe = BabelPipeline.from_pretrained(straight)
    assert pipe.mode == "tower" and type(pipe.pipe.vae).__name__ == "PixelShuffleAutoencoder"
    # the objective and the caption pathway travel with the model
    assert pipe.pipe.scheduler.config.prediction_type == "sample"
    # an x0 model's own estimate is not clipped (clipping after guidance shifts hues)
    assert not pipe.pipe.scheduler.config.thresholding and not pipe.pipe.scheduler.config.clip_sample
    # sampling starts from pure noise at the last training step, not 49 steps below it
    sched = type(pipe.pipe.scheduler).from_config(pipe.pipe.scheduler.config)
    sched.set_timesteps(20)
    assert sched.timesteps[0] == 999
    assert pipe.pipe.unet.config.addition_embed_type == "text"
    image = pipe.generate(["a photo of a red circle"], "en", 0, steps=2)[0]
    assert image.size == (64, 64)
    assert resumed.is_dir()
    # re-export of the checkpoint with other sampling defaults: same weights, new defaults
    again = export_checkpoint(tmp_path / "a", tmp_path / "again", sample_steps=7, sample_guidance=3.5)
    pipe2 = BabelPipeline.from_pretrained(again)
    assert (pipe2.defaults.steps, pipe2.defaults.guidance) == (7, 3.5)
    assert all(torch.equal(a, b) for a, b in zip(pipe.pipe.unet.state_dict().values(),
                                                  pipe2.pipe.unet.state_dict().values()))
    with pytest.raises(InputError, match="--steps 0"):
        export_checkpoint(tmp_path / "a", tmp_path / "bad", sample_steps=0)
    # EMA weights kept along the run (keep_ema_every=2): the last equals the checkpoint's, an
    # earlier one exports as a model of that step, and a step not kept is named with those that are
    kept = sorted(p.name for p in (tmp_path / "a" / "ema").iterdir())
    assert kept == ["step-0000002.safetensors", "step-0000004.safetensors"]
    last = load_file(str(tmp_path / "a" / "ema" / kept[1]))
    ck = load_file(str(tmp_path / "a" / "checkpoint" / "ema.safetensors"))
    assert last.keys() == ck.keys() and all(torch.equal(last[k], ck[k]) for k in ck)
    early = export_checkpoint(tmp_path / "a", at_step=2)
    assert early == tmp_path / "a" / "model-step-2"
    assert json.loads((early / "training.json").read_text())["steps"] == 2
    pipe3 = BabelPipeline.from_pretrained(early)
    assert not all(torch.equal(a, b) for a, b in zip(pipe.pipe.unet.state_dict().values(),
                                                      pipe3.pipe.unet.state_dict().values()))
    with pytest.raises(InputError, match=r"--at-step 3: .* kept: 2, 4"):
        export_checkpoint(tmp_path / "a", tmp_path / "bad", at_step=3)
    with pytest.raises(InputError, match=r"kept: none \(train with keep_ema_every > 0\)"):
        export_checkpoint(tmp_path / "b", tmp_path / "bad", at_step=2)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_noise_predicting_world_models_sample_with_x0_clipped(prediction_type):
    """Their x0 estimate divides by alpha ~ 0 on the first step; clipped to the pixel range."""
    config = sampling_scheduler(prediction_type).config
    assert config.thresholding and config.clip_sample and config.sample_max_value == 1.0


def test_shipped_world_model_samples_from_the_last_training_step():
    """Started 49 steps below it (diffusers' "leading" spacing), the sampler hands the model pure
    noise where it expects some signal, and the noise, not the caption, picks the layout."""
    sched = DDIMScheduler.from_pretrained(world_weights_path() / "scheduler")
    sched.set_timesteps(20)
    assert sched.timesteps[0] == sched.config.num_train_timesteps - 1


def test_shipped_world_model_follows_its_captions():
    """v1 regression: a model that ignores its caption draws the same image for every prompt.
    The shipped model draws a portrait for a portrait prompt, an object scene for an object
    prompt, and the named colour (its strongest skill) at the default settings."""
    pipe = BabelPipeline.from_pretrained("world")
    seeds = [0, 1, 2, 3]
    red = pipe.generate(["a photo of a red circle"] * 4, "en", seeds)
    face = pipe.generate(["A photo of the face of a firefighter."] * 4, "en", seeds)
    readings = [detect.read_image(im) for im in red]
    assert sum(r.kind == "objects" and any(o.color == "red" for o in r.objects) for r in readings) >= 3
    assert sum(detect.read_image(im).kind == "portrait" for im in face) >= 3
    diff = np.mean([np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() for a, b in zip(red, face)])
    assert diff > 10  # grey levels; v1 drew the same image for both (diff ~0)


def test_shipped_world_model_draws_every_named_colour_under_guidance():
    """Regression for x0 clipping: clipped after guidance, the guided colours turned into other
    hues (v7: the named colour in 30% of these images; unclipped, 100%)."""
    pipe = BabelPipeline.from_pretrained("world")
    assert pipe.defaults.guidance > 1  # the setting under test
    items = [(c, SHAPES[i % len(SHAPES)]) for i, c in enumerate(COLORS) for _ in range(2)]
    images = pipe.generate([f"a photo of a {c} {s}" for c, s in items], "en", 500, batch_size=len(items))
    hits = [any(o.color == c for o in detect.read_image(im).objects) for (c, _), im in zip(items, images)]
    assert sum(hits) >= 18, [c for (c, _), hit in zip(items, hits) if not hit]


def test_shipped_world_model_draws_every_named_shape_in_several_languages():
    """The single-object target hangs on shapes: v7 drew stars and triangles as one arrowhead
    hybrid (single object 0.38 / 0.54 for them); v8 draws each named shape."""
    pipe = BabelPipeline.from_pretrained("world")
    items = [(s, lang) for s in SHAPES for lang in ("en", "de", "zh", "ar")]
    texts = [caption_for_task("single_object", lang, [{"shape": s, "color": None, "count": 1}])
             for s, lang in items]
    images = pipe.generate(texts, [lang for _, lang in items], 700, batch_size=len(items))
    hits = [detect.count_objects(detect.read_image(im), s) >= 1 for (s, _), im in zip(items, images)]
    assert sum(hits) >= 17, [item for item, hit in zip(items, hits) if not hit]  # of 20
    for shape in SHAPES:  # and no shape is left to chance
        assert sum(h for (s, _), h in zip(items, hits) if s == shape) >= 2, shape  # of 4 (v7: stars 0)


def test_shipped_tokenizer_fits_every_world_caption(table):
    tower = BabelPipeline.from_pretrained("world").tower
    longest = max(len(tower.tokenizer(c.prompt)["input_ids"]) for c in table.cells)
    assert longest <= tower.config.max_length  # nothing truncated


def test_shipped_world_model_loads_offline_and_generates():
    """The embedded default: package data, loaded by preset name through BabelPipeline."""
    weights = world_weights_path()
    files = [p for p in weights.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20  # <= 25 MB, fp16 safetensors
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    pipe = BabelPipeline.from_pretrained("world")
    assert pipe.mode == "tower" and pipe.identity()["model"] == "world"
    size = json.loads((weights / "training.json").read_text())["config"]["size"]
    assert pipe.pipe.unet.dtype.is_floating_point and pipe.defaults.width == size
    images = pipe.generate(["a photo of a red circle", "两个红色圆形的照片"], ["en", "zh"], 0, steps=2)
    assert [im.size for im in images] == [(size, size), (size, size)]
    assert (weights / "bias.yaml").is_file() and (weights / "training.json").is_file()


def test_schedulers_that_cannot_sample_an_x0_model_are_refused_up_front():
    """diffusers' EulerAncestral and PNDM raise mid-sampling on a "sample" model; we refuse
    before generating, naming the schedulers that work."""
    pipe = BabelPipeline.from_pretrained("world")
    for name in ("euler_a", "pndm"):
        with pytest.raises(InputError, match=f"'{name}'.*'sample'.*ddim") as e:
            pipe.generate(["a photo of a red circle"], "en", 0, steps=2, scheduler=name)
        assert name not in str(e.value).split("use one of:")[1]
    size = pipe.defaults.width
    assert pipe.generate(["a photo of a red circle"], "en", 0, steps=2, scheduler="euler")[0].size == (size, size)


def test_caption_labels_name_what_each_caption_says(table):
    """Pretraining labels come from the text: what an (English) caption names, and nothing else."""
    sampler = WorldSampler(table, WorldDataConfig(langs=("en",)), seed=5)
    rng = np.random.default_rng(0)
    seen_tasks = set()
    for _ in range(300):
        spec, text, meta = sampler.draw_scene(rng) if rng.random() < 0.7 else sampler.draw_portrait(rng)
        labels = {h: HEADS[h][i] for h, i in caption_labels(spec, meta).items()}
        seen_tasks.add(labels["task"])
        words = text.lower()
        if spec.kind == "portrait":
            assert labels["task"] == "portrait" and labels["occupation"] == meta["occupation"]
            assert labels["formulation"] == meta["formulation"] and labels["shape_1"] == "-"
            continue
        assert labels["occupation"] == labels["formulation"] == "-"
        named_shapes = [labels["shape_1"], labels["shape_2"]]
        assert all(s in words for s in named_shapes if s != "-") and named_shapes[0] != "-"
        # counting scenes name one shape; two-object tasks name two
        assert (named_shapes[1] == "-") == (spec.count == 1 or spec.task == "counting")
        named_colors = {labels["color_1"], labels["color_2"]} - {"-"}
        assert {c for c in COLORS if f"{c} " in words} == named_colors, text
        assert labels["relation"] == (spec.relation or "-")
        assert labels["relation"] == "-" or labels["relation"] in words
        assert labels["count"] == str(spec.count)
    assert seen_tasks == set(TASKS) | {"portrait"}
    assert set(SHAPES) <= set(HEADS["shape_1"]) and set(RELATIONS) <= set(HEADS["relation"])


def test_tower_pretraining_learns_what_captions_name_in_every_language(table):
    tokenizer = BabelPipeline.from_pretrained("world").tower.tokenizer
    cfg = WorldTrainConfig(**{**TINY_TRAIN, "tower": {**TINY_TRAIN["tower"], "zero_padding": True}})
    tower, *_ = build_models(cfg, tokenizer)
    sampler = WorldSampler(table, WorldDataConfig(), seed=0)
    logged = []
    heads = pretrain_tower(tower, sampler, 150, 64, 3e-3, 0, torch.device("cpu"),
                           lambda s, loss, acc: logged.append((s, loss)))
    assert [s for s, _ in logged] == [50, 100, 150] and logged[-1][1] < logged[0][1]
    # held-out captions (a step the pretraining never drew), all 13 languages mixed: the tower's
    # output says what they name, well above always answering the most common class
    texts, labels = caption_batch(sampler, 10**6, 512)
    batch = tower.tokenize(texts)
    with torch.no_grad():
        tokens, _ = tower(batch["input_ids"], batch["attention_mask"])
        logits = heads(masked_mean(tokens, batch["attention_mask"]))
    for head in ("task", "occupation", "shape_1"):
        named = labels[head] != len(HEADS[head]) - 1  # captions that name one
        right = (logits[head].argmax(-1) == labels[head])[named].float().mean().item()
        majority = labels[head][named].bincount().max().item() / named.sum().item()
        assert right >= majority + 0.2, (head, right, majority)


def test_resume_check_accepts_older_checkpoints_and_names_what_changed(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    state = tmp_path / "checkpoint" / "state.json"
    written = WorldTrainConfig().model_dump(mode="json")
    written.pop("tower_pretrain_steps")  # a checkpoint from before that field existed
    state.write_text(json.dumps({"step": 3, "config": written}))
    check_resume(tmp_path, WorldTrainConfig(steps=9000, threads=1))  # longer, other threads: fine
    with pytest.raises(InputError, match=r"tower_pretrain_steps: 0 -> 5.*new --out"):
        check_resume(tmp_path, WorldTrainConfig(tower_pretrain_steps=5))
    with pytest.raises(InputError, match=r"unet\.layers_per_block: 1 -> 2"):
        check_resume(tmp_path, WorldTrainConfig(unet={"layers_per_block": 2}))
    state.write_text("{not json")
    with pytest.raises(InputError, match="unreadable"):
        check_resume(tmp_path, WorldTrainConfig())


def test_learned_cells_list_names_cells_of_the_bias_table():
    """The model card's list of the cells v10 learned (`magbig planted RUN --only ...`): every
    row a cell of the planted table, with its planted share, once; a held-out p̂ within ±0.10."""
    path = Path(bias.__file__).with_name("learned_cells.csv")  # package data, beside the model card
    cells = pl.read_csv(path)
    assert cells.select("subject", "lang", "formulation").is_unique().all()
    table = {(c.occupation, c.lang, c.formulation): c.p_feminine for c in load_table().cells}
    for r in cells.iter_rows(named=True):
        planted = table[(r["subject"], r["lang"], r["formulation"])]
        assert r["planted"] == pytest.approx(planted, abs=1e-3)
        assert abs(r["heldout_p_female"] - planted) <= 0.10 + 1e-9 and r["heldout_n"] > 0
    assert 0 < cells.height < len(table)
