"""neobabel.languages: the 13-language registry, name/code parsing, `neobabel languages`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from neobabel.cli import app
from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES, LANGUAGES, get_language, normalize_lang, parse_langs

EXPECTED = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
    "nl": "Dutch", "ru": "Russian", "zh": "Chinese", "ja": "Japanese", "ko": "Korean",
    "ar": "Arabic", "hi": "Hindi", "fa": "Persian",
}
RTL = {"ar", "fa"}


def test_registry_has_exactly_the_13_languages():
    assert set(LANGUAGE_CODES) == set(EXPECTED)
    assert len(LANGUAGE_CODES) == 13
    for code, name in EXPECTED.items():
        lang = LANGUAGES[code]
        assert lang.code == code
        assert lang.name == name
        assert lang.native and lang.script
        assert lang.direction == ("rtl" if code in RTL else "ltr"), code


def test_scripts_of_non_latin_languages():
    assert get_language("ru").script.startswith("Cyrillic")
    assert get_language("hi").script == "Devanagari"
    assert get_language("ko").script == "Hangul"
    assert get_language("ar").script.startswith("Arabic")
    assert get_language("de").native == "Deutsch"
    assert get_language("zh").native == "中文"


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_every_code_and_english_name_resolves(code):
    name = EXPECTED[code]
    assert normalize_lang(code) == code
    assert normalize_lang(code.upper()) == code
    assert normalize_lang(name) == code
    assert normalize_lang(name.lower()) == code
    assert normalize_lang(name.upper()) == code
    assert normalize_lang(f"  {name}  ") == code


@pytest.mark.parametrize("value,code", [
    ("de-AT", "de"), ("de_at", "de"), ("DE-CH", "de"), ("zh-Hans", "zh"), ("zh-CN", "zh"),
    ("es-MX", "es"), ("en-GB", "en"), ("fa-IR", "fa"),
    ("Farsi", "fa"), ("Mandarin", "zh"),
])
def test_regional_tags_and_aliases(value, code):
    assert normalize_lang(value) == code


@pytest.mark.parametrize("bad", ["xx", "klingon", "", "d", "eng", "Deutschland", "-de", "pt"])
def test_unknown_language_lists_the_codes(bad):
    with pytest.raises(InputError) as e:
        normalize_lang(bad)
    msg = str(e.value)
    assert repr(bad) in msg
    for code in LANGUAGE_CODES:
        assert code in msg
    assert "\n" not in msg


def test_get_language_rejects_unknown():
    with pytest.raises(InputError, match="xx"):
        get_language("xx")


def test_parse_langs_all_and_dedupe():
    assert parse_langs("all") == list(LANGUAGE_CODES)
    assert parse_langs("ALL") == list(LANGUAGE_CODES)
    assert parse_langs(["all"]) == list(LANGUAGE_CODES)
    # Order of first appearance is kept; codes, names and tags for one language collapse.
    assert parse_langs("de,German,DE,fr,de-AT") == ["de", "fr"]
    assert parse_langs(" hi , zh ,, ar ") == ["hi", "zh", "ar"]
    assert parse_langs(["Japanese", "ja", "ko"]) == ["ja", "ko"]
    assert parse_langs(None) == []


def test_parse_langs_rejects_any_unknown_item():
    with pytest.raises(InputError, match="'xx'"):
        parse_langs("de,xx,fr")


def test_cli_languages_table():
    result = CliRunner().invoke(app, ["languages"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    for code, name in EXPECTED.items():
        assert code in result.output
        assert name in result.output
    for native in ("Deutsch", "中文", "हिन्दी", "العربية"):
        assert native in result.output


def test_cli_languages_json():
    result = CliRunner().invoke(app, ["languages", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["code"] for r in rows] == list(LANGUAGE_CODES)
    by_code = {r["code"]: r for r in rows}
    assert {"code", "name", "native", "script", "direction"} <= set(rows[0])
    assert by_code["fa"]["direction"] == "rtl" and by_code["fr"]["direction"] == "ltr"
    assert by_code["ja"]["native"] == "日本語"
    # Native names are printed as text, not \u escapes.
    assert "日本語" in result.output
