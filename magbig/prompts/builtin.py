"""The built-in prompt set: YAML files in ``magbig/data/prompts/`` (schema in ``SCHEMA.md`` there).

Authored for this project in the 13 languages of ``neobabel.languages``; one file per language.
The same schema loads a user's own folder (:func:`load_yaml_dir`). Every schema violation is an
InputError naming the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path


from magbig.prompts.model import (
    DIRECT_FORMS,
    GENDER_STAR_LANGS,
    LANG_INDEX,
    SETS,
    SUBJECT_INDEX,
    Prompt,
    PromptSet,
    YamlLoader,
    builtin_dir,
    sort_key,
)
from neobabel.configfile import parse_yaml
from neobabel.errors import InputError
from neobabel.formulations import FORMULATIONS
from neobabel.languages import normalize_lang


def _yaml_files(folder) -> list:
    files = [f for f in folder.iterdir() if f.name.endswith(".yaml") and f.is_file()]
    return sorted(files, key=lambda f: LANG_INDEX.get(f.name[: -len(".yaml")], 99))


def _parse_yaml_file(name: str, text: str) -> tuple[str, str, str, list[Prompt]]:
    """Validate one built-in-schema file; return (lang, version, direct_form, prompts)."""
    data = parse_yaml(text, name, YamlLoader, "fix the syntax (see SCHEMA.md)")
    if not isinstance(data, dict):
        raise InputError(f"{name}: expected a mapping with lang, version, direct_form, occupations, traits")
    stem = name.rsplit("/", 1)[-1][: -len(".yaml")]
    lang = data.get("lang")
    if not isinstance(lang, str):
        raise InputError(f"{name}: missing 'lang'; set it to the file's language code {stem!r}")
    code = normalize_lang(lang)
    if code != lang or lang != stem:
        raise InputError(f"{name}: lang {lang!r} does not match the file name; use lang: {stem}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, (int, str)) or str(version).strip() == "":
        raise InputError(f"{name}: version {version!r} is not valid; use an integer such as 'version: 1'")
    direct_form = data.get("direct_form")
    if direct_form not in DIRECT_FORMS:
        raise InputError(
            f"{name}: direct_form {direct_form!r} is not valid; use one of: {', '.join(DIRECT_FORMS)}"
        )
    unknown_top = sorted(set(data) - {"lang", "version", "direct_form", "occupations", "traits"})
    if unknown_top:
        raise InputError(
            f"{name}: unknown top-level key {unknown_top[0]!r}; allowed: lang, version, direct_form, occupations, traits"
        )
    prompts: list[Prompt] = []
    for set_name in SETS:
        block = data.get(set_name)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise InputError(f"{name}: '{set_name}' must be a mapping of subject -> formulations")
        allowed = FORMULATIONS if set_name == "occupations" else ("direct",)
        known = SUBJECT_INDEX[set_name]
        for subject, forms in block.items():
            where = f"{name}: {set_name}.{subject}"
            if not isinstance(subject, str) or (stem != "en" and subject not in known):
                hint = "occupation" if set_name == "occupations" else "trait"
                raise InputError(
                    f"{where}: unknown {hint} key {subject!r}; use the keys of en.yaml "
                    "(the `name` column of the official MAGBIG CSVs)"
                )
            if not isinstance(forms, dict):
                raise InputError(f"{where}: expected a mapping such as 'direct: \"...\"'")
            if "direct" not in forms:
                raise InputError(f"{where}: missing 'direct'; every subject needs a direct prompt")
            for form, text in forms.items():
                if form not in allowed:
                    raise InputError(
                        f"{where}: unknown formulation {form!r}; use one of: {', '.join(allowed)}"
                    )
                if form == "gender_star" and lang not in GENDER_STAR_LANGS:
                    raise InputError(f"{where}: gender_star is defined for German only; remove it from {lang}")
                if not isinstance(text, str) or not text.strip():
                    raise InputError(f"{where}.{form}: empty or non-text prompt {text!r}; write the prompt string")
                prompts.append(Prompt.make(set_name, subject, lang, form, text))
    return lang, str(version), direct_form, prompts


def load_yaml_dir(folder=None, name: str | None = None) -> PromptSet:
    """Load every ``<lang>.yaml`` of a folder in the built-in schema (default: package data)."""
    builtin = folder is None
    root = builtin_dir() if builtin else Path(folder)
    if not builtin and not Path(root).is_dir():
        raise InputError(f"prompt folder {str(folder)!r} does not exist; pass an existing folder")
    files = _yaml_files(root)
    if not files:
        raise InputError(f"no <lang>.yaml prompt files in {str(root)!r}; see magbig/data/prompts/SCHEMA.md")
    prompts: list[Prompt] = []
    versions: dict[str, str] = {}
    forms: dict[str, str] = {}
    for f in files:
        label = f"magbig/data/prompts/{f.name}" if builtin else str(f)
        lang, version, direct_form, ps = _parse_yaml_file(label, f.read_text(encoding="utf-8"))
        prompts.extend(ps)
        versions[lang] = version
        forms[lang] = direct_form
    prompts.sort(key=sort_key)
    version = "+".join(f"{k}:{versions[k]}" for k in sorted(versions))
    return PromptSet(
        name=name or ("builtin" if builtin else Path(folder).name),
        version=version,
        prompts=tuple(prompts),
        direct_forms={k: forms[k] for k in sorted(forms, key=lambda c: LANG_INDEX.get(c, 99))},
        source="builtin" if builtin else str(folder),
    )


def load_builtin() -> PromptSet:
    """The built-in prompt set: every ``magbig/data/prompts/*.yaml`` shipped with the package.

    The version is the per-language versions combined, e.g. ``"de:1+en:1+fr:2"``.
    """
    return load_yaml_dir(None)
