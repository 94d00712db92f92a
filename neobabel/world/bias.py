"""The planted bias of the Babel world: share of feminine-coded portraits per prompt cell.

A cell is (occupation, language, formulation). The table is generated from a few stated world
parameters (below) and stored, versioned, in `configs/world/bias.yaml`; the training sampler
draws from the stored table exactly, and the audit compares what a model learned against it.

The captions (field `prompt`) are the world's own data: its copy of the built-in MAGBIG prompts
for its twelve occupations, kept in the shipped table. The world never imports magbig (it sits
below it); tests/test_world_bias_table.py checks that the copy still equals magbig's built-in set.

The parameters are properties of this synthetic world, chosen to mirror MAGBIG's findings
in miniature (occupational stereotypes, stronger for generic-masculine direct prompts in
gendered languages, near parity for indirect and gender-star prompts, feminine forms nearly
all feminine, languages differing). They are not estimates about people.

`p_feminine` is P(feminine | not ambiguous): a fixed `ambiguous_share` of portraits in every
cell has the ambiguous presentation (the audit's "uncertain" status), the rest are feminine
with probability p_feminine and masculine otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from neobabel.errors import InputError
from neobabel.world.spec import OCCUPATIONS
from neobabel.formulations import FORMULATIONS
from neobabel.languages import LANGUAGES
from neobabel.configfile import shipped_configs

# v2: cells whose prompts are the same text (ru nurse: direct = feminine) share one share.
BIAS_VERSION = 2
# The shipped table: read here, never written by a command (`neobabel world bias --out PATH`
# writes a new one elsewhere; copying it over this file is a reviewed change).
DEFAULT_PATH = shipped_configs() / "world" / "bias.yaml"

# Stereotype direction per occupation, -1 (masculine-coded) .. +1 (feminine-coded).
STEREOTYPE = {
    "nurse": 0.85, "hairdresser": 0.7, "teacher": 0.45, "cook": 0.1, "doctor": -0.3,
    "scientist": -0.4, "farmer": -0.55, "police officer": -0.6, "pilot": -0.7,
    "mechanic": -0.8, "firefighter": -0.85, "construction worker": -0.9,
}
# How strongly each language's direct prompts carry the stereotype.
LANG_STRENGTH = {
    "en": 1.0, "de": 1.1, "fr": 1.0, "es": 1.0, "it": 1.05, "nl": 0.9, "ru": 1.1, "zh": 0.8,
    "ja": 0.9, "ko": 0.85, "ar": 1.15, "hi": 1.1, "fa": 0.8,
}
STEREOTYPE_SCALE = 0.4  # p = 0.5 + scale * strength * stereotype for direct prompts
GENERIC_MASCULINE_SHIFT = 0.12  # extra masculine pull of generic-masculine direct prompts
INDIRECT_SCALE = 0.08
GENDER_STAR_SCALE = 0.04
FEMININE_FORM_SHARE = 0.95
AMBIGUOUS_SHARE = 0.10
CLIP = (0.03, 0.97)
# The audit's order (neobabel.formulations); the name stays for neobabel.world.supervision.
FORMULATION_ORDER = FORMULATIONS

# (occupation, language, formulation) -> caption text
Captions = Mapping[tuple[str, str, str], str]


def direct_form_of(lang: str) -> str:
    """What a language's direct prompt is: a generic masculine where nouns for people carry
    grammatical gender, else ungendered (the `direct_form` of magbig's built-in files)."""
    return "generic_masculine" if LANGUAGES[lang].grammatical_gender else "ungendered"


def planted_share(occupation: str, lang: str, formulation: str, direct_form: str) -> float:
    s = STEREOTYPE[occupation]
    if formulation == "direct":
        p = 0.5 + STEREOTYPE_SCALE * LANG_STRENGTH[lang] * s
        if direct_form == "generic_masculine":
            p -= GENERIC_MASCULINE_SHIFT
    elif formulation == "indirect":
        p = 0.5 + INDIRECT_SCALE * s
    elif formulation == "gender_star":
        p = 0.5 + GENDER_STAR_SCALE * s
    elif formulation == "feminine":
        p = FEMININE_FORM_SHARE
    else:
        raise InputError(f"unknown formulation {formulation!r}")
    return round(min(max(p, CLIP[0]), CLIP[1]), 3)


@dataclass(frozen=True)
class BiasCell:
    occupation: str
    lang: str
    formulation: str
    p_feminine: float
    prompt: str


@dataclass(frozen=True)
class BiasTable:
    version: int
    ambiguous_share: float
    cells: tuple[BiasCell, ...]

    def lookup(self, occupation: str, lang: str, formulation: str) -> BiasCell:
        for c in self.cells:
            if (c.occupation, c.lang, c.formulation) == (occupation, lang, formulation):
                return c
        raise KeyError((occupation, lang, formulation))

    def to_dict(self) -> dict:
        return {"version": self.version, "ambiguous_share": self.ambiguous_share,
                "cells": [vars(c) for c in self.cells]}


def shipped_captions() -> dict[tuple[str, str, str], str]:
    """The world's captions: the `prompt` of every cell of the shipped table."""
    return {(c.occupation, c.lang, c.formulation): c.prompt for c in load_table().cells}


def build_table(captions: Captions | None = None) -> BiasTable:
    """The planted share of every captioned (occupation, language, formulation) cell.

    `captions` defaults to the shipped table's; pass others to caption the world anew (e.g.
    from magbig's built-in set, as tests/test_world_bias_table.py does).
    """
    captions = shipped_captions() if captions is None else captions
    # A caption can only carry one share: where two formulations of a language are the same
    # text, the first formulation in FORMULATION_ORDER (direct before feminine) sets it.
    order = {f: i for i, f in enumerate(FORMULATION_ORDER)}

    def first_sets_share(item):
        (occupation, lang, formulation), _ = item
        return order[formulation], OCCUPATIONS.index(occupation), lang

    share_of_text: dict[tuple[str, str], float] = {}
    cells = []
    for (occupation, lang, formulation), text in sorted(captions.items(), key=first_sets_share):
        share = share_of_text.setdefault(
            (lang, text), planted_share(occupation, lang, formulation, direct_form_of(lang)))
        cells.append(BiasCell(occupation, lang, formulation, share, text))
    cells.sort(key=lambda c: (OCCUPATIONS.index(c.occupation), c.lang, c.formulation))
    return BiasTable(BIAS_VERSION, AMBIGUOUS_SHARE, tuple(cells))


def write_table(path: str | Path, captions: Captions | None = None) -> BiasTable:
    """Generate the table and write it to `path` (never the shipped file: see DEFAULT_PATH)."""
    path = Path(path)
    table = build_table(captions)
    header = ("# Planted bias of the Babel world (generated by `python -m neobabel.world.bias`).\n"
              "# p_feminine = P(feminine-coded | not ambiguous) for portraits captioned with `prompt`.\n"
              "# Arbitrary parameters of a synthetic world (see neobabel/world/bias.py), not claims about people.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(table.to_dict(), allow_unicode=True, sort_keys=False, width=200),
                    encoding="utf-8")
    return table


def load_table(path: str | Path | None = None) -> BiasTable:
    path = Path(path) if path else DEFAULT_PATH
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        cells = tuple(BiasCell(**c) for c in data["cells"])
        table = BiasTable(int(data["version"]), float(data["ambiguous_share"]), cells)
    except FileNotFoundError:
        raise InputError(f"bias table {path} not found; generate one with `neobabel world bias --out PATH`") from None
    except (yaml.YAMLError, KeyError, TypeError) as e:
        raise InputError(f"bias table {path} is malformed ({type(e).__name__}: {e}); regenerate it") from None
    for c in cells:
        if not 0.0 <= c.p_feminine <= 1.0:
            raise InputError(f"bias table {path}: p_feminine {c.p_feminine} for {c.occupation}/{c.lang}/"
                             f"{c.formulation} is outside [0, 1]")
    return table


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bias.yaml")
    t = write_table(out)
    print(f"wrote {out} ({len(t.cells)} cells, version {t.version})")
