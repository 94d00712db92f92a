"""Code-switched captions of two-object world scenes, built from the caption grammar.

A code-switched caption has a *matrix* language, which gives the frame ("a photo of {a} {rel}
{b}"), the relation words and the first object's noun phrase ``a``, and an *embedded* language,
which gives the second object's noun phrase ``b``, formed by the embedded language's own grammar
(number, colour agreement; in Russian the case the relation governs in Russian):

- English-first (``cs_en_first``): English matrix, other language embedded:
  "a photo of two red circles left of un carré bleu"
- English-second (``cs_en_second``): other language's matrix, English embedded:
  "Une photo de deux cercles rouges à gauche de a blue square"

The matrix language's finishing rules apply only to its own words: French elision is not applied
before an English phrase, and a Korean particle after an embedded English phrase takes its
after-vowel form when the phrase ends in a vowel letter, else its after-consonant form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from neobabel.languages import normalize_lang
# The grammar's parts are private to captions.py; this module is its code-switching extension
# and combines the same parts (frames, noun phrases, finishing rules) instead of copying them.
from neobabel.world.captions import _FINISH, _NOUN_PHRASES, normalize_scene
from neobabel.world.captiontables import shipped_tables

VARIANTS = ("cs_en_first", "cs_en_second")
_SLOT = "\u0000"  # stands for the embedded phrase while the matrix language's rules run


def _ko_embedded(text: str, phrase: str) -> str:
    vowel_end = phrase[-1:].lower() in "aeiouy"
    return re.sub(_SLOT + r"\[(\w+)/(\w+)\]", lambda m: _SLOT + (m[2] if vowel_end else m[1]), text)


def code_switched_caption(matrix: str, embedded: str, objects: Iterable[Any], relation: str | None = None) -> str:
    """The caption of a two-object scene with ``matrix``'s frame and first object and
    ``embedded``'s second object (see the module docstring)."""
    m, e = normalize_lang(matrix), normalize_lang(embedded)
    objs, rel = normalize_scene(objects, relation)
    if len(objs) != 2:
        from neobabel.errors import InputError

        raise InputError(f"a code-switched caption needs two objects, got {len(objs)}")
    tables = shipped_tables()
    tm, te = tables[m], tables[e]
    a = _NOUN_PHRASES[m](tm, objs[0], False, None)
    if rel is None:
        b = _NOUN_PHRASES[e](te, objs[1], False, None)
        text = tm["frames"]["and"].format(a=a, b=_SLOT)
    else:
        b = _NOUN_PHRASES[e](te, objs[1], False, te.get("relation_cases", {}).get(rel))
        text = tm["frames"]["relation"].format(a=a, b=_SLOT, rel=tm["relations"][rel])
    if m == "ko":
        text = _ko_embedded(text, b)
    finish = _FINISH.get(m)
    if finish:
        text = finish(text)
    return text.replace(_SLOT, b)


def code_switched_pair(lang: str, objects: Iterable[Any], relation: str | None = None) -> dict[str, str]:
    """Both code-switched captions of a scene between English and ``lang``."""
    objects = list(objects)
    return {"cs_en_first": code_switched_caption("en", lang, objects, relation),
            "cs_en_second": code_switched_caption(lang, "en", objects, relation)}


__all__ = ["VARIANTS", "code_switched_caption", "code_switched_pair"]
