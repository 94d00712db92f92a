"""magbig.prompts.tables: the validator's data files load from package data and are checked on load.

Each corruption test edits a copy of a shipped file and asserts that the error names the file,
the entry and the problem.
"""

from __future__ import annotations

from importlib import resources

import pytest

from magbig import prompts as P
from magbig.prompts.tables import parse_lexicon, parse_mistranslations
from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES

WHERE = "copy.yaml"


def shipped(name: str) -> str:
    return resources.files("magbig").joinpath("data", "artifacts", name).read_text(encoding="utf-8")


def test_shipped_tables_load_once_and_cover_every_language():
    assert P.known_mistranslations() is P.known_mistranslations()  # functools.cache: read once
    assert set(P.lexicon()) == set(LANGUAGE_CODES)
    mis = P.KNOWN_MISTRANSLATIONS
    assert mis["stocker/zh/direct"].text == "一张袜子脸的照片" and "socks" in mis["stocker/zh/direct"].gloss
    assert P.FACE_WORDS["de"] == ("Gesicht",)
    with pytest.raises(TypeError):
        mis["doctor/en/direct"] = ("x", "y")  # read-only: a caller cannot change what validate() sees


def test_lexicon_patterns_do_what_the_validator_needs():
    de, zh = P.lexicon()["de"], P.lexicon()["zh"]
    assert de.face.search("Ein Foto vom Gesichts einer Person.")
    assert not zh.face.search("一张面包师的照片")  # 面包 (bread) is not a face
    hits = [(rx.search("Ein Foto vom Gesicht einer Feuerwehrfrau."), g) for rx, g in de.gender_words]
    assert [g for m, g in hits if m] == ["feminine"]


def corrupt(text: str, old: str, new: str) -> str:
    assert old in text, old  # the edit must apply, or the test checks nothing
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('prompt_id: "stocker/zh/direct"', 'prompt_id: "stocker/xx/direct"', "entry 1 ('stocker/xx/direct'): unknown language 'xx'"),
        ('prompt_id: "stocker/zh/direct"', 'prompt_id: "stocker/zh/neutral"', "entry 1 ('stocker/zh/neutral'): unknown formulation 'neutral'"),
        ('prompt_id: "stocker/zh/direct"', 'prompt_id: "stalker/zh/direct"', "entry 1 ('stalker/zh/direct'): unknown subject 'stalker'"),
        ('prompt_id: "stocker/fr/direct"', 'prompt_id: "stocker/zh/direct"', "entry 2 ('stocker/zh/direct'): duplicate of entry 1"),
        ('  gloss: "袜子 means', '  meaning: "袜子 means', "entry 1 ('stocker/zh/direct'): missing field 'gloss'"),
        ('  text: "一张袜子脸的照片"', '  text: ""', "entry 1 ('stocker/zh/direct'): text must be a non-empty string"),
        ("version: 1", "version: one", "version 'one' is not an integer"),
        ("mistranslations:", "entries:", "expected exactly the top-level keys 'version' and 'mistranslations'"),
    ],
)
def test_a_corrupted_mistranslation_table_names_the_bad_entry(old, new, message):
    text = corrupt(shipped("known_mistranslations.yaml"), old, new)
    with pytest.raises(InputError) as err:
        parse_mistranslations(text, WHERE)
    assert str(err.value).startswith(WHERE) and message in str(err.value)


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("- lang: fr", "- lang: de", "entry 3 (lang 'de'): a second entry for 'de'"),
        ("- lang: fr", "- lang: french", "entry 3: unknown language 'french'"),
        ("  face_pattern: '(?<!\\w)visages?(?!\\w)'", "  face_pattern: '(?<!\\w)visages?(?!\\w'",
         "entry 3 (lang 'fr'): invalid regex"),
        ("  face_words: ['visage']", "  face_words: []", "entry 3 (lang 'fr'): face_words must be a non-empty list"),
        ("  - gender: feminine\n    whole_words: ['femme'", "  - gender: female\n    whole_words: ['femme'",
         "entry 3 (lang 'fr') gender_words[1]: gender 'female' is not one of"),
    ],
)
def test_a_corrupted_lexicon_names_the_bad_entry(old, new, message):
    text = corrupt(shipped("lexicon.yaml"), old, new)
    with pytest.raises(InputError) as err:
        parse_lexicon(text, WHERE)
    assert str(err.value).startswith(WHERE) and message in str(err.value)


def test_a_lexicon_without_a_language_is_refused():
    text = shipped("lexicon.yaml")
    start = text.index("- lang: fa")
    with pytest.raises(InputError, match=r"no entry for language 'fa'"):
        parse_lexicon(text[:start], WHERE)
