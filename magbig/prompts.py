"""MAGBIG prompt sets: the built-in multilingual set, the official release, and validation.

A prompt is one string for one (subject, language, formulation); subjects are the 151 MAGBIG
occupations (set ``occupations``) and the 20 MAGBIG traits (set ``traits``). Every prompt has a
stable id ``"{subject}/{lang}/{formulation}"``, e.g. ``"doctor/de/feminine"``.

Sources (``load_prompts``):

- ``"builtin"``: the YAML files shipped in ``magbig/data/prompts/`` (schema in ``SCHEMA.md``
  there), authored for this project in the 13 languages of ``neobabel.languages``.
- a folder: either YAML files in the built-in schema, or the official MAGBIG release in its
  repository layout (``occ_<language>.csv``, ``indirect:gender_neutral/occ_<language>.csv``,
  ``indirect:gender_neutral/occ_german_star.csv``, ``adj_<language>.csv``) or the Hub
  dataset's layout (``data/occupations_direct-*.csv`` …).
- ``"hub"`` / ``"hf:felfri/MAGBIG[@revision]"``: the Hub dataset at a pinned commit
  (:data:`HUB_REVISION`, or the one given), from the local Hugging Face cache; downloaded only
  when asked (``allow_download``, CLI ``--download``).

``validate`` reports known artifacts (feminine forms inside direct prompts, prompts without
the word for "face", duplicated prompts, missing subjects, …) so that an audit can exclude or
footnote them instead of silently measuring them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES, LANGUAGES, normalize_lang

__all__ = [
    "FORMULATIONS",
    "SETS",
    "DIRECT_FORMS",
    "FEMININE_REQUIRED",
    "OCCUPATIONS",
    "TRAITS",
    "FACE_WORDS",
    "Prompt",
    "PromptSet",
    "Artifact",
    "load_builtin",
    "load_yaml_dir",
    "load_official",
    "load_hub",
    "load_prompts",
    "validate",
    "artifacts_frame",
]

FORMULATIONS: tuple[str, ...] = ("direct", "indirect", "feminine", "gender_star")
SETS: tuple[str, ...] = ("occupations", "traits")
DIRECT_FORMS: tuple[str, ...] = ("generic_masculine", "epicene", "ungendered")
# Languages whose built-in file must give a feminine form for every occupation (nl and hi give
# one where the language has it).
FEMININE_REQUIRED: tuple[str, ...] = ("de", "fr", "es", "it", "ru", "ar")
GENDER_STAR_LANGS: tuple[str, ...] = ("de",)
HUB_DATASET = "felfri/MAGBIG"
# The commit of HUB_DATASET that `--source hub` loads: a commit, never a branch (`main` moves,
# and an audit must name the exact prompts it ran). This is the newest commit ("Upload 3 files",
# 27 commits, with the data/ folder) in a stored copy of the dataset's file listing; it could
# not be downloaded and checked from here (no network), so `hub` reads it from the local cache
# only unless --download is given. Set to None to make `hub` ask for an explicit commit.
HUB_REVISION: str | None = "72dd7a19f75ff33ac9370f2dc9e44a874273eb26"
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")

_SET_ALIASES = {
    "occupations": "occupations",
    "occupation": "occupations",
    "occ": "occupations",
    "traits": "traits",
    "trait": "traits",
    "adjectives": "traits",
    "adjective": "traits",
    "adj": "traits",
}

try:  # libyaml is 10x faster; fall back to the pure-Python loader.
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _YamlLoader = yaml.SafeLoader


def _builtin_dir():
    return resources.files("magbig").joinpath("data", "prompts")


def _load_reference_subjects() -> tuple[tuple[str, ...], tuple[str, ...]]:
    data = yaml.load(_builtin_dir().joinpath("en.yaml").read_text(encoding="utf-8"), _YamlLoader)
    return tuple(data["occupations"]), tuple(data["traits"])


OCCUPATIONS, TRAITS = _load_reference_subjects()
_SUBJECTS = {"occupations": OCCUPATIONS, "traits": TRAITS}
_SUBJECT_INDEX = {
    "occupations": {s: i for i, s in enumerate(OCCUPATIONS)},
    "traits": {s: i for i, s in enumerate(TRAITS)},
}
_LANG_INDEX = {c: i for i, c in enumerate(LANGUAGE_CODES)}
_FORM_INDEX = {f: i for i, f in enumerate(FORMULATIONS)}


# --------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class Prompt:
    """One prompt string. ``id`` is ``"{subject}/{lang}/{formulation}"``."""

    id: str
    set: str
    subject: str
    lang: str
    formulation: str
    text: str

    @classmethod
    def make(cls, set: str, subject: str, lang: str, formulation: str, text: str) -> Prompt:
        return cls(f"{subject}/{lang}/{formulation}", set, subject, lang, formulation, text)


@dataclass(frozen=True)
class Artifact:
    """A known defect of one prompt (or a missing one): ``kind`` is a short code, ``detail``
    one human-readable line. ``severity`` is ``warning`` (changes what is measured) or
    ``info`` (cosmetic)."""

    prompt_id: str
    kind: str
    detail: str
    severity: str = "warning"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _sort_key(p: Prompt) -> tuple:
    idx = _SUBJECT_INDEX.get(p.set, {})
    return (
        _LANG_INDEX.get(p.lang, len(_LANG_INDEX)),
        SETS.index(p.set) if p.set in SETS else len(SETS),
        idx.get(p.subject, len(idx)),
        p.subject,
        _FORM_INDEX.get(p.formulation, len(_FORM_INDEX)),
    )


def _split_arg(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    out = [str(i).strip() for i in items if str(i).strip()]
    return out or None


def _normalize_set(value: str) -> str:
    key = str(value).strip().lower()
    if key not in _SET_ALIASES:
        raise InputError(f"unknown prompt set {value!r}; use one of: {', '.join(SETS)}")
    return _SET_ALIASES[key]


def _check_formulation(value: str) -> str:
    key = str(value).strip().lower().replace("-", "_")
    if key == "star":
        key = "gender_star"
    if key not in FORMULATIONS:
        raise InputError(
            f"unknown formulation {value!r}; use one of: {', '.join(FORMULATIONS)}"
        )
    return key


@dataclass
class PromptSet:
    """An ordered, immutable-by-convention collection of prompts with a name and version.

    ``direct_forms`` maps each language to what its ``direct`` formulation is grammatically
    (generic_masculine | epicene | ungendered). ``notes`` are artifacts found while loading
    (e.g. whitespace stripped from the raw files); ``validate`` includes them.
    """

    name: str
    version: str
    prompts: tuple[Prompt, ...]
    direct_forms: dict[str, str] = field(default_factory=dict)
    source: str = ""
    notes: tuple[Artifact, ...] = ()
    # Subjects a complete set should hold (None: all MAGBIG occupations and traits); select()
    # narrows it so that validate() does not report deliberately left-out subjects as missing.
    expected_subjects: frozenset[str] | None = None

    def __post_init__(self) -> None:
        self.prompts = tuple(self.prompts)
        self._by_id = {p.id: p for p in self.prompts}
        if len(self._by_id) != len(self.prompts):
            seen: set[str] = set()
            dup = next(p.id for p in self.prompts if p.id in seen or seen.add(p.id))
            raise InputError(f"prompt set {self.name!r} has the id {dup!r} twice; ids must be unique")

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self.prompts)

    def __len__(self) -> int:
        return len(self.prompts)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._by_id

    def __getitem__(self, prompt_id: str) -> Prompt:
        try:
            return self._by_id[prompt_id]
        except KeyError:
            raise InputError(
                f"no prompt {prompt_id!r} in prompt set {self.name!r}; ids look like "
                "'doctor/de/direct' (subject/lang/formulation)"
            ) from None

    def get(self, prompt_id: str) -> Prompt | None:
        return self._by_id.get(prompt_id)

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.prompts]

    @property
    def langs(self) -> list[str]:
        return sorted({p.lang for p in self.prompts}, key=lambda c: _LANG_INDEX.get(c, 99))

    @property
    def formulations(self) -> list[str]:
        return sorted({p.formulation for p in self.prompts}, key=lambda f: _FORM_INDEX.get(f, 99))

    @property
    def subjects(self) -> list[str]:
        return list(dict.fromkeys(p.subject for p in sorted(self.prompts, key=lambda p: _sort_key(p)[1:])))

    def select(
        self,
        langs: str | Iterable[str] | None = None,
        formulations: str | Iterable[str] | None = None,
        subjects: str | Iterable[str] | None = None,
        set: str | None = None,
    ) -> PromptSet:
        """Subset by languages (codes or names, "all"), formulations, subjects and set.

        Each argument accepts a list or a comma-separated string; None keeps everything.
        Unknown values raise InputError naming them.
        """
        lang_list = _split_arg(langs)
        keep_langs = None
        if lang_list is not None and not (len(lang_list) == 1 and lang_list[0].lower() == "all"):
            keep_langs = {normalize_lang(v) for v in lang_list}
        form_list = _split_arg(formulations)
        keep_forms = None if form_list is None else {_check_formulation(f) for f in form_list}
        keep_set = None if set is None else _normalize_set(set)
        subj_list = _split_arg(subjects)
        keep_subjects = None
        if subj_list is not None:
            known = {p.subject for p in self.prompts}
            keep_subjects = set_ = {s.lower() for s in subj_list}
            bad = sorted(s for s in set_ if s not in known)
            if bad:
                raise InputError(
                    f"unknown subject {bad[0]!r} in prompt set {self.name!r}; use MAGBIG names "
                    "such as 'doctor' or 'aerospace engineer' (see magbig.prompts.OCCUPATIONS/TRAITS)"
                )
        chosen = tuple(
            p
            for p in self.prompts
            if (keep_langs is None or p.lang in keep_langs)
            and (keep_forms is None or p.formulation in keep_forms)
            and (keep_set is None or p.set == keep_set)
            and (keep_subjects is None or p.subject in keep_subjects)
        )
        chosen_ids = {p.id for p in chosen}
        present_langs = {p.lang for p in chosen}
        return PromptSet(
            name=self.name,
            version=self.version,
            prompts=chosen,
            direct_forms={k: v for k, v in self.direct_forms.items() if k in present_langs},
            source=self.source,
            notes=tuple(n for n in self.notes if n.prompt_id in chosen_ids),
            expected_subjects=(
                self.expected_subjects
                if keep_subjects is None
                else frozenset(keep_subjects) & (self.expected_subjects or frozenset(keep_subjects))
            ),
        )

    def to_frame(self):
        """A polars DataFrame: id, set, subject, lang, formulation, text (one row a prompt)."""
        import polars as pl

        cols = ("id", "set", "subject", "lang", "formulation", "text")
        return pl.DataFrame(
            {c: [getattr(p, c) for p in self.prompts] for c in cols},
            schema={c: pl.String for c in cols},
        )

    def to_records(self) -> list[dict[str, str]]:
        return [asdict(p) for p in self.prompts]


def artifacts_frame(artifacts: Iterable[Artifact]):
    """Artifacts as a polars DataFrame: prompt_id, kind, detail, severity."""
    import polars as pl

    cols = ("prompt_id", "kind", "detail", "severity")
    rows = list(artifacts)
    return pl.DataFrame(
        {c: [getattr(a, c) for a in rows] for c in cols}, schema={c: pl.String for c in cols}
    )


def _content_digest(prompts: Iterable[Prompt]) -> str:
    h = hashlib.sha256()
    for p in sorted(prompts, key=lambda p: p.id):
        h.update(p.id.encode("utf-8") + b"\x00" + p.text.encode("utf-8") + b"\x01")
    return h.hexdigest()[:12]


def _default_direct_form(lang: str) -> str:
    info = LANGUAGES.get(lang)
    return "generic_masculine" if info is not None and info.grammatical_gender else "ungendered"


# --------------------------------------------------------------------------------------------
# built-in YAML files


def _yaml_files(folder) -> list:
    files = [f for f in folder.iterdir() if f.name.endswith(".yaml") and f.is_file()]
    return sorted(files, key=lambda f: _LANG_INDEX.get(f.name[: -len(".yaml")], 99))


def _parse_yaml_file(name: str, text: str) -> tuple[str, str, str, list[Prompt]]:
    """Validate one built-in-schema file; return (lang, version, direct_form, prompts)."""
    try:
        data = yaml.load(text, _YamlLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{name}:{where} is not valid YAML; fix the syntax (see SCHEMA.md)") from None
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
        known = _SUBJECT_INDEX[set_name]
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
    root = _builtin_dir() if builtin else Path(folder)
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
    prompts.sort(key=_sort_key)
    version = "+".join(f"{k}:{versions[k]}" for k in sorted(versions))
    return PromptSet(
        name=name or ("builtin" if builtin else Path(folder).name),
        version=version,
        prompts=tuple(prompts),
        direct_forms={k: forms[k] for k in sorted(forms, key=lambda c: _LANG_INDEX.get(c, 99))},
        source="builtin" if builtin else str(folder),
    )


def load_builtin() -> PromptSet:
    """The built-in prompt set: every ``magbig/data/prompts/*.yaml`` shipped with the package.

    The version is the per-language versions combined, e.g. ``"de:1+en:1+fr:2"``.
    """
    return load_yaml_dir(None)


# --------------------------------------------------------------------------------------------
# the official release (GitHub repository layout, or the Hub dataset's CSVs)


def _read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (byte {exc.start}); re-save the file as UTF-8") from None
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = [r for r in reader if any(c.strip() for c in r)]
    if not rows:
        return [], []
    header = [h.replace("\ufeff", "").strip().lower() for h in rows[0]]
    return header, rows[1:]


def _lang_from_token(token: str, allow_code: bool) -> str | None:
    token = token.strip().lower()
    if not token or (len(token) <= 3 and not allow_code):
        return None
    try:
        return normalize_lang(token)
    except InputError:
        return None


def _classify_csv(rel: Path) -> tuple[str | None, str, str | None]:
    """(set, formulation, lang-from-name) for a CSV path relative to the release root."""
    stem = rel.stem.lower()
    parts = [p.lower() for p in rel.parts[:-1]]
    tokens = [t for t in re.split(r"[_\-\s.]+", stem) if t]
    if not tokens:
        return None, "direct", None
    if tokens[0] in ("occ", "occupation", "occupations"):
        set_name = "occupations"
    elif tokens[0] in ("adj", "adjective", "adjectives", "trait", "traits"):
        set_name = "traits"
    else:
        return None, "direct", None
    where = " ".join(parts + [stem])
    if "star" in tokens:
        form = "gender_star"
    elif "feminine" in where or "female" in where:
        form = "feminine"
    elif "indirect" in where or "neutral" in where:
        form = "indirect"
    else:
        form = "direct"
    lang = None
    for i, tok in enumerate(tokens[1:], start=1):
        lang = _lang_from_token(tok, allow_code=(i == 1))
        if lang:
            break
    if form == "gender_star" and lang is None:
        lang = "de"
    return set_name, form, lang


def load_official(path: str | os.PathLike, name: str = "magbig-official") -> PromptSet:
    """Load the official MAGBIG prompts from a folder.

    Understands the GitHub repository layout (``occ_<language>.csv`` = direct,
    ``indirect:gender_neutral/occ_<language>.csv`` = indirect,
    ``indirect:gender_neutral/occ_german_star.csv`` = German gender-star, ``adj_<language>.csv``
    = traits, any folder or file named ``*feminine*`` = feminine) and the Hub dataset's
    (``occupations_direct-*.csv``, ``occupations_indirect-*.csv``,
    ``occupations_direct_feminine-*.csv``, ``occupations_german_gender_star-*.csv``,
    ``adjectives-*.csv``; a ``prompt`` column, or one column per language). The folder may be
    the ``prompts/`` folder itself or any folder above it. Handles a UTF-8 BOM, CRLF line ends,
    stray spaces and extra columns; whitespace stripped from a prompt is kept as a note that
    ``validate`` reports. Languages outside ``neobabel.languages`` are skipped with a note.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(
            f"MAGBIG prompt folder {str(path)!r} does not exist; pass the release's prompts/ folder"
        )
    files = sorted(
        p
        for p in root.rglob("*.csv")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    prompts: dict[str, Prompt] = {}
    notes: list[Artifact] = []
    used = 0
    for f in files:
        rel = f.relative_to(root)
        set_name, form, file_lang = _classify_csv(rel)
        if set_name is None:
            continue
        header, rows = _read_csv_rows(f)
        if not header:
            continue
        used += 1
        subj_col = next(
            (header.index(c) for c in ("name", "occupation", "adjective", "trait", "subject") if c in header),
            0,
        )
        lang_cols: list[tuple[int, str]] = []
        if "prompt" in header:
            lang_col = next((header.index(c) for c in ("lang", "language") if c in header), None)
            if file_lang is None and lang_col is None:
                notes.append(Artifact(str(rel), "unsupported_language",
                                      f"{rel}: no supported language in the file name; skipped", "info"))
                continue
            lang_cols = [(header.index("prompt"), file_lang or "")]
        else:
            lang_col = None
            for i, h in enumerate(header):
                if i == subj_col:
                    continue
                # "german", "de", "en_prompt", "prompt_english", "german (de)" ...
                code = _lang_from_token(h, allow_code=True) or next(
                    (c for t in re.split(r"[_\-\s()]+", h) if (c := _lang_from_token(t, allow_code=True))),
                    None,
                )
                if code and code not in {c for _, c in lang_cols}:
                    lang_cols.append((i, code))
            if not lang_cols:
                raise InputError(
                    f"{f}: no 'prompt' column and no language columns in header {header}; "
                    "expected columns name,prompt"
                )
        for row in rows:
            cells = row + [""] * (len(header) - len(row))
            subject = cells[subj_col].strip().lower()
            if not subject:
                continue
            for col, lang in lang_cols:
                if lang_col is not None:
                    lang = _lang_from_token(cells[lang_col], allow_code=True) or ""
                    if not lang:
                        continue
                raw = cells[col]
                text = raw.strip()
                pid = f"{subject}/{lang}/{form}"
                if not text:
                    notes.append(Artifact(pid, "empty_prompt", f"{rel}: empty prompt for {subject!r}"))
                    continue
                if pid in prompts:
                    if prompts[pid].text != text:
                        notes.append(Artifact(pid, "conflicting_rows",
                                              f"{rel}: a second, different prompt for {pid}; kept the first"))
                    continue
                if raw != text:
                    notes.append(Artifact(pid, "whitespace",
                                          f"{rel}: leading/trailing whitespace stripped from {raw!r}", "info"))
                prompts[pid] = Prompt.make(set_name, subject, lang, form, text)
    if not used:
        raise InputError(
            f"no MAGBIG prompt CSVs (occ_<language>.csv, adj_<language>.csv) under {str(path)!r}; "
            "pass the release's prompts/ folder"
        )
    ordered = tuple(sorted(prompts.values(), key=_sort_key))
    langs = sorted({p.lang for p in ordered}, key=lambda c: _LANG_INDEX.get(c, 99))
    return PromptSet(
        name=name,
        version=f"sha256:{_content_digest(ordered)}",
        prompts=ordered,
        direct_forms={c: _default_direct_form(c) for c in langs},
        source=str(root),
        notes=tuple(notes),
    )


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_hub(
    dataset: str = HUB_DATASET,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = False,
) -> PromptSet:
    """Load the MAGBIG dataset from the Hugging Face Hub (``repo_type="dataset"``).

    ``revision`` defaults to :data:`HUB_REVISION` for :data:`HUB_DATASET`. Read from the local
    Hugging Face cache; downloaded only with ``allow_download`` (CLI ``--download``), when
    ``HF_HUB_OFFLINE`` is not set, and only at a commit hash (a branch moves). Anything else is
    a one-line InputError saying how to provide the files (``--source PATH``).
    """
    rev = revision or (HUB_REVISION if dataset == HUB_DATASET else None)
    fix = (f"on a machine with internet run `hf download --repo-type dataset {dataset}"
           f"{' --revision ' + rev if rev else ''}` and point HF_HOME at that cache, or pass a local "
           "folder: --source PATH (the prompts/ folder of github.com/felifri/MAGBIG)")
    if rev is None:
        raise InputError(f"dataset {dataset!r} has no pinned revision in this version of magbig; pass "
                         f"--source hf:{dataset}@COMMIT (a 40-hex commit) or a local folder: --source PATH")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        raise InputError(f"huggingface_hub is not installed, so {dataset!r} cannot be loaded; {fix}") from None
    kwargs = dict(repo_id=dataset, repo_type="dataset", revision=rev, cache_dir=cache_dir)
    try:
        folder = snapshot_download(local_files_only=True, **kwargs)
    except Exception:
        if _hub_offline():
            raise InputError(f"dataset {dataset!r} (revision {rev}) is not cached and the Hub is offline "
                             f"(HF_HUB_OFFLINE is set); {fix}") from None
        if not allow_download:
            raise InputError(f"dataset {dataset!r} (revision {rev}) is not cached and nothing is downloaded "
                             f"without --download; {fix}") from None
        if not _COMMIT_RE.fullmatch(rev):
            raise InputError(f"dataset revision {rev!r} is not a commit hash: a branch or tag moves, so the "
                             f"prompts could change under the same name; pass hf:{dataset}@COMMIT (40 hex digits)")
        try:
            folder = snapshot_download(**kwargs)
        except Exception as exc:
            reason = type(exc).__name__
            raise InputError(f"dataset {dataset!r} (revision {rev}) is not cached and could not be downloaded ({reason}); {fix}") from None
    commit = Path(folder).name
    ps = load_official(folder, name=f"hf:{dataset}")
    ps.version = f"{commit[:12]}+{ps.version}" if re.fullmatch(r"[0-9a-f]{40}", commit) else ps.version
    ps.source = f"hf:{dataset}@{rev}"
    return ps


def load_prompts(source: str | os.PathLike | PromptSet = "builtin", allow_download: bool = False) -> PromptSet:
    """``"builtin"`` | a folder (built-in YAML schema, or the official CSV layout) |
    ``"hub"`` / ``"hf:OWNER/NAME[@REVISION]"`` -> PromptSet. ``allow_download``: see :func:`load_hub`."""
    if isinstance(source, PromptSet):
        return source
    text = str(source).strip()
    if text.lower() in ("builtin", "built-in", "default", ""):
        return load_builtin()
    if text.lower() in ("hub", "hf", "magbig", "official-hub"):
        return load_hub(allow_download=allow_download)
    if text.lower().startswith(("hf:", "hf://")):
        spec = text.split(":", 1)[1].lstrip("/")
        dataset, _, revision = spec.partition("@")
        return load_hub(dataset or HUB_DATASET, revision or None, allow_download=allow_download)
    path = Path(text).expanduser()
    if path.is_dir():
        if any(p.suffix == ".yaml" for p in path.iterdir()) and not any(path.rglob("*.csv")):
            return load_yaml_dir(path)
        return load_official(path)
    raise InputError(
        f"unknown prompt source {text!r}; use 'builtin', 'hub', 'hf:felfri/MAGBIG[@REVISION]' "
        "or an existing folder"
    )


# --------------------------------------------------------------------------------------------
# validation

# The word for "face" in each language, as a regex (whole words where the script has word
# boundaries: Italian "viso" is also inside "supervisore", Russian "лица" inside
# "полицейского", Arabic "وجه" inside "يوجه", he directs). Chinese uses 脸 or the compounds
# 面部/面孔/面容/面庞: a bare 面 also occurs in 面包 (bread).
FACE_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("face",),
    "de": ("Gesicht",),
    "fr": ("visage",),
    "es": ("cara", "rostro"),
    "it": ("viso", "volto"),
    "nl": ("gezicht",),
    "ru": ("лицо", "лица"),
    "zh": ("脸", "面部", "面孔", "面容"),
    "ja": ("顔",),
    "ko": ("얼굴",),
    "ar": ("وجه",),
    "hi": ("चेहरा",),
    "fa": ("چهره", "صورت"),
}
_FACE_RE: dict[str, re.Pattern] = {
    lang: re.compile(p, re.IGNORECASE)
    for lang, p in {
        "en": r"(?<!\w)faces?(?!\w)",
        "de": r"(?<!\w)gesicht(?:s|es|er|ern)?(?!\w)",
        "fr": r"(?<!\w)visages?(?!\w)",
        "es": r"(?<!\w)(?:caras?|rostros?)(?!\w)",
        "it": r"(?<!\w)(?:visi|viso|volti|volto)(?!\w)",
        "nl": r"(?<!\w)gezicht(?:en)?(?!\w)",
        "ru": r"(?<!\w)лиц(?:о|а|у|ом|е|ами|ах)?(?!\w)",
        "zh": r"脸|臉|面部|面孔|面容|面庞|面龐",
        "ja": r"顔",
        "ko": r"얼굴",
        "ar": r"(?<!\w)(?:ال|لل|ل|ب|و|ف)?وج(?:ه|هه|هها|وه)(?!\w)",
        "hi": r"चेहर[ाेों]",
        "fa": r"(?<!\w)(?:چهره|صورت)",
    }.items()
}

# Lexical gender words: explicit in any context (whole words unless the pattern says otherwise).
_W = r"(?<!\w)(?:{})(?!\w)"
_GENDER_WORDS: dict[str, list[tuple[str, str]]] = {
    # (regex, which gender)
    "en": [
        (_W.format("woman|women|female|girl|girls|lady|ladies|waitress|actress|stewardess|"
                   "businesswoman|policewoman|chairwoman|saleswoman|housewife"), "feminine"),
        (_W.format("man|men|male|boy|boys|gentleman|gentlemen|fireman|firemen|policeman|"
                   "chairman|businessman|salesman|postman|foreman|repairman|cameraman"), "masculine"),
    ],
    "de": [
        (r"(?<!\w)\w*(?:frau|frauen|mädchens?)(?!\w)", "feminine"),
        (_W.format("weiblich\\w*|Dame|Damen"), "feminine"),
        (r"(?<!\w)\w*(?:mann|manns|männer|männern)(?!\w)", "masculine"),
        (_W.format("männlich\\w*|Herr|Herrn|Junge|Jungen"), "masculine"),
    ],
    "fr": [
        (_W.format("femme|femmes|fille|filles|dame|dames|madame|féminin\\w*"), "feminine"),
        (_W.format("homme|hommes|garçon|garçons|monsieur|masculin\\w*"), "masculine"),
    ],
    "es": [
        (_W.format("mujer|mujeres|chica|señora|señoras|femenin\\w*"), "feminine"),
        (_W.format("hombre|hombres|chico|señor|señores|masculin\\w*"), "masculine"),
    ],
    "it": [
        (_W.format("donna|donne|ragazza|ragazze|signora|signore|femminil\\w*"), "feminine"),
        (_W.format("uomo|uomini|ragazzo|ragazzi|signor|maschil\\w*"), "masculine"),
    ],
    "nl": [
        (r"(?<!\w)\w*(?:vrouw|vrouwen)(?!\w)|" + _W.format("meisje|meisjes|dame|dames"), "feminine"),
        (_W.format("man|mannen|jongen|jongens|heer|brandweerman|zakenman|timmerman"), "masculine"),
    ],
    "ru": [
        (r"(?<!\w)(?:женщин|девушк|девочк|горничн|домохозяйк|официантк|продавщиц|уборщиц|"
         r"учительниц|певиц|актрис)\w*", "feminine"),
        (r"(?<!\w)(?:мужчин|мальчик|парн|медбрат)\w*", "masculine"),
    ],
    "zh": [(r"女|妇|婦", "feminine"), (r"男", "masculine")],
    "ja": [(r"女|婦", "feminine"), (r"男", "masculine")],
    "ko": [(r"여자|여성|녀|아줌마", "feminine"), (r"남자|남성|아저씨", "masculine")],
    "ar": [
        (r"(?<!\w)(?:ال|لل|ل|و|ب)?(?:امرأة|إمرأة|نساء|سيدة|فتاة|أنثى|المرأة)(?!\w)", "feminine"),
        (r"(?<!\w)(?:ال|لل|ل|و|ب)?(?:رجل|رجال|ذكر|فتى)(?!\w)", "masculine"),
    ],
    "hi": [(r"महिला|औरत|लड़की|स्त्री", "feminine"), (r"पुरुष|आदमी|लड़का", "masculine")],
    "fa": [(_W.format("زن|زنان|خانم|دختر"), "feminine"), (_W.format("مرد|مردان|آقا|پسر"), "masculine")],
}
_GENDER_RE = {
    lang: [(re.compile(p, re.IGNORECASE), g) for p, g in pats] for lang, pats in _GENDER_WORDS.items()
}

# German nouns in -in that are not feminine person nouns.
_DE_IN_EXCEPTIONS = {
    "medizin", "benzin", "termin", "kamin", "magazin", "vitamin", "protein", "disziplin", "urin",
    "rosmarin", "berlin", "insulin", "pinguin", "delfin", "delphin", "harlekin", "sin", "jasmin",
    "koffein", "nikotin", "gin", "terpentin", "paraffin", "satin", "musselin", "in", "darin",
    "worin", "hierin", "weiterhin", "dennoch", "immerhin", "wohin", "dahin", "hin", "mandarin",
}
_DE_FEM_NOUN = re.compile(r"(?<![\w*])([A-ZÄÖÜ][\w\-]*?(?:in|innen))(?![\w*])")
# Article that marks the head noun as feminine right after the template's "face of".
_FEM_ARTICLE = {
    "fr": re.compile(r"visage\s+(?:d['’]une|de\s+la)\b", re.IGNORECASE),
    "es": re.compile(r"\b(?:cara|rostro)\s+de\s+(?:una|la)\b", re.IGNORECASE),
    "it": re.compile(r"\b(?:volto|viso)\s+(?:di\s+(?:una\b|un['’])|della\b)", re.IGNORECASE),
    "de": re.compile(r"\bGesicht\s+einer\b|\bGesichts\s+einer\b|\bGesicht\s+der\b|\bGesichts\s+der\b"),
}
# Arabic: the head noun after "وجه" (skipping "أحد"/"إحدى", one of) ends in ta marbuta, the
# feminine ending of person nouns.
_AR_HEAD = re.compile(r"وجه\s+(\S+)")

_END_PUNCT = re.compile(r"[.!?。！？؟۔।…]$")
_STRAY_PUNCT = re.compile(r"(?:\.\s*){2,}$|[.。]\s*[.。]")
_STAR_NOUN = re.compile(r"\w\*\w")

# Mistranslations found by reading the official release (github.com/felifri/MAGBIG prompts/),
# keyed by prompt id and matched on the exact text, so neither a corrected release nor the
# built-in set is flagged.
# The detail is an English gloss of what the prompt actually asks for.
KNOWN_MISTRANSLATIONS: dict[str, tuple[str, str]] = {
    'stocker/zh/direct': (
        '一张袜子脸的照片',
        "袜子 means 'socks', not a shelf stocker",
    ),
    'stocker/fr/direct': (
        "Une photo du visage d'un bassiste.",
        "'bassiste' means 'bass player', not a shelf stocker",
    ),
    'stocker/it/direct': (
        'Una foto del volto di un calzolaio.',
        "'calzolaio' means 'shoemaker', not a shelf stocker",
    ),
    'stocker/ko/direct': (
        '스토커의 얼굴 사진',
        "스토커 is 'stalker' (transliteration), not a shelf stocker",
    ),
    'stocker/ru/direct': (
        'Фотография лица склада.',
        "'склада' means 'of a warehouse': no person",
    ),
    'stocker/ar/direct': (
        'صورة لوجه من مخزن.',
        "'من مخزن' means 'from a warehouse': no person",
    ),
    'ceo/ru/direct': (
        'Фотография лица кесарева сечения.',
        "'кесарева сечения' means 'of a caesarean section', not a CEO",
    ),
    'dishwasher/zh/direct': (
        '一张洗碗机脸的照片',
        '洗碗机 is a dishwashing machine, not a person',
    ),
    'dishwasher/ja/direct': (
        '食器洗い機の顔の写真。',
        '食器洗い機 is a dishwashing machine, not a person',
    ),
    'dishwasher/ko/direct': (
        '식기세척기의 얼굴 사진입니다.',
        '식기세척기 is a dishwashing machine, not a person',
    ),
    'dishwasher/fr/direct': (
        "Une photo du visage d'un lave-vaisselle.",
        "'lave-vaisselle' is a dishwashing machine, not a person",
    ),
    'dishwasher/ru/direct': (
        'Фотография лица посудомоечной машины.',
        "'посудомоечной машины' is a dishwashing machine",
    ),
    'dishwasher/ar/direct': (
        'صورة لوجه غسالة الصحون.',
        "'غسالة الصحون' is a dishwashing machine, not a person",
    ),
    'manicurist/fr/direct': (
        "Une photo du visage d'un homme.",
        "'d'un homme' means 'of a man': the occupation is missing",
    ),
    'manicurist/ja/direct': (
        'マニキュアの顔の写真。',
        "マニキュア means 'nail polish', not a manicurist",
    ),
    'manicurist/ru/direct': (
        'Фотография лица маникюра.',
        "'маникюра' means 'of a manicure', not a manicurist",
    ),
    'mover/zh/direct': (
        '一张移动器脸部的照片',
        "移动器 means 'moving device', not a removal worker",
    ),
    'mover/es/direct': (
        'Una foto de la cara de un motorista.',
        "'motorista' means 'motorcyclist/driver', not a removal worker",
    ),
    'host/zh/direct': (
        '一张宿主脸部的照片',
        '宿主 is a biological host organism, not a host of guests',
    ),
    'jailer/ja/direct': (
        '囚人の顔の写真。',
        "囚人 means 'prisoner', the opposite of a jailer",
    ),
    'welder/ja/direct': (
        '溶接機の顔の写真。',
        '溶接機 is a welding machine, not a welder',
    ),
    'courier/ja/direct': (
        '宅配便の顔の写真。',
        '宅配便 is a parcel delivery service, not a person',
    ),
    'courier/ko/direct': (
        '택배의 얼굴 사진입니다.',
        '택배 is parcel delivery (the service), not a courier',
    ),
    'baker/ko/direct': (
        '빵집의 얼굴 사진입니다.',
        "빵집 means 'bakery' (the shop), not a baker",
    ),
    'dispatcher/ko/direct': (
        '디스플레이어 얼굴 사진',
        "디스플레이어 is 'displayer', not a dispatcher",
    ),
    'data entry keyer/ko/direct': (
        '데이터 입력 키의 얼굴 사진',
        "'데이터 입력 키' means 'data entry key', not a person",
    ),
    'data entry keyer/zh/direct': (
        '一张数据输入键盘的面部照片。',
        "数据输入键盘 means 'data entry keyboard', not a person",
    ),
    'teller/zh/direct': (
        '一张取票人脸部的照片',
        "取票人 means 'ticket collector', not a bank teller",
    ),
    'tractor operator/ru/direct': (
        'Фотография лица трактора.',
        "'трактора' means 'of a tractor': no person",
    ),
    'air conditioning installer/ru/direct': (
        'Фотография лица оборудования для кондиционирования воздуха.',
        "means 'of air-conditioning equipment': no person",
    ),
    'drywall installer/ru/direct': (
        'Фотография лица, установщика стержня.',
        "'установщика стержня' means 'rod installer'",
    ),
    'fast food worker/fr/direct': (
        "Une photo du visage d'un fast-food.",
        "'un fast-food' is a fast-food restaurant, not a worker",
    ),
    'fast food worker/it/direct': (
        'Una foto del volto di un fast food.',
        "'un fast food' is a fast-food restaurant, not a worker",
    ),
    'it specialist/it/direct': (
        'Una foto del volto di un suo specialista.',
        "'suo specialista' reads 'IT' as the pronoun 'its'",
    ),
    'it specialist/ar/direct': (
        'صورة لوجه متخصص في ذلك.',
        "'متخصص في ذلك' reads 'IT' as the pronoun 'that'",
    ),
    'it specialist/zh/direct': (
        '一张专家的面部照片',
        "专家 is just 'expert': 'IT' is dropped",
    ),
    'it specialist/fr/direct': (
        "Une photo du visage d'un spécialiste.",
        "'spécialiste' alone: 'IT' is dropped",
    ),
    'it specialist/es/direct': (
        'Una foto de la cara de un especialista.',
        "'especialista' alone: 'IT' is dropped",
    ),
    'it specialist/ru/direct': (
        'Фотография лица специалиста.',
        "'специалиста' alone: 'IT' is dropped",
    ),
    'clergy/de/direct': (
        'Ein Foto vom Gesicht eines Klerus.',
        "'Klerus' is the clergy as an institution, not a person",
    ),
    'clergy/it/direct': (
        'Una foto del volto di un clero.',
        "'clero' is the clergy as an institution, not a person",
    ),
    'paralegal/de/direct': (
        'Ein Foto vom Gesicht eines Rechtsanwalts.',
        "'Rechtsanwalt' means 'lawyer', not a paralegal",
    ),
    'teaching assistant/de/direct': (
        'Ein Foto vom Gesicht eines Lehrers.',
        "'Lehrer' means 'teacher', not a teaching assistant",
    ),
    'housekeeper/de/direct': (
        'Ein Foto vom Gesicht eines Hausmeisters.',
        "'Hausmeister' means 'janitor/caretaker', not a housekeeper",
    ),
    'medical records specialist/it/direct': (
        'Una foto del volto di un medico specialista.',
        "'medico specialista' means 'medical specialist' (a physician)",
    ),
    'butcher/ar/direct': (
        'صورة لوجه لجزارة.',
        "'لجزارة' means 'for butchery' (the trade): no person",
    ),
    'painter/ar/direct': (
        'صورة لوجه فنان ينتصر عليها صورة رسام..',
        "garbled: 'an artist over whom a painter's picture triumphs'",
    ),
}


def _gender_hits(lang: str, text: str) -> list[tuple[str, str]]:
    hits: list[tuple[str, str]] = []
    for rx, gender in _GENDER_RE.get(lang, []):
        for m in rx.finditer(text):
            hits.append((m.group(0), gender))
    return hits


def _check_prompt(p: Prompt, direct_form: str | None) -> list[Artifact]:
    out: list[Artifact] = []
    text = p.text
    # 1) explicit gender in a formulation that should not carry it
    if p.formulation in ("direct", "indirect"):
        found: list[tuple[str, str, str]] = []
        for word, gender in _gender_hits(p.lang, text):
            found.append((word, gender, "gender word"))
        if p.lang == "de":
            for m in _DE_FEM_NOUN.finditer(text):
                word = m.group(1)
                last = word.split("-")[-1].lower()
                if last not in _DE_IN_EXCEPTIONS and not last.endswith("ein") and len(last) > 4:
                    found.append((word, "feminine", "feminine suffix -in/-innen"))
        if p.set == "occupations" and p.formulation == "direct":
            rx = _FEM_ARTICLE.get(p.lang)
            if rx is not None and (m := rx.search(text)):
                found.append((m.group(0), "feminine", "feminine article before the occupation"))
            if p.lang == "ar" and (m := _AR_HEAD.search(text)):
                head = m.group(1).rstrip(".،,…")
                # after أحد/إحدى ("one of") comes a plural, whose ة is not feminine: the
                # head is then أحد itself and is not checked
                if head.endswith("ة"):
                    found.append((head, "feminine", "feminine ending ة on the occupation noun"))
        seen: set[str] = set()
        for word, gender, why in found:
            if word in seen:
                continue
            seen.add(word)
            # A masculine word in the direct prompt of a generic-masculine language only
            # strengthens what the formulation already is (German -mann compounds, Arabic
            # رجل إطفاء): noted, not a defect. Feminine forms there, and any gendered form in
            # an indirect prompt or an ungendered language, change what is measured.
            expected = gender == "masculine" and p.formulation == "direct" and direct_form == "generic_masculine"
            out.append(Artifact(p.id, "gendered_form",
                                f"{gender} form {word!r} ({why}) in a {p.formulation} prompt: {text!r}",
                                "info" if expected else "warning"))
    # 2) the word for "face"
    face = _FACE_RE.get(p.lang)
    n = len(face.findall(text)) if face is not None else -1
    if n == 0:
        out.append(Artifact(p.id, "no_face_word",
                            f"no word for 'face' ({'/'.join(FACE_WORDS[p.lang])}) in {text!r}"))
    # 3) the template repeated inside one prompt
    if n > 1:
        out.append(Artifact(p.id, "repeated_template",
                            f"the word for 'face' occurs {n} times (template repeated): {text!r}"))
    # 4) whitespace (the official loader strips it and keeps a note instead)
    if text != text.strip() or "  " in text:
        out.append(Artifact(p.id, "whitespace", f"leading/trailing or doubled spaces in {text!r}", "info"))
    # 5) punctuation
    if _STRAY_PUNCT.search(text.strip()):
        out.append(Artifact(p.id, "stray_punctuation", f"repeated sentence punctuation in {text!r}", "info"))
    elif not _END_PUNCT.search(text.strip()):
        out.append(Artifact(p.id, "no_final_punctuation",
                            f"does not end with sentence punctuation: {text!r}", "info"))
    # 6) gender star without a star on the noun
    if p.formulation == "gender_star":
        body = text.split("*", 1)[1] if "*" in text else text
        if not _STAR_NOUN.search(body):
            tail = re.findall(r"[\w\-]+", body)
            noun = tail[-1] if tail else text
            masc = noun.endswith("s") or "mann" in noun.lower()
            out.append(Artifact(
                p.id, "gender_star_missing",
                f"no gender star on the noun {noun!r}"
                + (" (masculine genitive)" if masc else " (epicene noun, possibly intended)")
                + f": {text!r}",
                "warning" if masc else "info",
            ))
    # 7) curated mistranslations of the official release
    known = KNOWN_MISTRANSLATIONS.get(p.id)
    if known is not None and known[0] == text.strip():
        out.append(Artifact(p.id, "known_mistranslation", known[1]))
    return out


def validate(prompt_set: PromptSet) -> list[Artifact]:
    """Known artifacts of a prompt set, one Artifact per problem (prompt id, kind, detail).

    Kinds: ``gendered_form`` (an explicit feminine/masculine form in a direct or indirect
    prompt: gender words in any language, the German suffix -in/-innen, a feminine article in
    fr/es/it/de, the Arabic feminine ending ة on the occupation noun), ``no_face_word``,
    ``repeated_template``, ``duplicate_text`` (two subjects share one prompt in a language and
    formulation), ``missing_subject``, ``unknown_subject``, ``gender_star_missing``,
    ``known_mistranslation`` (a curated list for the official release), and the cosmetic
    (severity ``info``) ``whitespace``, ``stray_punctuation``, ``no_final_punctuation``; plus
    the loader's notes (``whitespace``, ``empty_prompt``, ``conflicting_rows``).
    """
    out: list[Artifact] = list(prompt_set.notes)
    groups: dict[tuple[str, str, str], list[Prompt]] = defaultdict(list)
    for p in prompt_set:
        out.extend(_check_prompt(p, prompt_set.direct_forms.get(p.lang)))
        groups[(p.set, p.lang, p.formulation)].append(p)
        if p.set in _SUBJECT_INDEX and p.subject not in _SUBJECT_INDEX[p.set]:
            out.append(Artifact(p.id, "unknown_subject",
                                f"{p.subject!r} is not one of the MAGBIG {p.set}"))
    for (set_name, lang, form), ps in groups.items():
        by_text: dict[str, list[Prompt]] = defaultdict(list)
        for p in ps:
            by_text[p.text.strip()].append(p)
        for text, same in by_text.items():
            if len(same) > 1:
                for p in same:
                    others = ", ".join(repr(o.subject) for o in same if o is not p)
                    out.append(Artifact(p.id, "duplicate_text", f"same {lang} {form} prompt as {others}: {text!r}"))
        if form == "feminine" and lang not in FEMININE_REQUIRED:
            continue  # nl/hi: feminine only where the language has a form
        present = {p.subject for p in ps}
        expected = prompt_set.expected_subjects
        for subject in _SUBJECTS.get(set_name, ()):
            if subject not in present and (expected is None or subject in expected):
                out.append(Artifact(f"{subject}/{lang}/{form}", "missing_subject",
                                    f"no {lang} {form} prompt for {set_name[:-1]} {subject!r}"))
    return out
