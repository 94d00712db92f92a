"""MAGBIG prompt sets: the built-in multilingual set, the official release, and validation.

A prompt is one string for one (subject, language, formulation); subjects are the 151 MAGBIG
occupations (set ``occupations``) and the 20 MAGBIG traits (set ``traits``). Every prompt has a
stable id ``"{subject}/{lang}/{formulation}"``, e.g. ``"doctor/de/feminine"``.

One job per module:

- :mod:`~magbig.prompts.model`: ``Prompt``, ``PromptSet`` (selection, order, frames), ``Artifact``;
- :mod:`~magbig.prompts.builtin`: the YAML files shipped in ``magbig/data/prompts/`` (schema in
  ``SCHEMA.md`` there), authored for this project in the 13 languages of ``neobabel.languages``;
- :mod:`~magbig.prompts.official`: the official MAGBIG release in its repository layout
  (``occ_<language>.csv``, ``indirect:gender_neutral/occ_<language>.csv``, ``adj_<language>.csv``
  …) or the Hub dataset's (``data/occupations_direct-*.csv`` …), and the Hub dataset itself at a
  pinned commit (``HUB_REVISION``), from the local cache unless a download is asked for;
- :mod:`~magbig.prompts.sources`: ``load_prompts``, which of those a ``--source`` string names;
- :mod:`~magbig.prompts.artifacts`: ``validate``, the known artifacts of a set (feminine forms
  inside direct prompts, prompts without the word for "face", duplicates, missing subjects, …) so
  that an audit can exclude or footnote them instead of silently measuring them;
- :mod:`~magbig.prompts.tables`: the validator's word lists and curated mistranslations, data
  files in ``magbig/data/artifacts/``, checked on load.
"""

from __future__ import annotations

from typing import Any

from magbig.prompts.artifacts import validate
from magbig.prompts.builtin import load_builtin, load_yaml_dir
from magbig.prompts.model import (
    DIRECT_FORMS,
    FEMININE_REQUIRED,
    OCCUPATIONS,
    SETS,
    TRAITS,
    Artifact,
    Prompt,
    PromptSet,
    artifacts_frame,
)
from magbig.prompts.official import HUB_DATASET, HUB_REVISION, load_hub, load_official
from magbig.prompts.sources import load_prompts
from magbig.prompts.tables import known_mistranslations, lexicon
from neobabel.formulations import FORMULATIONS

__all__ = [
    "FORMULATIONS",
    "SETS",
    "DIRECT_FORMS",
    "FEMININE_REQUIRED",
    "OCCUPATIONS",
    "TRAITS",
    "FACE_WORDS",
    "KNOWN_MISTRANSLATIONS",
    "HUB_DATASET",
    "HUB_REVISION",
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
    "known_mistranslations",
    "lexicon",
]


def __getattr__(name: str) -> Any:
    # The two tables that used to be module constants are data files now, read on first use
    # (not at import) and kept under their old names.
    if name == "KNOWN_MISTRANSLATIONS":
        return known_mistranslations()
    if name == "FACE_WORDS":
        return {lang: entry.face_words for lang, entry in lexicon().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
