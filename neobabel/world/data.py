"""Training data for the world model, generated on the fly: (image, caption, spec) triples.

Batch t of a run depends only on (seed, t), so a resumed training run sees exactly the data
it would have seen without the interruption.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neobabel.languages import LANGUAGE_CODES
from neobabel.world.bias import BiasTable
from neobabel.world.captions import caption
from neobabel.world.render import render_array
from neobabel.world.spec import TASKS, ObjectScene, Portrait, sample_object_scene, sample_portrait


@dataclass(frozen=True)
class WorldDataConfig:
    size: int = 64
    portrait_fraction: float = 0.35
    # Object tasks where the caption may leave colours out (GenEval's single_object, counting,
    # two_object and position prompts name none); colours are named with this probability.
    color_mention_prob: float = 0.5
    langs: tuple[str, ...] = LANGUAGE_CODES


# GenEval tasks whose prompts always name the colours
COLOR_TASKS = ("colors", "color_attr")


def scene_caption(scene: ObjectScene, lang: str, name_colors: bool) -> str:
    """The caption of an object scene in one language (GenEval wording)."""
    always = scene.task in COLOR_TASKS
    col = (lambda o: o.color) if (always or name_colors) else (lambda o: None)
    if scene.task == "counting":
        o = scene.objects[0]
        return caption(lang, [(o.shape, col(o), len(scene.objects))], numeral_one=True)
    objs = [(o.shape, col(o), 1) for o in scene.objects]
    return caption(lang, objs, scene.relation)


class WorldSampler:
    def __init__(self, bias: BiasTable, config: WorldDataConfig = WorldDataConfig(), seed: int = 0):
        self.bias = bias
        self.config = config
        self.seed = seed
        self.cells = [c for c in bias.cells if c.lang in config.langs]
        if not self.cells:
            raise ValueError("no bias cells for the configured languages")

    def draw_portrait(self, rng: np.random.Generator):
        cell = self.cells[int(rng.integers(len(self.cells)))]
        u = rng.random()
        if u < self.bias.ambiguous_share:
            pres = "ambiguous"
        else:
            pres = "feminine" if rng.random() < cell.p_feminine else "masculine"
        return sample_portrait(rng, cell.occupation, pres), cell.prompt, {
            "occupation": cell.occupation, "lang": cell.lang, "formulation": cell.formulation}

    def draw_scene(self, rng: np.random.Generator):
        task = TASKS[int(rng.integers(len(TASKS)))]
        scene = sample_object_scene(task, rng)
        lang = self.config.langs[int(rng.integers(len(self.config.langs)))]
        # drawn for every task (the data stream, hence the shipped model, depends on it)
        mention = rng.random() < self.config.color_mention_prob
        named = mention or scene.task in COLOR_TASKS
        return scene, scene_caption(scene, lang, mention), {"task": task, "lang": lang, "colors_named": named}

    def draw(self, rng: np.random.Generator):
        """One training example's (spec, caption, metadata): a portrait or an object scene."""
        if rng.random() < self.config.portrait_fraction:
            return self.draw_portrait(rng)
        return self.draw_scene(rng)

    def batch(self, step: int, n: int):
        """Batch `step` of this run: uint8 images (n, H, W, 3), captions, metadata."""
        rng = np.random.default_rng([self.seed, step])
        images = np.empty((n, self.config.size, self.config.size, 3), dtype=np.uint8)
        texts, metas = [], []
        for i in range(n):
            spec, text, meta = self.draw(rng)
            images[i] = render_array(spec, int(rng.integers(2**31)), self.config.size)
            texts.append(text)
            metas.append({**meta, "spec": spec})
        return images, texts, metas


def caption_corpus(bias: BiasTable, n_scenes: int = 20000, seed: int = 0) -> list[str]:
    """Texts for training the tokenizer: every portrait prompt plus many scene captions."""
    sampler = WorldSampler(bias, seed=seed)
    rng = np.random.default_rng([seed, 10**9])
    texts = [c.prompt for c in bias.cells]
    for _ in range(n_scenes):
        texts.append(sampler.draw_scene(rng)[1])
    return texts


__all__ = ["WorldDataConfig", "WorldSampler", "scene_caption", "caption_corpus", "Portrait"]
