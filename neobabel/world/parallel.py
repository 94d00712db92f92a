"""The world's captions as parallel text, and an oracle translator that inverts their grammar.

The world captions every scene in all 13 languages from one structure (neobabel.world.captions),
so its captions are parallel by construction: :func:`parallel_captions` writes the (en, lang,
text) rows `neobabel distill` reads. :class:`WorldOracleTranslator` maps any world caption back
to its English caption exactly, by enumerating the caption grammar: a translate-then-generate
baseline with a perfect translator, i.e. the upper bound of that route in this world (no real
MT system is this good).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from itertools import permutations, product
from pathlib import Path

import numpy as np

from neobabel.atomicfiles import atomic_write_text
from neobabel.languages import LANGUAGE_CODES
from neobabel.world.captions import COLORS, RELATIONS, SHAPES, caption
from neobabel.world.data import scene_caption
from neobabel.world.spec import MAX_COUNT, MIN_COUNT, TASKS, sample_object_scene

ORACLE_NAME = "world-oracle"  # the translator's model id in run records: an oracle, not an MT model


def parallel_captions(n_scenes: int, seed: int = 0, langs=LANGUAGE_CODES,
                      color_mention_prob: float = 0.5) -> Iterator[tuple[str, str, str]]:
    """(en, lang, text) for `n_scenes` random object scenes, each captioned in every non-English
    language of `langs`, colours named as in training data (WorldDataConfig.color_mention_prob).
    A function of the seed; its stream is separate from the evaluation suite's (seed 1234)."""
    rng = np.random.default_rng([seed, 11])
    for _ in range(n_scenes):
        scene = sample_object_scene(TASKS[int(rng.integers(len(TASKS)))], rng)
        mention = bool(rng.random() < color_mention_prob)
        en = scene_caption(scene, "en", mention)
        for lang in langs:
            if lang != "en":
                yield en, lang, scene_caption(scene, lang, mention)


def write_parallel_tsv(path: str | Path, n_scenes: int, seed: int = 0) -> int:
    """Write the parallel captions as a TSV with the header en, lang, text; the row count."""
    rows = list(parallel_captions(n_scenes, seed))
    atomic_write_text(Path(path), "en\tlang\ttext\n" + "".join(f"{e}\t{l}\t{t}\n" for e, l, t in rows))
    return len(rows)


def _scenes():
    """Every (objects, relation, numeral_one) the world captions: what scene_caption can say."""
    colors = (*COLORS, None)
    for shape, color, count in product(SHAPES, colors, range(MIN_COUNT, MAX_COUNT + 1)):
        yield ((shape, color, count),), None, True  # counting names every count ("one circle")
    for shape, color in product(SHAPES, colors):
        yield ((shape, color, 1),), None, False
    for (s1, s2), c1, c2 in product(permutations(SHAPES, 2), colors, colors):
        for rel in (None, *RELATIONS):
            yield ((s1, c1, 1), (s2, c2, 1)), rel, False


@functools.cache
def _inverse_tables() -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """{lang: {caption: English caption}} over the whole caption grammar, and per language the
    number of captions that two different scenes share (those cannot be inverted exactly)."""
    tables: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGE_CODES}
    clashes = dict.fromkeys(LANGUAGE_CODES, 0)
    for objects, rel, one in _scenes():
        en = caption("en", objects, rel, numeral_one=one)
        for lang in LANGUAGE_CODES:
            text = caption(lang, objects, rel, numeral_one=one)
            seen = tables[lang].setdefault(text, en)
            if seen != en:
                clashes[lang] += 1
    return tables, clashes


def _portrait_tables() -> dict[str, dict[str, str]]:
    """{lang: {portrait prompt: the English prompt of its occupation and formulation (else direct)}}."""
    from neobabel.world.bias import load_table  # the bias table: only for portraits

    cells = load_table().cells
    english = {(c.occupation, c.formulation): c.prompt for c in cells if c.lang == "en"}
    tables: dict[str, dict[str, str]] = {}
    for c in cells:
        if c.lang != "en":
            target = english.get((c.occupation, c.formulation), english[(c.occupation, "direct")])
            tables.setdefault(c.lang, {})[c.prompt] = target
    return tables


class WorldOracleTranslator:
    """Exact world-caption -> English translation (an oracle upper bound, not an MT model).

    Object captions invert exactly. ``portraits=True`` also translates the world's portrait
    prompts (the bias table's cells): each goes to the English prompt of the same occupation and
    formulation, and a formulation English lacks (feminine, gender-star) to the English direct
    prompt: "Ärztin" becomes "doctor", as MT of a gendered noun into English usually goes. The
    world's English grammar has no feminine occupation noun, so no translation could keep the
    grammatical gender here; this oracle shows what the audit sees when it is dropped.
    Texts outside the grammar are returned unchanged and counted in `misses`, so a run can say
    how many prompts the oracle could not translate.
    """

    name = ORACLE_NAME
    revision = "grammar"

    def __init__(self, portraits: bool = False):
        self.tables, self.clashes = _inverse_tables()
        self.misses = 0
        if portraits:
            self.name, self.tables = f"{ORACLE_NAME}-portraits", {k: dict(v) for k, v in self.tables.items()}
            for lang, table in _portrait_tables().items():
                self.tables[lang].update(table)

    def translate(self, texts: list[str], lang: str) -> list[str]:
        if lang == "en":
            return list(texts)
        table = self.tables[lang]
        out = []
        for text in texts:
            hit = table.get(text)
            self.misses += hit is None
            out.append(text if hit is None else hit)
        return out


__all__ = ["ORACLE_NAME", "WorldOracleTranslator", "parallel_captions", "write_parallel_tsv"]
