"""m-GenEval prompts in 13 languages, rendered from GenEval's specs.

One language = a lexicon (`<lang>.yaml`: the 80 COCO classes, 10 colours, numbers 2-4, the 4
relations, with whatever forms the language's grammar needs) + a grammar module (`<lang>.py`
with `render(spec, lex) -> str`). The validator uses `lex["colors"]` and `lex["numbers"]`
(every surface form a colour or number word can take) to check that a prompt names its count
and colour.
"""

from __future__ import annotations

import importlib
import json
from functools import lru_cache
from importlib import resources

import yaml

from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES

GENEVAL_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
GENEVAL_RELATIONS = ("left of", "right of", "above", "below")
GENEVAL_TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


def geneval_classes() -> tuple[str, ...]:
    """The 80 COCO class names, in GenEval's order (object_names.txt)."""
    return tuple(_lexicon_file("en")["class_order"])


@lru_cache(maxsize=None)
def _lexicon_file(lang: str) -> dict:
    if lang not in LANGUAGE_CODES:
        raise InputError(f"unknown language {lang!r}; use one of {', '.join(LANGUAGE_CODES)}")
    path = resources.files(__package__).joinpath(f"{lang}.yaml")
    if not path.is_file():
        raise InputError(f"no m-GenEval lexicon for {lang!r} yet (neobabel/eval/i18n/{lang}.yaml)")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def lexicon(lang: str) -> dict:
    return _lexicon_file(lang)


def compose(spec: dict, lex: dict, noun_phrase, joiner: str) -> str:
    """The body of a GenEval prompt for a language that builds it from noun phrases in GenEval's
    own order (en, de, nl, fr, es, it): "<A>", "<A> <joiner> <B>", "<count> <plural>",
    "<B> <relation> <A>" (include[1] is placed relative to include[0]). ``noun_phrase(item)``
    is the language's article + noun (+ agreeing colour)."""
    inc, tag = spec["include"], spec["tag"]
    if tag in ("single_object", "colors"):
        return noun_phrase(inc[0])
    if tag in ("two_object", "color_attr"):
        return f"{noun_phrase(inc[0])} {joiner} {noun_phrase(inc[1])}"
    if tag == "counting":
        item = inc[0]
        return f"{lex['numbers'][item['count']][0]} {lex['objects'][item['class']]['pl']}"
    if tag == "position":
        return f"{noun_phrase(inc[1])} {lex['relations'][inc[1]['position'][0]]} {noun_phrase(inc[0])}"
    raise ValueError(f"unknown GenEval tag {tag!r}")


def render(spec: dict, lang: str) -> str:
    """The prompt for one GenEval spec (tag/include/exclude) in `lang`."""
    grammar = importlib.import_module(f"{__package__}.{lang}")
    return grammar.render(spec, lexicon(lang))


@lru_cache(maxsize=1)
def geneval_specs() -> tuple[dict, ...]:
    text = resources.files("neobabel.eval").joinpath("data/geneval/specs.jsonl").read_text(encoding="utf-8")
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


def render_metadata(lang: str) -> list[dict]:
    """GenEval metadata lines for `lang`: the 553 specs, each with its rendered prompt."""
    return [{**spec, "prompt": render(spec, lang)} for spec in geneval_specs()]
