"""The validator's data tables, shipped as YAML in ``magbig/data/artifacts/`` and checked on load.

- ``known_mistranslations.yaml``: curated mistranslations of the official release, by prompt id;
- ``lexicon.yaml``: per language, the word for "face" and the explicit gender words.

Each file is read once (``functools.cache``) through ``importlib.resources``, so it works from an
installed wheel. A broken table is an InputError naming the file, the entry and what is wrong,
raised on first use rather than as a wrong validation result later. The ``parse_*`` functions
take the text, so a test (or a user checking an edited copy) can validate any file.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, NamedTuple


from magbig.prompts.model import OCCUPATIONS, TRAITS, YamlLoader
from neobabel.configfile import parse_yaml
from neobabel.errors import InputError
from neobabel.formulations import FORMULATIONS
from neobabel.languages import LANGUAGE_CODES

GENDERS: tuple[str, ...] = ("feminine", "masculine")
# Regex alternatives matched as whole words (the lexicon's `whole_words`).
_WHOLE_WORDS = r"(?<!\w)(?:{})(?!\w)"


class Mistranslation(NamedTuple):
    """The exact mistranslated text of one prompt and an English gloss of what it asks for."""

    text: str
    gloss: str


@dataclass(frozen=True)
class LanguageLexicon:
    """What the validator searches for in one language's prompts."""

    face_words: tuple[str, ...]
    face: re.Pattern
    gender_words: tuple[tuple[re.Pattern, str], ...]  # (regex, "feminine" | "masculine")


def _data_file(name: str) -> tuple[str, str]:
    """(text, a path to name in messages) of a file in magbig/data/artifacts/."""
    text = resources.files("magbig").joinpath("data", "artifacts", name).read_text(encoding="utf-8")
    return text, f"magbig/data/artifacts/{name}"


@functools.cache
def known_mistranslations() -> Mapping[str, Mistranslation]:
    """prompt id -> Mistranslation, from the shipped table (read-only)."""
    return MappingProxyType(parse_mistranslations(*_data_file("known_mistranslations.yaml")))


@functools.cache
def lexicon() -> Mapping[str, LanguageLexicon]:
    """language code -> LanguageLexicon, from the shipped table (read-only)."""
    return MappingProxyType(parse_lexicon(*_data_file("lexicon.yaml")))


# --------------------------------------------------------------------------------------------
# checks shared by both tables


def _read_entries(text: str, where: str, list_key: str) -> list[Any]:
    """The entry list of a table file: a mapping {version: int, <list_key>: [...]}, nothing else."""
    data = parse_yaml(text, where, YamlLoader)
    if not isinstance(data, dict) or set(data) != {"version", list_key}:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{where}: expected exactly the top-level keys 'version' and {list_key!r}, found {keys}")
    if isinstance(data["version"], bool) or not isinstance(data["version"], int):
        raise InputError(f"{where}: version {data['version']!r} is not an integer")
    if not isinstance(data[list_key], list) or not data[list_key]:
        raise InputError(f"{where}: {list_key!r} must be a non-empty list of entries")
    return data[list_key]


def _check_keys(entry: Any, required: set[str], optional: set[str], label: str) -> dict:
    if not isinstance(entry, dict):
        raise InputError(f"{label}: expected a mapping, found {entry!r}")
    missing = sorted(required - set(entry))
    unknown = sorted(set(entry) - required - optional)
    if missing:
        raise InputError(f"{label}: missing field {missing[0]!r} (required: {', '.join(sorted(required))})")
    if unknown:
        raise InputError(f"{label}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(required | optional))})")
    return entry


