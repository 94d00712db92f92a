"""The caption data files (neobabel/world/captions_data/<code>.yaml): shipped, complete, checked.

A broken copy must fail on load with one line naming the file and the entry, never later as a
KeyError or, worse, as a silently different caption.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest

from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES
from neobabel.world.captions import caption, load_caption_tables, parse_caption_tables

SHIPPED = Path(str(resources.files("neobabel.world").joinpath("captions_data")))


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped folder."""
    folder = tmp_path / "captions"
    shutil.copytree(SHIPPED, folder)
    return folder


def _edit(folder: Path, code: str, old: str, new: str) -> None:
    path = folder / f"{code}.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {code}.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _load_error(folder: Path) -> str:
    with pytest.raises(InputError) as info:
        load_caption_tables(folder, "captions")
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


def test_shipped_tables_hold_every_language():
    tables = load_caption_tables(SHIPPED)
    assert set(tables) == set(LANGUAGE_CODES)
    assert {p.name for p in SHIPPED.iterdir()} == {f"{c}.yaml" for c in LANGUAGE_CODES}


def test_tables_are_read_only():
    tables = load_caption_tables(SHIPPED)
    with pytest.raises(TypeError):
        tables["de"]["nouns"]["circle"]["sg"] = "Ring"  # type: ignore[index]


def test_a_copy_loads_like_the_shipped_tables(copy: Path):
    assert load_caption_tables(copy) == load_caption_tables(SHIPPED)


# (file, text to replace, replacement, what the one-line error must name)
CORRUPTIONS = [
    ("de", "circle: {sg: Kreis,", "circle: {sg: '',",
     "captions/de.yaml: nouns.circle.sg must be a non-empty string"),
    ("de", "  white: weißen\n", "",
     "captions/de.yaml: adjectives lacks 'white'"),
    ("fr", "  circle: {", "  circel: {",
     "captions/fr.yaml: nouns has unknown key 'circel'"),
    ("ru", "{gender: f, gen_sg: звезды", "{gender: x, gen_sg: звезды",
     "captions/ru.yaml: nouns.star.gender is 'x'"),
    ("fr", "{sg: croix, pl: croix, gender: f}", "{sg: croix, pl: croix, gender: n}",
     "captions/fr.yaml: nouns.cross.gender is 'n'; use one of: m, f"),
    ("ru", "  above: ins\n", "  above: dat\n",
     "captions/ru.yaml: relation_cases.above is 'dat'"),
    ("en", "  one: a photo of {a}\n", "  one: a photo of {A}\n",
     "captions/en.yaml: frames.one must use exactly {a}"),
    ("ja", "relation: '{b}{rel}{a}の写真'", "relation: '{b}{rel}の写真'",
     "captions/ja.yaml: frames.relation must use exactly {a}, {b}, {rel}"),
    ("ko", "counted: '{noun} {number} 개'", "counted: '{noun} {number 개'",
     "captions/ko.yaml: frames.counted is not a valid template"),
    ("nl", "  3: drie\n", "  3: 3\n",
     "captions/nl.yaml: numbers.3 must be a non-empty string, found 3"),
    ("ar", "numbers:\n", "numbers: [\n",
     "captions/ar.yaml is not valid YAML at line"),
    ("hi", "\nrelations:\n", "\n_relations:\n",
     "captions/hi.yaml: the file has unknown key '_relations'"),
    ("hi", "  below: के नीचे\n", "",
     "captions/hi.yaml: relations lacks 'below'"),
]


@pytest.mark.parametrize("code, old, new, expected", CORRUPTIONS,
                         ids=[c[3].split(": ")[-1].split(" is ")[-1][:40] for c in CORRUPTIONS])
def test_a_corrupted_copy_fails_with_one_line_naming_file_and_entry(copy, code, old, new, expected):
    _edit(copy, code, old, new)
    assert expected in _load_error(copy)


def test_a_missing_language_file_is_named(copy: Path):
    (copy / "fa.yaml").unlink()
    assert _load_error(copy).startswith("captions/fa.yaml: missing")


def test_a_stray_file_is_named(copy: Path):
    (copy / "xx.yaml").write_text("frames: {}\n", encoding="utf-8")
    assert _load_error(copy).startswith("captions/xx.yaml: not a language")


def test_parse_names_the_given_file():
    text = (SHIPPED / "es.yaml").read_text(encoding="utf-8").replace("rojo, f_sg", "'  ', f_sg")
    with pytest.raises(InputError, match=r"^my/es\.yaml: adjectives\.red\.m_sg must be a non-empty"):
        parse_caption_tables("es", text, "my/es.yaml")


def test_words_come_from_the_data_files():
    """Spot check that the files are what captions are made of (full byte-identity is pinned in
    test_world_captions.py)."""
    assert caption("de", [("circle", "red", 1), ("star", None, 3)], "below") == (
        "Ein Foto von einem roten Kreis unter drei Sternen"
    )
    assert caption("fr", [("star", "white", 1)]) == "Une photo d'une étoile blanche"
    assert caption("ko", [("circle", "red", 3)]) == "빨간 원 세 개가 있는 사진"
