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
import string
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import yaml

from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES, normalize_lang

if TYPE_CHECKING:  # annotations only; importlib.resources.abc is Python 3.11+
    from importlib.resources.abc import Traversable

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
# GenEval's ten colours, in GenEval's order.
COLORS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white",
)
COUNTS: tuple[int, ...] = (1, 2, 3, 4)
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
TASKS: tuple[str, ...] = (
    "single_object", "two_object", "counting", "colors", "position", "color_attr",
)


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


# --- The language files: what each must hold, and the check on load -------------------------

# A table's schema: (the keys it must have, the fields each entry must have or None when each
# entry is one string). Both must match exactly, so a typo is an error, not a missing word.
TableSchema = tuple[tuple[Any, ...], "tuple[Any, ...] | None"]
_FRAME_FIELDS = {  # the placeholders each frame uses: all of them and no others
    "one": {"a"}, "and": {"a", "b"}, "relation": {"a", "b", "rel"}, "counted": {"number", "noun"},
}
_CHOICES = {  # values that name a grammatical category, not a word (genders: German has three)
    "gender": ("m", "f"), "article": ("de", "het"), "declension": ("hard", "soft"),
    "relation_cases": ("gen", "ins"), "de:gender": ("m", "f", "n"),
}
_FRAMES = ("one", "and", "relation")
_EVERY_COUNT = (COUNTS, None)
_PLURAL_COUNTS = ((2, 3, 4), None)  # where the article already says "one"


def _schema(frames: tuple[str, ...] = _FRAMES, **tables: TableSchema) -> dict[str, TableSchema]:
    """Frames, relations, one word per colour and per count, unless ``tables`` says otherwise."""
    return {"frames": (frames, None), "relations": (RELATIONS, None),
            "adjectives": (COLORS, None), "numbers": _EVERY_COUNT, **tables}


_ROMANCE = _schema(  # fr es it: article or number, noun, then the agreeing colour
    articles=(("m", "f"), None), nouns=(SHAPES, ("sg", "pl", "gender")),
    adjectives=(COLORS, ("m_sg", "f_sg", "m_pl", "f_pl")), numbers=_PLURAL_COUNTS,
)
_EAST_ASIAN = _schema(  # zh ja ko: the bare noun, or a number word with a counter ("counted")
    (*_FRAMES, "counted"), nouns=(SHAPES, None),
)
_SCHEMAS: dict[str, dict[str, TableSchema]] = {
    "en": _schema(articles=(("consonant", "vowel"), None), nouns=(SHAPES, ("sg", "pl"))),
    "de": _schema(articles=(("m", "f", "n"), None), nouns=(SHAPES, ("sg", "pl", "gender")),
                  numbers=_PLURAL_COUNTS),
    "nl": _schema(articles=(("indefinite",), None), nouns=(SHAPES, ("sg", "pl", "article")),
                  adjectives=(COLORS, ("bare", "inflected"))),
    "fr": _ROMANCE, "es": _ROMANCE, "it": _ROMANCE,
    "ru": _schema(nouns=(SHAPES, ("gender", "gen_sg", "gen_pl", "ins_sg", "ins_pl")),
                  adjectives=(COLORS, ("stem", "declension")),
                  adjective_endings=(("hard", "soft"), ("gen_m", "gen_f", "gen_pl",
                                                        "ins_m", "ins_f", "ins_pl")),
                  numbers=(("gen", "ins"), ("one_m", "one_f", 2, 3, 4)),
                  relation_cases=(RELATIONS, None)),
    "zh": _EAST_ASIAN, "ja": _EAST_ASIAN, "ko": _EAST_ASIAN,
    "ar": _schema(nouns=(SHAPES, ("sg", "dual", "pl", "gender")),
                  adjectives=(COLORS, ("m_sg", "f_sg", "m_dual", "f_dual")),
                  numbers=((1, 3, 4), ("m", "f"))),
    "hi": _schema(nouns=(SHAPES, ("sg", "pl"))),
    "fa": _schema(nouns=(SHAPES, None)),
}
assert tuple(sorted(_SCHEMAS)) == tuple(sorted(LANGUAGE_CODES)), "a language lacks a schema"


