"""Captions for the Babel world's object scenes, in all 13 languages.

English follows GenEval's wording exactly ("a photo of two red circles", "a photo of a blue
square left of a green triangle"). Each language's words are data, one file per language in
``neobabel/world/captions_data/<code>.yaml`` so that a native speaker reviews one file, notes
included: nouns with gender and the case/number forms its frames need, colour adjectives
inflected for agreement, number words, relation phrases, and one fixed, natural frame per
structure:

    one object            "a photo of A"
    two objects           "a photo of A and B"
    two objects + relation "a photo of A REL B"     (A REL B: objects[0] is REL objects[1])

This module is the grammar that combines them, and the check of the files (read once; a broken
file is a one-line InputError naming the file and the entry). The shipped world model was
trained on these captions: changing a word changes what it was taught.

An object is ``(shape, colour_or_None, count)``; any object may carry a colour and any count
1-4, in every task, because training data names colours only sometimes. With
``numeral_one=True`` (what the counting task uses) a count of 1 is said with the number word
("a photo of one circle") where the language distinguishes it from the indefinite article.

Portrait captions are not here: they come from the MAGBIG prompt set.

Style decisions, applied uniformly:
- English is lowercase like GenEval. The other cased languages (de fr es it nl ru) start with a
  capital letter, as NeoBabel's published m-GenEval translations do ("Een foto van een koe",
  "Une photo d'une vache"). No final full stop anywhere (GenEval has none).
- Where NeoBabel's m-GenEval translations exist (nl fr zh hi fa) the frame and the relation
  words follow them where they are grammatical ("Une photo d'un X sous un Y", "یک عکس از ...",
  "... के नीचे ... की तस्वीर", "...的照片").
- Comments marked UNSURE in the data files flag choices a native speaker might want to revisit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, NamedTuple

from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES, normalize_lang
from neobabel.world.captiontables import load_caption_tables, parse_caption_tables  # noqa: F401 (public here too)
from neobabel.world.captiontables import shipped_tables as _tables
from neobabel.world.captiontables import COUNTS
# The world's vocabulary has one home, the scene spec; captions only put it into words.
from neobabel.world.spec import COLORS, RELATIONS, SHAPES, TASKS  # noqa: F401 (TASKS: public here too)


class Obj(NamedTuple):
    """One validated object of a scene: a shape, an optional colour, a count (1-4)."""

    shape: str
    color: str | None
    count: int


# --- Input normalisation --------------------------------------------------------------------


def _norm_word(value: Any, allowed: Sequence[str], what: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, got {value!r}; use one of: "
                         f"{', '.join(allowed)}")
    key = value.strip().lower().replace("_", " ").replace("-", " ")
    key = " ".join(key.split())
    if key not in allowed:
        raise InputError(f"unknown {what} {value!r}; use one of: {', '.join(allowed)}")
    return key


def _norm_object(item: Any) -> Obj:
    if isinstance(item, Mapping):
        shape, color, count = item.get("shape"), item.get("color"), item.get("count", 1)
    elif isinstance(item, (tuple, list)):
        if len(item) != 3:
            raise InputError(f"an object is (shape, color_or_None, count), got {item!r}")
        shape, color, count = item
    elif hasattr(item, "shape"):
        shape = item.shape
        color = getattr(item, "color", None)
        count = getattr(item, "count", 1)
    else:
        raise InputError(f"an object is (shape, color_or_None, count), got {item!r}")
    shape = _norm_word(shape, SHAPES, "shape")
    if color is not None:
        color = _norm_word(color, COLORS, "color")
    if isinstance(count, bool) or not isinstance(count, int) or count not in COUNTS:
        raise InputError(f"count must be an integer 1-4, got {count!r}")
    return Obj(shape, color, int(count))


def normalize_scene(objects: Iterable[Any],
                    relation: str | None = None) -> tuple[tuple[Obj, ...], str | None]:
    """Validate a scene and return it in canonical form (raises InputError)."""
    if isinstance(objects, (str, bytes)) or not isinstance(objects, Iterable):
        raise InputError(f"objects must be a list of (shape, color, count), got {objects!r}")
    objs = tuple(_norm_object(o) for o in objects)
    if len(objs) not in (1, 2):
        raise InputError(f"a scene has 1 or 2 objects, got {len(objs)}")
    rel = None if relation is None else _norm_word(relation, RELATIONS, "relation")
    if rel is not None and len(objs) != 2:
        raise InputError(f"relation {relation!r} needs exactly 2 objects, got {len(objs)}")
    if rel is None and len(objs) == 2 and objs[0][:2] == objs[1][:2]:
        # "a circle and a circle" is not a sentence anyone writes; say "two circles" instead.
        raise InputError(f"two objects with the same shape and colour ({objs[0].shape}, "
                         f"{objs[0].color}) and no relation: give one object with a count instead")
    return objs, rel


# --- Noun phrases: (tables, object, numeral_one, case) -> text. Only Russian uses the case. ---

Tables = Mapping[str, Any]


def _np_en(t: Tables, o: Obj, one: bool, case: str | None) -> str:
    noun = t["nouns"][o.shape]["sg" if o.count == 1 else "pl"]
    core = f"{t['adjectives'][o.color]} {noun}" if o.color else noun
    if o.count == 1 and not one:  # "an orange circle"
        return f"{t['articles']['vowel' if core[0] in 'aeiou' else 'consonant']} {core}"
    return f"{t['numbers'][o.count]} {core}"


def _np_de(t: Tables, o: Obj, one: bool, case: str | None) -> str:
    noun = t["nouns"][o.shape]
    adj = f"{t['adjectives'][o.color]} " if o.color else ""
    if o.count == 1:  # "ein" is both the article and the numeral "one"
        return f"{t['articles'][noun['gender']]} {adj}{noun['sg']}"
    return f"{t['numbers'][o.count]} {adj}{noun['pl']}"


def _np_nl(t: Tables, o: Obj, one: bool, case: str | None) -> str:
    noun = t["nouns"][o.shape]
    adj = ""
    if o.color:  # uninflected only after een/één with a singular het-noun: "een rood vierkant"
        bare = o.count == 1 and noun["article"] == "het"
        adj = t["adjectives"][o.color]["bare" if bare else "inflected"] + " "
    if o.count == 1:
        return f"{t['numbers'][1] if one else t['articles']['indefinite']} {adj}{noun['sg']}"
    return f"{t['numbers'][o.count]} {adj}{noun['pl']}"


def _np_romance(t: Tables, o: Obj, one: bool, case: str | None) -> str:
    """fr es it: the article (also the numeral "one") or a number, the noun, the colour."""
    noun = t["nouns"][o.shape]
    number = "sg" if o.count == 1 else "pl"
    words = [t["articles"][noun["gender"]] if o.count == 1 else t["numbers"][o.count], noun[number]]
    if o.color:
        words.append(t["adjectives"][o.color][f"{noun['gender']}_{number}"])
    return " ".join(words)


def _np_ru(t: Tables, o: Obj, one: bool, case: str | None) -> str:
    case = case or "gen"  # "Фотография" and "и" take the genitive
    noun = t["nouns"][o.shape]
    number = "sg" if o.count == 1 else "pl"
    words = []
    if o.count > 1 or one:
        words.append(t["numbers"][case][o.count if o.count > 1 else f"one_{noun['gender']}"])
    if o.color:
        adj = t["adjectives"][o.color]
        agreement = noun["gender"] if number == "sg" else "pl"
        words.append(adj["stem"] + t["adjective_endings"][adj["declension"]][f"{case}_{agreement}"])
    words.append(noun[f"{case}_{number}"])
    return " ".join(words)


def _np_east_asian(t: Tables, o: Obj, one: bool, case: str | None, sep: str = "") -> str:
    """zh ja ko: [colour] noun, with a number word and counter when counted."""
    noun = t["nouns"][o.shape]
    if o.color:
        noun = t["adjectives"][o.color] + sep + noun
    if o.count == 1 and not one:
        return noun
    return t["frames"]["counted"].format(number=t["numbers"][o.count], noun=noun)


def _np_ar(t: Tables, o: Obj, one: bool, case: str | None) -> str:
    noun = t["nouns"][o.shape]
    gender = noun["gender"]
    adj = t["adjectives"][o.color] if o.color else None
    if o.count == 1:
        words = [noun["sg"], adj and adj[f"{gender}_sg"], t["numbers"][1][gender] if one else None]
    elif o.count == 2:
        words = [noun["dual"], adj and adj[f"{gender}_dual"]]
    else:  # the adjective of a non-human plural is feminine singular
        words = [t["numbers"][o.count][gender], noun["pl"], adj and adj["f_sg"]]
    return " ".join(w for w in words if w)


def _np_hi(t: Tables, o: Obj, one: bool, case: str | None) -> str:
    words = [t["numbers"][o.count]]  # एक doubles as the indefinite article
    if o.color:
        words.append(t["adjectives"][o.color])
    words.append(t["nouns"][o.shape]["sg" if o.count == 1 else "pl"])
    return " ".join(words)


def _np_fa(t: Tables, o: Obj, one: bool, case: str | None) -> str:
    words = [t["numbers"][o.count], t["nouns"][o.shape]]  # nouns stay singular after numbers
    if o.color:
        words.append(t["adjectives"][o.color])
    return " ".join(words)


# --- Sentences: a frame of the language's file filled with its noun phrases -----------------


def _fr_elide(text: str) -> str:
    """French "de" elides before a vowel: "de un" -> "d'un"."""
    return re.sub(r"\bde (?=[aeiouhéè])", "d'", text)


def _ko_has_final(word: str) -> bool:
    """Does the last Hangul syllable end in a consonant (batchim)?"""
    code = ord(word[-1]) - 0xAC00
    if not 0 <= code < 11172:
        raise ValueError(f"not a Hangul syllable: {word[-1]!r}")
    return code % 28 != 0


def _ko_particles(text: str) -> str:
    """Resolve the frames' "[이/가]": the first form after a final consonant, else the second."""
    return re.sub(r"(.)\[(\w+)/(\w+)\]",
                  lambda m: m[1] + (m[2] if _ko_has_final(m[1]) else m[3]), text)


