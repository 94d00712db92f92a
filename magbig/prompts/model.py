"""The prompt-set model: what a prompt and a prompt set are, and how a set is subset and ordered.

A prompt is one string for one (subject, language, formulation); subjects are the 151 MAGBIG
occupations (set ``occupations``) and the 20 MAGBIG traits (set ``traits``), spelled as the keys
of the built-in English file. Every prompt has a stable id ``"{subject}/{lang}/{formulation}"``,
e.g. ``"doctor/de/feminine"``. Prompts sort by language (registry order), set, subject (MAGBIG
order) and formulation (:data:`neobabel.formulations.FORMULATIONS`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import yaml

from neobabel.errors import InputError
from neobabel.formulations import FORMULATIONS
from neobabel.languages import LANGUAGE_CODES, LANGUAGES, normalize_lang

SETS: tuple[str, ...] = ("occupations", "traits")
DIRECT_FORMS: tuple[str, ...] = ("generic_masculine", "epicene", "ungendered")
# Languages whose built-in file must give a feminine form for every occupation (nl and hi give
# one where the language has it).
FEMININE_REQUIRED: tuple[str, ...] = ("de", "fr", "es", "it", "ru", "ar")
GENDER_STAR_LANGS: tuple[str, ...] = ("de",)

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
    YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    YamlLoader = yaml.SafeLoader


def builtin_dir():
    """The built-in set's folder in package data (works from a wheel, not only a checkout)."""
    return resources.files("magbig").joinpath("data", "prompts")


# The MAGBIG subjects in MAGBIG's order: the keys of the built-in English file, which every
# other language file (and the official release's `name` column) must use.
def _load_reference_subjects() -> tuple[tuple[str, ...], tuple[str, ...]]:
    data = yaml.load(builtin_dir().joinpath("en.yaml").read_text(encoding="utf-8"), YamlLoader)
    return tuple(data["occupations"]), tuple(data["traits"])


OCCUPATIONS, TRAITS = _load_reference_subjects()
SUBJECTS_OF_SET = {"occupations": OCCUPATIONS, "traits": TRAITS}
SUBJECT_INDEX = {
    "occupations": {s: i for i, s in enumerate(OCCUPATIONS)},
    "traits": {s: i for i, s in enumerate(TRAITS)},
}
LANG_INDEX = {c: i for i, c in enumerate(LANGUAGE_CODES)}
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


def sort_key(p: Prompt) -> tuple:
    idx = SUBJECT_INDEX.get(p.set, {})
    return (
        LANG_INDEX.get(p.lang, len(LANG_INDEX)),
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
        return sorted({p.lang for p in self.prompts}, key=lambda c: LANG_INDEX.get(c, 99))

    @property
    def formulations(self) -> list[str]:
        return sorted({p.formulation for p in self.prompts}, key=lambda f: _FORM_INDEX.get(f, 99))

    @property
    def subjects(self) -> list[str]:
        return list(dict.fromkeys(p.subject for p in sorted(self.prompts, key=lambda p: sort_key(p)[1:])))

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
        import polars as pl  # heavy: polars, only when a frame is built

        cols = ("id", "set", "subject", "lang", "formulation", "text")
        return pl.DataFrame(
            {c: [getattr(p, c) for p in self.prompts] for c in cols},
            schema={c: pl.String for c in cols},
        )

    def to_records(self) -> list[dict[str, str]]:
        return [asdict(p) for p in self.prompts]


def artifacts_frame(artifacts: Iterable[Artifact]):
    """Artifacts as a polars DataFrame: prompt_id, kind, detail, severity."""
    import polars as pl  # heavy: polars, only when a frame is built

    cols = ("prompt_id", "kind", "detail", "severity")
    rows = list(artifacts)
    return pl.DataFrame(
        {c: [getattr(a, c) for a in rows] for c in cols}, schema={c: pl.String for c in cols}
    )


def content_digest(prompts: Iterable[Prompt]) -> str:
    h = hashlib.sha256()
    for p in sorted(prompts, key=lambda p: p.id):
        h.update(p.id.encode("utf-8") + b"\x00" + p.text.encode("utf-8") + b"\x01")
    return h.hexdigest()[:12]


def default_direct_form(lang: str) -> str:
    info = LANGUAGES.get(lang)
    return "generic_masculine" if info is not None and info.grammatical_gender else "ungendered"