def _text(entry: dict, key: str, label: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{label}: {key} must be a non-empty string, found {value!r}")
    return value


def _regex(pattern: str, label: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise InputError(f"{label}: invalid regex {pattern!r} ({exc})") from None


def _known_lang(lang: Any, label: str) -> str:
    if lang not in LANGUAGE_CODES:
        raise InputError(f"{label}: unknown language {lang!r}; use one of: {', '.join(LANGUAGE_CODES)}")
    return lang


# --------------------------------------------------------------------------------------------
# the two tables


def parse_mistranslations(text: str, where: str) -> dict[str, Mistranslation]:
    """Validate a known-mistranslations file: every entry has prompt_id, text and gloss; the id
    names a MAGBIG subject, a known language and formulation; no prompt id twice."""
    subjects = set(OCCUPATIONS) | set(TRAITS)
    table: dict[str, Mistranslation] = {}
    first_entry: dict[str, int] = {}
    for i, entry in enumerate(_read_entries(text, where, "mistranslations"), start=1):
        named = entry.get("prompt_id") if isinstance(entry, dict) else None
        label = f"{where}: entry {i}" + (f" ({named!r})" if isinstance(named, str) else "")
        _check_keys(entry, {"prompt_id", "text", "gloss"}, set(), label)
        prompt_id = _text(entry, "prompt_id", label)
        subject, _, rest = prompt_id.partition("/")
        lang, _, formulation = rest.partition("/")
        if subject not in subjects:
            raise InputError(f"{label}: unknown subject {subject!r}; use a key of magbig/data/prompts/en.yaml")
        _known_lang(lang, label)
        if formulation not in FORMULATIONS:
            raise InputError(f"{label}: unknown formulation {formulation!r}; use one of: {', '.join(FORMULATIONS)}")
        if prompt_id in table:
            raise InputError(f"{label}: duplicate of entry {first_entry[prompt_id]}; keep one entry per prompt id")
        first_entry[prompt_id] = i
        table[prompt_id] = Mistranslation(_text(entry, "text", label).strip(), _text(entry, "gloss", label))
    return table


def _parse_gender_word(entry: Any, label: str) -> tuple[re.Pattern, str]:
    _check_keys(entry, {"gender"}, {"whole_words", "pattern"}, label)
    if entry["gender"] not in GENDERS:
        raise InputError(f"{label}: gender {entry['gender']!r} is not one of: {', '.join(GENDERS)}")
    if ("whole_words" in entry) == ("pattern" in entry):
        raise InputError(f"{label}: give exactly one of 'whole_words' (a list) or 'pattern' (a regex)")
    if "pattern" in entry:
        return _regex(_text(entry, "pattern", label), label), entry["gender"]
    words = entry["whole_words"]
    if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
        raise InputError(f"{label}: whole_words must be a non-empty list of words, found {words!r}")
    return _regex(_WHOLE_WORDS.format("|".join(words)), label), entry["gender"]


def parse_lexicon(text: str, where: str) -> dict[str, LanguageLexicon]:
    """Validate a lexicon file: one entry per language of neobabel.languages, each with
    face_words, a face_pattern that compiles, and gender words that compile."""
    table: dict[str, LanguageLexicon] = {}
    for i, entry in enumerate(_read_entries(text, where, "languages"), start=1):
        label = f"{where}: entry {i}"
        if not isinstance(entry, dict):
            raise InputError(f"{label}: expected a mapping with lang, face_words, face_pattern, gender_words")
        lang = _known_lang(entry.get("lang"), label)
        label = f"{where}: entry {i} (lang {lang!r})"
        _check_keys(entry, {"lang", "face_words", "face_pattern"}, {"gender_words"}, label)
        if lang in table:
            raise InputError(f"{label}: a second entry for {lang!r}; keep one entry per language")
        words = entry["face_words"]
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise InputError(f"{label}: face_words must be a non-empty list of words, found {words!r}")
        gender_words = entry.get("gender_words") or []
        if not isinstance(gender_words, list):
            raise InputError(f"{label}: gender_words must be a list of entries")
        table[lang] = LanguageLexicon(
            face_words=tuple(words),
            face=_regex(_text(entry, "face_pattern", label), label),
            gender_words=tuple(_parse_gender_word(g, f"{label} gender_words[{j}]")
                               for j, g in enumerate(gender_words, start=1)),
        )
    missing = [c for c in LANGUAGE_CODES if c not in table]
    if missing:
        # a language without an entry would silently skip the face and gender checks
        raise InputError(f"{where}: no entry for language {missing[0]!r}; every language of "
                         "neobabel.languages needs face_words and face_pattern")
    return table