def _check_keys(value: Any, keys: tuple[Any, ...], where: str, label: str) -> None:
    if not isinstance(value, dict):
        raise InputError(f"{where}: {label} must be a mapping, found {value!r}")
    expected = ", ".join(map(str, keys))
    unknown = [k for k in value if k not in keys]  # first: a typo'd key is the line to fix
    if unknown:
        raise InputError(f"{where}: {label} has unknown key {unknown[0]!r} (allowed: {expected})")
    missing = [k for k in keys if k not in value]
    if missing:
        raise InputError(f"{where}: {label} lacks {missing[0]!r} (needs: {expected})")


def _check_word(value: Any, allowed: tuple[str, ...] | None, where: str, label: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {label} must be a non-empty string, found {value!r}")
    if allowed is not None and value not in allowed:
        raise InputError(f"{where}: {label} is {value!r}; use one of: {', '.join(allowed)}")


def _check_frame(frame: str, name: str, where: str) -> None:
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(frame) if field is not None}
    except ValueError as exc:  # an unbalanced brace
        raise InputError(f"{where}: frames.{name} is not a valid template ({exc})") from None
    if used != _FRAME_FIELDS[name]:
        need = ", ".join(f"{{{f}}}" for f in sorted(_FRAME_FIELDS[name]))
        raise InputError(f"{where}: frames.{name} must use exactly {need}, found {frame!r}")


def _read_only(value: Any) -> Any:
    """Every caption shares the tables: freeze them so that no caller can change a word."""
    if isinstance(value, dict):
        return MappingProxyType({k: _read_only(v) for k, v in value.items()})
    return value


def parse_caption_tables(code: str, text: str, where: str) -> Mapping[str, Any]:
    """Check one language's tables (the text of its YAML file); return them read-only.

    Anything wrong is a one-line InputError naming ``where`` (the file) and the entry.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{where}:{line} is not valid YAML; fix the syntax") from None
    schema = _SCHEMAS[code]
    _check_keys(data, tuple(schema), where, "the file")
    for table, (keys, fields) in schema.items():
        _check_keys(data[table], keys, where, table)
        for key in keys:
            entry, label = data[table][key], f"{table}.{key}"
            if fields is None:
                _check_word(entry, _CHOICES.get(table), where, label)
                continue
            _check_keys(entry, fields, where, label)
            for field in fields:
                allowed = _CHOICES.get(f"{code}:{field}", _CHOICES.get(field))
                _check_word(entry[field], allowed, where, f"{label}.{field}")
    for name, frame in data["frames"].items():
        _check_frame(frame, name, where)
    return _read_only(data)


def load_caption_tables(folder: Traversable, label: str | None = None) -> Mapping[str, Any]:
    """{code: tables} from ``folder`` (one ``<code>.yaml`` per language; ``label`` names it)."""
    label = str(folder) if label is None else label
    present = {item.name for item in folder.iterdir()}
    expected = {f"{code}.yaml" for code in LANGUAGE_CODES}
    tables = {}
    for code in LANGUAGE_CODES:
        where = f"{label}/{code}.yaml"
        if f"{code}.yaml" not in present:
            raise InputError(f"{where}: missing; every language of neobabel.languages needs one")
        text = folder.joinpath(f"{code}.yaml").read_text(encoding="utf-8")
        tables[code] = parse_caption_tables(code, text, where)
    for stray in sorted(present - expected):
        raise InputError(f"{label}/{stray}: not a language of neobabel.languages; remove it")
    return MappingProxyType(tables)


@functools.cache
def _tables() -> Mapping[str, Any]:
    """The shipped tables, read once (through importlib.resources, so a wheel works too)."""
    folder = resources.files("neobabel.world").joinpath("captions_data")
    return load_caption_tables(folder, "neobabel/world/captions_data")


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