_NOUN_PHRASES: dict[str, Callable[[Tables, Obj, bool, str | None], str]] = {
    "en": _np_en, "de": _np_de, "nl": _np_nl, "fr": _np_romance, "es": _np_romance,
    "it": _np_romance, "ru": _np_ru, "zh": _np_east_asian, "ja": _np_east_asian,
    "ko": functools.partial(_np_east_asian, sep=" "),  # Korean writes colour and noun apart
    "ar": _np_ar, "hi": _np_hi, "fa": _np_fa,
}
_FINISH: dict[str, Callable[[str], str]] = {"fr": _fr_elide, "ko": _ko_particles}
assert tuple(sorted(_NOUN_PHRASES)) == tuple(sorted(LANGUAGE_CODES)), "a language lacks captions"


def _sentence(code: str, objs: tuple[Obj, ...], rel: str | None, one: bool) -> str:
    t = _tables()[code]
    noun_phrase = _NOUN_PHRASES[code]
    a = noun_phrase(t, objs[0], one, None)
    if len(objs) == 1:
        text = t["frames"]["one"].format(a=a)
    elif rel is None:
        text = t["frames"]["and"].format(a=a, b=noun_phrase(t, objs[1], one, None))
    else:
        case = t.get("relation_cases", {}).get(rel)  # Russian: the case the relation governs
        b = noun_phrase(t, objs[1], one, case)
        text = t["frames"]["relation"].format(a=a, b=b, rel=t["relations"][rel])
    finish = _FINISH.get(code)
    return finish(text) if finish else text


