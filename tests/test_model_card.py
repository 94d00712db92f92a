"""save_pretrained writes a model card (README.md with YAML front matter, as on the hub);
loading ignores it."""

from __future__ import annotations

import yaml

from neobabel.languages import LANGUAGE_CODES
from neobabel.modelfolder import MODEL_CARD
from neobabel.registry import folder_fingerprint


def _front_matter(folder) -> tuple[dict, str]:
    text = (folder / MODEL_CARD).read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(front), body


def test_saved_tower_model_has_a_card_that_loading_ignores(load, tiny_random_dir, tmp_path):
    pipe = load(tiny_random_dir)
    out = tmp_path / "saved"
    pipe.save_pretrained(out)
    meta, body = _front_matter(out)
    assert meta["library_name"] == "neobabel" and meta["pipeline_tag"] == "text-to-image"
    assert meta["language"] == list(LANGUAGE_CODES)
    assert meta["license"] and meta["neobabel"]["mode"] == "tower"
    assert "multilingual tower" in meta["neobabel"]["architecture"]["text_encoder"]
    assert meta["neobabel"]["defaults"]["steps"] == pipe.defaults.steps
    assert f"# {pipe.name}" in body

    # The card is not the model: a folder without it loads the same and has the same revision.
    before = folder_fingerprint(out)
    (out / MODEL_CARD).write_text("edited by hand\n", encoding="utf-8")
    assert folder_fingerprint(out) == before
    (out / MODEL_CARD).unlink()
    again = load(out)
    assert again.identity() == load(out).identity() and again.revision == before


def test_world_model_card_records_its_training(load, tmp_path):
    world = load("world")
    assert world.training and world.training["steps"] > 0  # from the shipped training.json
    world.save_pretrained(tmp_path / "world-copy")
    meta, _ = _front_matter(tmp_path / "world-copy")
    assert meta["license"] == "apache-2.0"
    assert "Babel world" in meta["neobabel"]["training_data"]
    assert meta["neobabel"]["training"] == {k: world.training[k] for k in ("steps", "train_seconds")}
    assert set(LANGUAGE_CODES) <= set(meta["language"])


def test_native_model_card_is_english_only(load, tiny_sd_dir, tmp_path):
    pipe = load(tiny_sd_dir)
    pipe.save_pretrained(tmp_path / "native")
    meta, _ = _front_matter(tmp_path / "native")
    assert meta["language"] == ["en"] and meta["neobabel"]["mode"] == "native"
    assert meta["license"] == "other"
    load(tmp_path / "native")  # loads with the card present
