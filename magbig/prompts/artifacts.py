"""The validator: known artifacts of a prompt set, so an audit can exclude or footnote them.

Artifacts: feminine forms inside direct prompts, prompts without the word for "face", duplicated
prompts, missing subjects, curated mistranslations of the official release, … (see
:func:`validate`). The word lists and the mistranslations are data
(``magbig/data/artifacts/``, loaded by :mod:`magbig.prompts.tables`); the grammar-specific
rules that need code (German -in nouns, feminine articles, the Arabic ta marbuta) are here.
"""

from __future__ import annotations

import re
from collections import defaultdict

from magbig.prompts.model import (
    FEMININE_REQUIRED,
    SUBJECT_INDEX,
    SUBJECTS_OF_SET,
    Artifact,
    Prompt,
    PromptSet,
)
from magbig.prompts.tables import known_mistranslations, lexicon

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


def _gendered_words(p: Prompt) -> list[tuple[str, str, str]]:
    """(word, gender, why) for every explicit gender marker in the prompt's text."""
    text = p.text
    entry = lexicon().get(p.lang)
    found = [(m.group(0), gender, "gender word")
             for rx, gender in (entry.gender_words if entry is not None else ())
             for m in rx.finditer(text)]
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
    return found


def _gendered_form_artifacts(p: Prompt, direct_form: str | None) -> list[Artifact]:
    """Explicit gender in a formulation that should not carry it (direct, indirect)."""
    if p.formulation not in ("direct", "indirect"):
        return []
    out: list[Artifact] = []
    seen: set[str] = set()
    for word, gender, why in _gendered_words(p):
        if word in seen:
            continue
        seen.add(word)
        # A masculine word in the direct prompt of a generic-masculine language only
        # strengthens what the formulation already is (German -mann compounds, Arabic
        # رجل إطفاء): noted, not a defect. Feminine forms there, and any gendered form in
        # an indirect prompt or an ungendered language, change what is measured.
        expected = gender == "masculine" and p.formulation == "direct" and direct_form == "generic_masculine"
        out.append(Artifact(p.id, "gendered_form",
                            f"{gender} form {word!r} ({why}) in a {p.formulation} prompt: {p.text!r}",
                            "info" if expected else "warning"))
    return out


def _face_word_artifacts(p: Prompt) -> list[Artifact]:
    """The template's word for "face": missing, or repeated (the template pasted twice)."""
    words = lexicon().get(p.lang)
    if words is None:
        return []
    n = len(words.face.findall(p.text))
    if n == 0:
        return [Artifact(p.id, "no_face_word", f"no word for 'face' ({'/'.join(words.face_words)}) in {p.text!r}")]
    if n > 1:
        return [Artifact(p.id, "repeated_template",
                         f"the word for 'face' occurs {n} times (template repeated): {p.text!r}")]
    return []


def _typography_artifacts(p: Prompt) -> list[Artifact]:
    """Cosmetic: whitespace (the official loader strips it and keeps a note instead), punctuation."""
    text, out = p.text, []
    if text != text.strip() or "  " in text:
        out.append(Artifact(p.id, "whitespace", f"leading/trailing or doubled spaces in {text!r}", "info"))
    if _STRAY_PUNCT.search(text.strip()):
        out.append(Artifact(p.id, "stray_punctuation", f"repeated sentence punctuation in {text!r}", "info"))
    elif not _END_PUNCT.search(text.strip()):
        out.append(Artifact(p.id, "no_final_punctuation",
                            f"does not end with sentence punctuation: {text!r}", "info"))
    return out


def _gender_star_artifacts(p: Prompt) -> list[Artifact]:
    """A gender-star prompt without a star on its noun."""
    text = p.text
    body = text.split("*", 1)[1] if "*" in text else text
    if p.formulation != "gender_star" or _STAR_NOUN.search(body):
        return []
    tail = re.findall(r"[\w\-]+", body)
    noun = tail[-1] if tail else text
    masc = noun.endswith("s") or "mann" in noun.lower()
    return [Artifact(
        p.id, "gender_star_missing",
        f"no gender star on the noun {noun!r}"
        + (" (masculine genitive)" if masc else " (epicene noun, possibly intended)")
        + f": {text!r}",
        "warning" if masc else "info",
    )]


def _mistranslation_artifacts(p: Prompt) -> list[Artifact]:
    """A curated mistranslation of the official release (matched on its exact text)."""
    known = known_mistranslations().get(p.id)
    if known is None or known.text != p.text.strip():
        return []
    return [Artifact(p.id, "known_mistranslation", known.gloss)]


def _check_prompt(p: Prompt, direct_form: str | None) -> list[Artifact]:
    return [
        *_gendered_form_artifacts(p, direct_form),
        *_face_word_artifacts(p),
        *_typography_artifacts(p),
        *_gender_star_artifacts(p),
        *_mistranslation_artifacts(p),
    ]


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
        if p.set in SUBJECT_INDEX and p.subject not in SUBJECT_INDEX[p.set]:
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
        for subject in SUBJECTS_OF_SET.get(set_name, ()):
            if subject not in present and (expected is None or subject in expected):
                out.append(Artifact(f"{subject}/{lang}/{form}", "missing_subject",
                                    f"no {lang} {form} prompt for {set_name[:-1]} {subject!r}"))
    return out