# --- Public API -----------------------------------------------------------------------------


def caption(lang: str, objects: Iterable[Any], relation: str | None = None, *,
            numeral_one: bool = False) -> str:
    """The caption of an object scene in one language.

    ``objects`` holds 1 or 2 items ``(shape, color_or_None, count)`` (mappings or objects with
    ``shape``/``color``/``count`` attributes work too). ``relation`` ("left of", "right of",
    "above", "below") needs 2 objects and reads ``objects[0] REL objects[1]``.
    ``numeral_one`` says a count of 1 with the number word ("one circle") where the language
    has one distinct from the article. Raises InputError for anything unknown.
    """
    code = normalize_lang(lang)
    objs, rel = normalize_scene(objects, relation)
    return _sentence(code, objs, rel, bool(numeral_one))


def captions(objects: Iterable[Any], relation: str | None = None,
             langs: Iterable[str] | None = None, *, numeral_one: bool = False) -> dict[str, str]:
    """The same scene captioned in several languages (all 13 by default): {code: caption}."""
    objs, rel = normalize_scene(objects, relation)
    codes = LANGUAGE_CODES if langs is None else [normalize_lang(x) for x in langs]
    return {c: _sentence(c, objs, rel, bool(numeral_one)) for c in codes}


def check_task(task: str, objects: Iterable[Any], relation: str | None = None) -> None:
    """Raise InputError unless the scene has the structure of a GenEval task.

    Colours are optional on every object in every task, except that ``colors`` needs its one
    object coloured and ``color_attr`` needs both. Counts are free (1-4) except in
    ``single_object`` and ``colors`` (exactly one object, count 1).
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; use one of: {', '.join(TASKS)}")
    objs, rel = normalize_scene(objects, relation)
    n = len(objs)
    if task in ("single_object", "colors", "counting"):
        if n != 1:
            raise InputError(f"task {task} has one object, got {n}")
        if task != "counting" and objs[0].count != 1:
            raise InputError(f"task {task} has a count of 1, got {objs[0].count}")
        if task == "colors" and objs[0].color is None:
            raise InputError("task colors needs a colour on its object")
    else:
        if n != 2:
            raise InputError(f"task {task} has two objects, got {n}")
        if task == "position" and rel is None:
            raise InputError("task position needs a relation")
        if task != "position" and rel is not None:
            raise InputError(f"task {task} takes no relation, got {relation!r}")
        if task == "color_attr" and any(o.color is None for o in objs):
            raise InputError("task color_attr needs a colour on both objects")


def caption_for_task(task: str, lang: str, objects: Iterable[Any],
                     relation: str | None = None) -> str:
    """Caption a scene as GenEval's ``task`` words it (checks the scene fits the task).

    The counting task names every count with its number word, "one" included
    ("a photo of one circle"); the other tasks use the article for a single object.
    """
    objects = list(objects) if not isinstance(objects, (str, bytes)) else objects
    check_task(task, objects, relation)
    return caption(lang, objects, relation, numeral_one=(task == "counting"))


__all__ = [
    "COLORS", "COUNTS", "RELATIONS", "SHAPES", "TASKS", "Obj", "caption", "caption_for_task",
    "captions", "check_task", "load_caption_tables", "normalize_scene", "parse_caption_tables",
]
