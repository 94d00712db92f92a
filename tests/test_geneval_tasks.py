"""GenEval metadata: loading errors, pairing by spec (NeoBabel's shared files), lexicon checks."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from neobabel.errors import InputError
from neobabel.eval import tasks
from neobabel.eval.i18n import geneval_specs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "m-geneval"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data/m-geneval")
LANGS_WITH_LEXICON = sorted(p.name[:-5] for p in resources.files("neobabel.eval.i18n").iterdir()
                            if p.name.endswith(".yaml"))

# Counts found in NeoBabel's public files (github.com/Maitreyapatel/NeoBabel, m-GenEval):
# (lines, differ from GenEval at the same line, repeated specs, specs not in GenEval, GenEval specs missing)
SHARED_COUNTS = {
    "evaluation_metadata.jsonl": ("en", 553, 0, 0, 0, 0),
    "evaluation_metadata_chinese.jsonl": ("zh", 553, 0, 0, 0, 0),
    "evaluation_metadata_dutch.jsonl": ("nl", 553, 0, 0, 0, 0),
    "evaluation_metadata_french.jsonl": ("fr", 553, 0, 0, 0, 0),
    "evaluation_metadata_hindi.jsonl": ("hi", 553, 0, 0, 0, 0),
    "evaluation_metadata_persian.jsonl": ("fa", 553, 90, 23, 33, 56),
}


@pytest.mark.parametrize("name", sorted(SHARED_COUNTS))
def test_shared_files_pair_by_spec_with_the_exact_counts(name):
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    lang, n, differ, repeated, not_in, missing = SHARED_COUNTS[name]
    lines = tasks.load_metadata(path)
    report = tasks.alignment_report(lines)
    assert (report.lang, report.lines, report.differ_at_line, report.repeated, report.not_in_reference,
            report.missing) == (lang, n, differ, repeated, not_in, missing)
    assert report.aligned is (differ == 0)


def test_misaligned_file_is_refused_or_repaired_by_spec():
    path = SHARED / "evaluation_metadata_persian.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    lines = tasks.load_metadata(path)
    with pytest.raises(InputError, match=r"fa: 553 lines .* 90 differ .* 23 repeat .* 33 are not GenEval .* 56 .* --repair"):
        tasks.require_aligned(lines)
    paired, report = tasks.require_aligned(lines, repair=True)
    assert len(paired) == 553 - 56 and not report.aligned
    ref = [tasks.spec_key(s) for s in geneval_specs()]
    keys = [p.key for p in paired]
    assert keys == [k for k in ref if k in set(keys)]  # GenEval's order, each spec once


def test_the_english_file_is_genevals_specs_in_order_and_the_builtin_prompts():
    path = SHARED / "evaluation_metadata.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    lines = tasks.load_metadata(path)
    assert [ln.to_json() for ln in lines] == [ln.to_json() for ln in tasks.builtin_metadata("en")]


def test_a_shuffled_file_differs_by_line_but_pairs_by_spec(tmp_path):
    lines = tasks.builtin_metadata("en")
    shuffled = lines[1:] + lines[:1]
    f = tmp_path / "m.jsonl"
    f.write_text("\n".join(json.dumps({**ln.to_json(), "lang": "en"}) for ln in shuffled) + "\n")
    report = tasks.alignment_report(tasks.load_metadata(f))
    assert report.differ_at_line == 553 and report.repeated == report.not_in_reference == report.missing == 0
    paired, _ = tasks.require_aligned(tasks.load_metadata(f), repair=True)
    assert [p.prompt for p in paired] == [ln.prompt for ln in lines]


@pytest.mark.parametrize("lang", LANGS_WITH_LEXICON)
def test_every_builtin_set_validates_clean(lang):
    lines = tasks.builtin_metadata(lang)
    assert tasks.alignment_report(lines).aligned
    assert tasks.lexicon_problems(lines) == []
    assert all(ln.prompt.strip() for ln in lines)


def test_lexicon_check_catches_a_wrong_count_and_a_wrong_colour():
    lines = tasks.builtin_metadata("en")
    count_line = next(ln for ln in lines if ln.tag == "counting")
    colour_line = next(ln for ln in lines if ln.tag == "colors")
    bad = [tasks.MetadataLine(7, "en", count_line.spec, "a photo of several dogs"),
           tasks.MetadataLine(9, "en", colour_line.spec, "a photo of a dog")]
    problems = tasks.lexicon_problems(bad)
    assert len(problems) == 2 and problems[0].startswith("line 7:") and "count" in problems[0]
    assert problems[1].startswith("line 9:") and "colour" in problems[1]


GOOD = '{"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a photo of a cat"}'


@pytest.mark.parametrize("text,match", [
    (GOOD + "\n{not json", r"m.jsonl:2: not a JSON object"),
    (GOOD.replace("single_object", "several_objects"), r"m.jsonl:1: unknown GenEval tag 'several_objects'"),
    (GOOD.replace('"cat"', '"unicorn"'), r"m.jsonl:1: unknown class 'unicorn'"),
    (GOOD.replace(', "prompt": "a photo of a cat"', ""), r"m.jsonl:1: missing field 'prompt'"),
    ('{"tag": "single_object", "prompt": "x"}', r"m.jsonl:1: missing field 'include'"),
    (GOOD.replace('"count": 1', '"count": "one"'), r"m.jsonl:1: .*integer 'count'"),
    (GOOD[:-1] + ', "lang": "xx"}', r"m.jsonl:1: .*xx"),
    ("", r"no metadata lines"),
])
def test_bad_lines_are_one_line_input_errors_with_the_line_number(tmp_path, text, match):
    f = tmp_path / "m.jsonl"
    f.write_text(text)
    with pytest.raises(InputError, match=match) as exc:
        tasks.load_metadata(f, lang="en")
    assert "\n" not in str(exc.value)


def test_language_comes_from_the_line_the_argument_or_the_file_name(tmp_path):
    f = tmp_path / "evaluation_metadata_persian.jsonl"
    f.write_text(GOOD + "\n" + GOOD[:-1] + ', "lang": "de"}\n')
    assert [ln.lang for ln in tasks.load_metadata(f)] == ["fa", "de"]
    g = tmp_path / "prompts.jsonl"
    g.write_text(GOOD)
    with pytest.raises(InputError, match="no 'lang' field"):
        tasks.load_metadata(g)
    assert tasks.load_metadata(g, lang="German")[0].lang == "de"


def test_lexicon_check_names_an_unknown_colour():
    spec = {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "dog"}]}
    (problem,) = tasks.lexicon_problems([tasks.MetadataLine(521, "en", spec, "a photo of a dog dog")])
    assert problem.startswith("line 521: unknown colour 'dog'")


def test_a_metadata_file_named_for_one_language_is_read_as_that_language(tmp_path):
    """evaluation_metadata_persian.jsonl holds Persian prompts: asked for as another language it
    is refused (it would be scored under the wrong language), asked for as fa it is fa."""
    import json

    from neobabel.errors import InputError
    from neobabel.eval.i18n import render_metadata
    from neobabel.eval.tasks import load_metadata

    path = tmp_path / "evaluation_metadata_persian.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in render_metadata("fa")[:3]),
                    encoding="utf-8")
    assert {ln.lang for ln in load_metadata(path)} == {"fa"}
    assert {ln.lang for ln in load_metadata(path, lang="fa")} == {"fa"}
    with pytest.raises(InputError, match="--langs fa"):
        load_metadata(path, lang="en")
