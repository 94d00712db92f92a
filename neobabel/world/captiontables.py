"""The world's caption tables: one YAML file per language under ``captions_data/``.

What each language's file must hold (its schema), the check on load — every language of
:mod:`neobabel.languages` present, no unknown or missing key, no empty word, grammatical
categories from a closed list, templates with exactly their placeholders — and the shipped
tables, read once through importlib.resources (so a wheel works too) and frozen. Anything
wrong is one InputError line naming the file and the entry.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from neobabel.configfile import parse_yaml
from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES
from neobabel.world.spec import COLORS, MAX_COUNT, MIN_COUNT, RELATIONS, SHAPES

if TYPE_CHECKING:  # annotations only; importlib.resources.abc is Python 3.11+
    from importlib.resources.abc import Traversable

COUNTS: tuple[int, ...] = tuple(range(MIN_COUNT, MAX_COUNT + 1))


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
    data = parse_yaml(text, where)
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
def shipped_tables() -> Mapping[str, Any]:
    """The shipped tables, read once (through importlib.resources, so a wheel works too)."""
    folder = resources.files("neobabel.world").joinpath("captions_data")
    return load_caption_tables(folder, "neobabel/world/captions_data")
