"""World m-DPG: dense world prompts in 13 languages with DPG-style question graphs, and the
world's exact detector as the VQA oracle.

Each prompt is a :class:`~neobabel.world.dense.DenseScene` (two groups of objects with shape,
colour and count, and a spatial relation between them, or "and"), captioned in every language by
the world's caption grammar. Its question graph, in English and in DPG-Bench's tuple format:

    1 entity - whole (A)                      "Is there a circle?"                     parents 0
    2 entity - whole (B)                                                               parents 0
    3 attribute - color (A, red)              "Is the circle red?"                     parents 1
    4 attribute - color (B, blue)                                                      parents 2
    5 other - count (A, ==2)                  "Are there exactly two circles?"         parents 1
    6 other - count (B, ==1)                                                           parents 2
    7 relation - spatial (A, B, left of)      "Is the circle left of the square?"      parents 1,2

The oracle (:class:`WorldOracle`) reads each image with :func:`neobabel.world.detect.read_image`
and answers from the tuple: entity = at least one object of the shape; colour = at least one
object of the shape in that colour; count = exactly that many objects of the shape; relation =
GenEval's rule on the largest object of each shape (:func:`~neobabel.world.detect.relation_holds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neobabel.errors import InputError
from neobabel.eval.dpg import DpgItem, DpgQuestion, parse_tuple
from neobabel.languages import LANGUAGE_CODES
from neobabel.world import detect
from neobabel.world.captions import caption
from neobabel.world.dense import DenseScene, sample_dense_scene
from neobabel.world.spec import COLORS, RELATIONS, SHAPES

_NUMBER = {1: "one", 2: "two", 3: "three", 4: "four"}


def _noun(shape: str, count: int) -> str:
    return shape if count == 1 else ("crosses" if shape == "cross" else f"{shape}s")


def scene_questions(scene: DenseScene) -> tuple[DpgQuestion, ...]:
    """The question graph of a dense scene (see the module docstring)."""
    a, b = scene.groups
    qs = []
    for i, g in enumerate((a, b)):
        qs.append((1 + i, (0,), f"entity - whole ({g.shape})",
                   f"Is there a {g.shape}?" if g.count == 1 else f"Are there {_noun(g.shape, 2)}?", "entity", "whole"))
    for i, g in enumerate((a, b)):
        be = "Is" if g.count == 1 else "Are"
        qs.append((3 + i, (1 + i,), f"attribute - color ({g.shape}, {g.color})",
                   f"{be} the {_noun(g.shape, g.count)} {g.color}?", "attribute", "color"))
    for i, g in enumerate((a, b)):
        be = "Is" if g.count == 1 else "Are"
        qs.append((5 + i, (1 + i,), f"other - count ({g.shape}, =={g.count})",
                   f"{be} there exactly {_NUMBER[g.count]} {_noun(g.shape, g.count)}?", "other", "count"))
    if scene.relation is not None:
        be = "Is" if a.count == 1 else "Are"
        qs.append((7, (1, 2), f"relation - spatial ({a.shape}, {b.shape}, {scene.relation})",
                   f"{be} the {_noun(a.shape, a.count)} {scene.relation} the {_noun(b.shape, b.count)}?",
                   "relation", "spatial"))
    return tuple(DpgQuestion(qid, parents, tup, text, broad, detailed) for qid, parents, tup, text, broad, detailed in qs)


def scene_caption(scene: DenseScene, lang: str) -> str:
    return caption(lang, [(g.shape, g.color, g.count) for g in scene.groups], scene.relation)


def world_dpg_scenes(n_prompts: int, seed: int = 2107) -> list[DenseScene]:
    """``n_prompts`` distinct dense scenes, a pure function of the seed."""
    rng = np.random.default_rng([seed, 21])
    scenes: list[DenseScene] = []
    while len(scenes) < n_prompts:
        s = sample_dense_scene(rng)
        if s not in scenes:
            scenes.append(s)
    return scenes


def world_dpg_items(n_prompts: int, langs: Sequence[str] | None = None, seed: int = 2107) -> list[DpgItem]:
    """The world m-DPG set: every scene in every language (same ``item_id`` across languages)."""
    langs = list(langs or LANGUAGE_CODES)
    scenes = world_dpg_scenes(n_prompts, seed)
    return [DpgItem(f"world{i:03d}", scene_caption(s, lang), scene_questions(s), lang)
            for lang in langs for i, s in enumerate(scenes)]


class WorldOracle:
    """The exact detector as a VQA backend for world questions (answers are 0 or 1)."""

    name = "world (exact detector)"
    reference = False

    def answer(self, reading: detect.Reading, tuple_text: str) -> bool:
        kind, args = parse_tuple(tuple_text)
        shapes_ok = len(args) >= 1 and args[0] in SHAPES and (kind != "relation - spatial" or
                                                              (len(args) == 3 and args[1] in SHAPES and args[2] in RELATIONS))
        if kind == "attribute - color":
            shapes_ok = shapes_ok and len(args) == 2 and args[1] in COLORS
        try:
            if not shapes_ok:
                raise ValueError(tuple_text)
            if kind == "entity - whole":
                return detect.count_objects(reading, args[0]) >= 1
            if kind == "attribute - color":
                return detect.count_objects(reading, args[0], args[1]) >= 1
            if kind == "other - count":
                return detect.count_objects(reading, args[0]) == int(args[1].lstrip("="))
            if kind == "relation - spatial":
                return detect.relation_holds(reading, args[0], args[1], args[2])
        except (IndexError, ValueError):
            pass
        raise InputError(f"the world oracle answers world questions only, not {tuple_text!r}; "
                         "use --vqa blip or --vqa paligemma for other prompts")

    def p_yes_questions(self, images: Sequence[Any], questions: Sequence[DpgQuestion]) -> np.ndarray:
        readings: dict[int, detect.Reading] = {}
        out = np.zeros(len(images))
        for i, (im, q) in enumerate(zip(images, questions)):
            if id(im) not in readings:  # one reading per image, whatever its number of questions
                readings[id(im)] = detect.read_image(im)
            out[i] = float(self.answer(readings[id(im)], q.tuple))
        return out


__all__ = ["WorldOracle", "scene_questions", "scene_caption", "world_dpg_items", "world_dpg_scenes"]
