"""The language registry: the 13 supported languages and how to name them.

Every other module takes language codes from here (`get_language`, `normalize_lang`), so an
unknown language is rejected in one place with one message.
"""

from __future__ import annotations

from dataclasses import dataclass

from neobabel.errors import InputError


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1
    name: str  # English name
    native: str  # endonym
    script: str  # ISO 15924 name of the main script
    direction: str  # "ltr" | "rtl"
    grammatical_gender: bool  # do nouns for people carry grammatical gender?


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in [
        Language("en", "English", "English", "Latin", "ltr", False),
        Language("de", "German", "Deutsch", "Latin", "ltr", True),
        Language("fr", "French", "Français", "Latin", "ltr", True),
        Language("es", "Spanish", "Español", "Latin", "ltr", True),
        Language("it", "Italian", "Italiano", "Latin", "ltr", True),
        Language("nl", "Dutch", "Nederlands", "Latin", "ltr", True),
        Language("ru", "Russian", "Русский", "Cyrillic", "ltr", True),
        Language("zh", "Chinese", "中文", "Han (Simplified)", "ltr", False),
        Language("ja", "Japanese", "日本語", "Japanese (Han + Kana)", "ltr", False),
        Language("ko", "Korean", "한국어", "Hangul", "ltr", False),
        Language("ar", "Arabic", "العربية", "Arabic", "rtl", True),
        Language("hi", "Hindi", "हिन्दी", "Devanagari", "ltr", True),
        Language("fa", "Persian", "فارسی", "Arabic (Persian)", "rtl", False),
    ]
}

LANGUAGE_CODES: tuple[str, ...] = tuple(LANGUAGES)

# English names (any case) and a few common aliases map to codes; MAGBIG's release spells
# languages out in English ("german"), NeoBabel's in English too ("persian").
_ALIASES: dict[str, str] = {lang.name.lower(): code for code, lang in LANGUAGES.items()}
_ALIASES.update({"farsi": "fa", "mandarin": "zh", "chinese (simplified)": "zh"})


def normalize_lang(value: str) -> str:
    """Return the code for a code or English name, case-insensitively.

    Raises InputError naming the bad value and listing the supported codes.
    """
    key = str(value).strip().lower().replace("_", "-")
    if key in LANGUAGES:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    # Accept regional tags such as "de-AT" or "zh-Hans" by their primary subtag.
    primary = key.split("-")[0]
    if primary in LANGUAGES and primary != key:
        return primary
    raise InputError(
        f"unknown language {value!r}; use one of: {', '.join(LANGUAGE_CODES)} "
        "(codes or English names, e.g. 'de' or 'German')"
    )


def get_language(value: str) -> Language:
    return LANGUAGES[normalize_lang(value)]


def parse_langs(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Parse a comma-separated string or a list of languages; "all" means every language."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(i).strip() for i in items if str(i).strip()]
    if len(items) == 1 and items[0].lower() == "all":
        return list(LANGUAGE_CODES)
    out: list[str] = []
    for item in items:
        code = normalize_lang(item)
        if code not in out:
            out.append(code)
    return out
