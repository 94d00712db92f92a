"""GenEval metadata files: loading, pairing languages by spec, and translation checks.

A metadata line is GenEval's JSON object: ``tag``, ``include``, optional ``exclude``, ``prompt``
and (here, optionally) ``lang``. Only ``prompt`` differs between languages; the rest is the
*spec*. Languages are paired by spec, never by line number: NeoBabel's Persian file, for one,
holds GenEval's specs in another order, some twice and some that are not GenEval's
(:func:`alignment_report` counts them; :func:`pair_by_spec` re-pairs such a file).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from neobabel.errors import InputError
from neobabel.jsonl import jsonl_objects
from neobabel.eval.geneval import check_spec
from neobabel.eval.i18n import geneval_classes, geneval_specs, lexicon
from neobabel.languages import LANGUAGE_CODES, normalize_lang

#: NeoBabel's file names (evaluation_metadata_<name>.jsonl) -> language code.
NEOBABEL_FILE_LANGS = {"chinese": "zh", "dutch": "nl", "french": "fr", "hindi": "hi", "persian": "fa",
                       "english": "en"}


def spec_of(line: dict) -> dict:
    """The spec of a metadata line: tag, include and exclude (when present), nothing else."""
    return {k: line[k] for k in ("tag", "include", "exclude") if k in line}


def spec_key(spec: dict) -> str:
    """Canonical JSON of a spec: two lines pair when their keys are equal."""
    return json.dumps(spec_of(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class MetadataLine:
    line_no: int  # 1-based line in its file (built-in sets: position in GenEval's order)
    lang: str
    spec: dict
    prompt: str

    @property
    def key(self) -> str:
        return spec_key(self.spec)

    @property
    def tag(self) -> str:
        return self.spec["tag"]

    def to_json(self) -> dict:
        return {**self.spec, "prompt": self.prompt}


def lang_from_filename(path: str | Path) -> str | None:
    """`evaluation_metadata.jsonl` -> en, `..._persian.jsonl` -> fa, `..._de.jsonl` -> de."""
    stem = Path(path).stem
    if stem == "evaluation_metadata":
        return "en"
    tail = stem.rsplit("_", 1)[-1].lower()
    if tail in NEOBABEL_FILE_LANGS:
        return NEOBABEL_FILE_LANGS[tail]
    return tail if tail in LANGUAGE_CODES else None


def parse_metadata(text: str, source: str, lang: str | None = None,
                   classes: tuple[str, ...] | None = None) -> list[MetadataLine]:
    """Metadata lines of one file's text. Each line needs a ``lang`` field unless ``lang`` is
    given. Any bad line is an InputError naming the file and line number."""
    known = set(classes if classes is not None else geneval_classes())
    out = []
    for no, obj in jsonl_objects(text, lambda no: f"{source}:{no}", "each line is one GenEval metadata object"):
        where = f"{source}:{no}"
        for name in ("tag", "include", "prompt"):
            if name not in obj:
                raise InputError(f"{where}: missing field {name!r}; a GenEval line has tag, include, prompt "
                                 "(and optional exclude, lang)")
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise InputError(f"{where}: empty prompt; give the prompt text")
        try:
            check_spec(obj)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        for req in obj["include"] + list(obj.get("exclude") or []):
            if req["class"] not in known:
                raise InputError(f"{where}: unknown class {req['class']!r}; the vocabulary has "
                                 f"{len(known)} classes (e.g. {', '.join(sorted(known)[:3])})")
        line_lang = obj.get("lang", lang)
        if line_lang is None:
            raise InputError(f"{where}: no 'lang' field and no language given; add \"lang\" to each "
                             "line or name the file's language (e.g. --lang de)")
        try:
            line_lang = normalize_lang(line_lang)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        out.append(MetadataLine(no, line_lang, spec_of(obj), obj["prompt"]))
    if not out:
        raise InputError(f"{source}: no metadata lines; expected GenEval JSONL (one object per line)")
    return out


def load_metadata(path: str | Path, lang: str | None = None,
                  classes: tuple[str, ...] | None = None) -> list[MetadataLine]:
    """A GenEval metadata JSONL file (language from ``lang``, each line's ``lang``, or the file name)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"metadata file {path} does not exist; give a GenEval metadata JSONL file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read metadata file {path} ({exc}); give a UTF-8 JSONL file") from None
    named = lang_from_filename(path)
    if lang and named and lang != named:  # the file's name says which language its prompts are in
        raise InputError(f"{path.name} holds {named!r} prompts (by its name) but --langs asks for {lang!r}; "
                         f"pass --langs {named} (or rename the file)")
    return parse_metadata(text, str(path), named or lang, classes)


def builtin_metadata(lang: str) -> list[MetadataLine]:
    """The built-in m-GenEval set of ``lang`` (rendered from GenEval's specs)."""
    from neobabel.eval.i18n import render_metadata

    return [MetadataLine(i, lang, spec_of(d), d["prompt"]) for i, d in enumerate(render_metadata(lang), start=1)]


def by_lang(lines: list[MetadataLine]) -> dict[str, list[MetadataLine]]:
    out: dict[str, list[MetadataLine]] = {}
    for line in lines:
        out.setdefault(line.lang, []).append(line)
    return out


# -- pairing by spec -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlignmentReport:
    """How a language's lines pair with the reference specs (GenEval's 553, in its order)."""

    lang: str
    lines: int
    reference: int
    differ_at_line: int  # lines whose spec is not the reference's spec at the same position
    repeated: int  # lines whose spec already appeared earlier in the file
    not_in_reference: int  # lines whose spec is not one of the reference's
    missing: int  # reference specs that no line has
    examples: tuple[str, ...] = field(default=(), compare=False)

    @property
    def aligned(self) -> bool:
        return self.differ_at_line == self.repeated == self.not_in_reference == self.missing == 0 \
            and self.lines == self.reference

    def message(self) -> str:
        return (f"{self.lang}: {self.lines} lines for {self.reference} GenEval specs; {self.differ_at_line} differ "
                f"from GenEval's spec at the same line, {self.repeated} repeat a spec, {self.not_in_reference} "
                f"are not GenEval specs, {self.missing} GenEval specs are missing")


def alignment_report(lines: list[MetadataLine], reference: tuple[dict, ...] | None = None) -> AlignmentReport:
    ref_keys = [spec_key(s) for s in (reference if reference is not None else geneval_specs())]
    ref_set = set(ref_keys)
    keys = [ln.key for ln in lines]
    differ = sum(1 for i, k in enumerate(keys) if i >= len(ref_keys) or k != ref_keys[i])
    counts = Counter(keys)
    repeated = sum(c - 1 for c in counts.values())
    not_in = [ln for ln in lines if ln.key not in ref_set]
    missing = len(ref_set - set(keys))
    examples = tuple(f"line {ln.line_no}: {ln.key}" for ln in not_in[:3])
    return AlignmentReport(lines[0].lang if lines else "?", len(lines), len(ref_keys), differ, repeated,
                           len(not_in), missing, examples)


def pair_by_spec(lines: list[MetadataLine], reference: tuple[dict, ...] | None = None
                 ) -> tuple[list[MetadataLine], AlignmentReport]:
    """The lines in the reference's order, one per reference spec that the file has (the first
    line with it); repeats and specs that are not the reference's are dropped, missing specs
    stay missing. The report describes the file as given."""
    ref = reference if reference is not None else geneval_specs()
    report = alignment_report(lines, ref)
    first: dict[str, MetadataLine] = {}
    for ln in lines:
        first.setdefault(ln.key, ln)
    paired = [first[spec_key(s)] for s in ref if spec_key(s) in first]
    return paired, report


def require_aligned(lines: list[MetadataLine], repair: bool = False,
                    reference: tuple[dict, ...] | None = None) -> tuple[list[MetadataLine], AlignmentReport]:
    """The lines to score: as given when aligned with GenEval; re-paired by spec with
    ``repair``; otherwise an InputError that says what is wrong and about --repair."""
    paired, report = pair_by_spec(lines, reference)
    if report.aligned:
        return lines, report
    if not repair:
        raise InputError(f"metadata not aligned with GenEval ({report.message()}); fix the file or pass "
                         "--repair to score the GenEval specs it has, paired by spec")
    return paired, report


# -- translation checks ---------------------------------------------------------------------------

def _forms(table: dict, key) -> list[str]:
    forms = table.get(key, table.get(str(key), []))
    return [forms] if isinstance(forms, str) else list(forms)


def lexicon_problems(lines: list[MetadataLine], lang: str | None = None) -> list[str]:
    """Lines whose prompt does not name its count (2-4) or colour in the language's words
    (any surface form in ``lexicon(lang)``): one message per problem, with the line number."""
    problems = []
    lex_cache: dict[str, dict] = {}
    for ln in lines:
        code = lang or ln.lang
        lex = lex_cache.setdefault(code, lexicon(code))
        text = ln.prompt.casefold()
        for req in ln.spec["include"]:
            count = int(req["count"])
            if count > 1:
                forms = _forms(lex["numbers"], count)
                if forms and not any(f.casefold() in text for f in forms):
                    problems.append(f"line {ln.line_no}: prompt {ln.prompt!r} does not name the count {count} "
                                    f"({'/'.join(forms)})")
            if "color" in req:
                forms = _forms(lex["colors"], req["color"])
                if not forms:  # e.g. NeoBabel's Persian line 521 asks for the colour "dog"
                    problems.append(f"line {ln.line_no}: unknown colour {req['color']!r} (not one of the "
                                    f"lexicon's {len(lex['colors'])} colours)")
                    continue
                if not any(f.casefold() in text for f in forms):
                    problems.append(f"line {ln.line_no}: prompt {ln.prompt!r} does not name the colour "
                                    f"{req['color']} ({'/'.join(forms)})")
    return problems


__all__ = [
    "MetadataLine", "AlignmentReport", "NEOBABEL_FILE_LANGS", "spec_of", "spec_key", "lang_from_filename",
    "parse_metadata", "load_metadata", "builtin_metadata", "by_lang", "alignment_report", "pair_by_spec",
    "require_aligned", "lexicon_problems",
]
