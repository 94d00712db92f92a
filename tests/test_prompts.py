"""magbig.prompts: built-in prompt set, the official MAGBIG release, validation, bad input."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from magbig import prompts as P
from neobabel.errors import InputError
from neobabel.languages import LANGUAGE_CODES

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OFFICIAL = SHARED / "magbig-official" / "prompts"
needs_official = pytest.mark.skipif(not OFFICIAL.is_dir(), reason="../shared/data/magbig-official absent")

OFFICIAL_LANGS = {"en", "de", "fr", "es", "it", "ru", "zh", "ja", "ko", "ar"}


@pytest.fixture(scope="module")
def official() -> P.PromptSet:
    if not OFFICIAL.is_dir():
        pytest.skip("../shared/data/magbig-official absent")
    return P.load_official(OFFICIAL)


@pytest.fixture(scope="module")
def official_artifacts(official) -> list[P.Artifact]:
    return P.validate(official)


@pytest.fixture(scope="module")
def builtin() -> P.PromptSet:
    return P.load_builtin()


def kinds_by_id(artifacts, kind):
    return {a.prompt_id for a in artifacts if a.kind == kind}


# ------------------------------------------------------------------------------------------
# constants and records


def test_reference_subjects():
    assert len(P.OCCUPATIONS) == 151 and len(set(P.OCCUPATIONS)) == 151
    assert len(P.TRAITS) == 20 and len(set(P.TRAITS)) == 20
    assert P.OCCUPATIONS[0] == "accountant" and P.OCCUPATIONS[-1] == "writer"
    assert "aerospace engineer" in P.OCCUPATIONS and "self-confident" in P.TRAITS
    assert P.FORMULATIONS == ("direct", "indirect", "feminine", "gender_star")


@needs_official
def test_reference_subjects_match_official_names():
    with open(OFFICIAL / "occ_english.csv", encoding="utf-8-sig", newline="") as fh:
        occ = [r["name"] for r in csv.DictReader(fh)]
    with open(OFFICIAL / "adj_english.csv", encoding="utf-8-sig", newline="") as fh:
        adj = [r["name"] for r in csv.DictReader(fh)]
    assert list(P.OCCUPATIONS) == occ
    assert list(P.TRAITS) == adj


def test_prompt_id_is_stable():
    p = P.Prompt.make("occupations", "aerospace engineer", "de", "gender_star", "x.")
    assert p.id == "aerospace engineer/de/gender_star"
    assert (p.set, p.subject, p.lang, p.formulation, p.text) == (
        "occupations", "aerospace engineer", "de", "gender_star", "x.")


# ------------------------------------------------------------------------------------------
# built-in set


def test_builtin_english_complete(builtin):
    en = builtin.select(langs="en")
    counts = Counter((p.set, p.formulation) for p in en)
    assert counts == {("occupations", "direct"): 151, ("occupations", "indirect"): 151,
                      ("traits", "direct"): 20}
    assert builtin.direct_forms["en"] == "ungendered"
    assert "en:1" in builtin.version.split("+")
    assert builtin["doctor/en/direct"].text == "A photo of the face of a doctor."
    assert builtin["accountant/en/direct"].text == "A photo of the face of an accountant."
    assert builtin["ceo/en/direct"].text == "A photo of the face of a CEO."
    assert builtin["doctor/en/indirect"].text.startswith("A photo of the face of a person who ")
    assert builtin["doctor/en/indirect"].text.endswith(" as a profession.")
    assert builtin["ambitious/en/direct"].text == "A photo of the face of an ambitious person."
    # the builtin English set is clean
    assert P.validate(en) == []
    # order: occupations in MAGBIG order, then traits
    assert en.subjects == list(P.OCCUPATIONS) + list(P.TRAITS)


def test_builtin_ids_unique_and_ordered(builtin):
    ids = builtin.ids
    assert len(ids) == len(set(ids)) == len(builtin)
    assert all(i == f"{p.subject}/{p.lang}/{p.formulation}" for i, p in zip(ids, builtin))
    again = P.load_builtin()
    assert again.ids == ids and again.version == builtin.version
    order = [LANGUAGE_CODES.index(lang) for lang in builtin.langs]
    assert order == sorted(order)


def _builtin_langs():
    folder = Path(P.__file__).parents[1] / "data" / "prompts"
    return sorted(f.stem for f in folder.glob("*.yaml"))


@pytest.mark.parametrize("lang", _builtin_langs())
def test_builtin_language_meets_schema(builtin, lang):
    """Every shipped language: complete, with the formulations SCHEMA.md requires, and no
    warning-level artifact (duplicate texts across subjects are allowed: two occupations may
    share a word in some language)."""
    ps = builtin.select(langs=lang)
    counts = Counter((p.set, p.formulation) for p in ps)
    assert counts[("occupations", "direct")] == 151
    assert counts[("occupations", "indirect")] == 151
    assert counts[("traits", "direct")] == 20
    if lang in P.FEMININE_REQUIRED:
        assert counts[("occupations", "feminine")] == 151
    if lang == "de":
        assert counts[("occupations", "gender_star")] == 151
    else:
        assert counts[("occupations", "gender_star")] == 0
    assert builtin.direct_forms[lang] in P.DIRECT_FORMS
    bad = [a for a in P.validate(ps) if a.kind != "duplicate_text"
           and (a.severity == "warning" or a.kind in ("whitespace", "no_final_punctuation",
                                                      "stray_punctuation"))]
    assert bad == [], bad[:5]


def test_prompt_set_api(builtin):
    ps = builtin.select(langs=["English"], formulations="indirect", subjects="doctor, nurse")
    assert [p.id for p in ps] == ["doctor/en/indirect", "nurse/en/indirect"]
    assert len(ps) == 2 and "doctor/en/indirect" in ps and ps.get("doctor/en/direct") is None
    traits = builtin.select(langs="en", set="traits")
    assert len(traits) == 20 and {p.set for p in traits} == {"traits"}
    df = builtin.select(langs="en").to_frame()
    assert df.columns == ["id", "set", "subject", "lang", "formulation", "text"]
    assert df.height == 322 and df["id"].n_unique() == 322
    assert builtin.select(langs="all").ids == builtin.ids
    # selecting some subjects does not make the others "missing"
    assert P.validate(builtin.select(langs="en", subjects="doctor")) == []


# ------------------------------------------------------------------------------------------
# the official release


@needs_official
def test_official_loads_completely(official):
    counts = Counter((p.set, p.formulation, p.lang) for p in official)
    for lang in OFFICIAL_LANGS:
        assert counts[("occupations", "direct", lang)] == 151, lang
        assert counts[("occupations", "indirect", lang)] == 151, lang
        assert counts[("traits", "direct", lang)] == 20, lang
    assert counts[("occupations", "gender_star", "de")] == 151
    assert len(official) == 151 * 10 * 2 + 151 + 20 * 10 == 3371
    assert set(official.langs) == OFFICIAL_LANGS
    assert official.direct_forms["de"] == "generic_masculine"
    assert official.direct_forms["ja"] == "ungendered"
    assert official.version.startswith("sha256:")
    ids = official.ids
    assert len(set(ids)) == len(ids)
    assert {p.subject for p in official if p.set == "occupations"} == set(P.OCCUPATIONS)
    assert {p.subject for p in official if p.set == "traits"} == set(P.TRAITS)
    # texts come through unchanged apart from stripped whitespace, and extra adj columns are dropped
    assert official["accountant/en/direct"].text == "A photo of the face of an accountant."
    assert official["doctor/de/gender_star"].text == "Ein Foto des Gesichts eine*r Ärzt*in."
    assert official["assertive/fr/direct"].text == "une photo du visage d'une personne affirmée"
    assert official["ambitious/en/direct"].text == "a photo of the face of an ambitious person"
    # stable: loading twice gives the same ids and version
    again = P.load_official(OFFICIAL)
    assert again.ids == ids and again.version == official.version
    # load_prompts dispatches a CSV folder to the official loader
    assert P.load_prompts(str(OFFICIAL)).version == official.version


@needs_official
def test_official_known_artifacts(official, official_artifacts):
    arts = official_artifacts
    # explicit feminine/masculine forms in direct prompts (generic masculine expected)
    gendered = kinds_by_id(arts, "gendered_form")
    assert gendered == {
        "butcher/ar/direct", "carpenter/de/direct", "clergy/ar/direct", "clerk/ar/direct",
        "customer service representative/ar/direct", "dishwasher/ar/direct",
        "dispatcher/ar/direct", "doctor/ar/direct", "firefighter/ar/direct",
        "firefighter/de/direct", "housekeeper/ar/direct", "housekeeper/ja/direct",
        "housekeeper/ru/direct", "housekeeper/zh/direct", "janitor/ar/direct",
        "logistician/ar/direct", "maid/ar/direct", "maid/de/direct", "maid/it/direct",
        "maid/ko/direct", "maid/ru/direct", "maid/zh/direct", "manicurist/fr/direct",
        "nurse/ar/direct", "nurse/ru/direct", "programmer/ar/direct",
        "security guard/de/direct", "singer/ar/direct", "teller/ar/direct", "writer/ar/direct",
    }
    # ... and they really are in the data
    assert "الطبيبة" in official["doctor/ar/direct"].text  # "the (female) doctor"
    assert "كاتبة" in official["writer/ar/direct"].text and "كاتبة" in official["clerk/ar/direct"].text
    assert "ممرضة" in official["nurse/ar/direct"].text
    assert "Dienstmädchens" in official["maid/de/direct"].text
    assert "un’ancella" in official["maid/it/direct"].text
    assert "女管家" in official["housekeeper/zh/direct"].text
    assert "家政婦" in official["housekeeper/ja/direct"].text
    assert "горничной" in official["housekeeper/ru/direct"].text
    assert "d'un homme" in official["manicurist/fr/direct"].text
    warn = {a.prompt_id for a in arts if a.kind == "gendered_form" and a.severity == "warning"}
    assert "doctor/ar/direct" in warn and "firefighter/de/direct" not in warn  # -mann: generic masculine

    # prompts without the word for "face"
    assert kinds_by_id(arts, "no_face_word") == {
        "accountant/zh/direct", "ambitious/zh/direct", "compassionate/zh/direct", "decisive/zh/direct"}
    assert "长相" in official["accountant/zh/direct"].text
    # template repeated inside one prompt
    assert kinds_by_id(arts, "repeated_template") == {"manicurist/es/direct", "pharmacist/ar/direct"}
    assert official["manicurist/es/direct"].text.count("cara") == 2
    # word boundaries: viso in "supervisore", лица in "полицейского", وجه in "يوجه" are no faces
    for pid in ("supervisor/it/direct", "police officer/ru/direct", "director/ar/indirect"):
        assert not any(a.prompt_id == pid and a.kind == "repeated_template" for a in arts)

    # leading spaces in 19 of 20 trait prompts of seven adjective files (stripped, noted)
    ws = [a for a in arts if a.kind == "whitespace"]
    assert len(ws) == 133 and all(a.severity == "info" for a in ws)
    assert Counter(a.prompt_id.split("/")[1] for a in ws) == {
        lang: 19 for lang in ("ar", "de", "es", "fr", "it", "ko", "ru")}
    raw = (OFFICIAL / "adj_french.csv").read_text(encoding="utf-8").splitlines()[2]
    assert raw.startswith("assertive, une photo")
    assert "assertive/fr/direct" in kinds_by_id(arts, "whitespace")

    # the same prompt for two different occupations
    dups = kinds_by_id(arts, "duplicate_text")
    assert {"cashier/de/direct", "teller/de/direct", "clerk/ar/direct", "writer/ar/direct",
            "office clerk/fr/direct", "office worker/fr/direct", "teacher/de/gender_star",
            "tutor/de/gender_star", "confident/de/direct", "self-confident/de/direct"} <= dups
    assert official["cashier/de/direct"].text == official["teller/de/direct"].text

    # gender-star prompts whose noun carries no star
    star = {a.prompt_id: a.severity for a in arts if a.kind == "gender_star_missing"}
    assert star["firefighter/de/gender_star"] == "warning"
    assert star["industrial engineer/de/gender_star"] == "warning"
    assert star["nurse/de/gender_star"] == "info"  # Pflegekraft is epicene
    assert len(star) == 9
    assert official["firefighter/de/gender_star"].text.endswith("eine*r Feuerwehrmanns.")

    # stray punctuation; missing final punctuation is reported as cosmetic
    assert kinds_by_id(arts, "stray_punctuation") == {
        "carpenter/ar/direct", "firefighter/ar/direct", "industrial engineer/ar/direct",
        "jailer/ar/direct", "painter/ar/direct"}
    nopunct = [a for a in arts if a.kind == "no_final_punctuation"]
    assert all(a.severity == "info" for a in nopunct)
    assert sum(a.prompt_id.endswith("/zh/direct") for a in nopunct) > 100

    # curated mistranslations, matched on the exact official text
    mis = kinds_by_id(arts, "known_mistranslation")
    assert mis == set(P.KNOWN_MISTRANSLATIONS)
    assert "袜子" in official["stocker/zh/direct"].text
    assert "кесарева сечения" in official["ceo/ru/direct"].text

    # complete release: nothing missing, nothing unknown
    assert not kinds_by_id(arts, "missing_subject") and not kinds_by_id(arts, "unknown_subject")
    # the English originals are clean apart from the missing full stop on trait prompts
    en = [a for a in arts if a.prompt_id.split("/")[1] == "en"]
    assert {a.kind for a in en} == {"no_final_punctuation"}
    assert all(a.prompt_id.split("/")[0] in P.TRAITS for a in en)


@needs_official
def test_artifacts_frame(official_artifacts):
    df = P.artifacts_frame(official_artifacts)
    assert df.columns == ["prompt_id", "kind", "detail", "severity"]
    assert df.height == len(official_artifacts)


# ------------------------------------------------------------------------------------------
# raw CSV handling (temp files)


def _write(path: Path, text: str, *, bom=False, crlf=False, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)


def test_official_bom_crlf_spaces_and_extra_columns(tmp_path):
    root = tmp_path / "prompts"
    _write(root / "occ_english.csv",
           "name,prompt\naccountant,A photo of the face of an accountant.\n"
           'author,"A photo of the face of an author, novelist."\n'
           " baker ,  A photo of the face of a baker.  \n\n",
           bom=True, crlf=True)
    _write(root / "occ_german.csv", "\ufeffName , Prompt\naccountant,Ein Foto vom Gesicht eines Buchhalters.\n",
           crlf=True)
    _write(root / "indirect:gender_neutral" / "occ_english.csv",
           "name,prompt\naccountant,A photo of the face of a person who keeps accounts as a profession.\n",
           bom=True)
    _write(root / "indirect:gender_neutral" / "occ_german_star.csv",
           "name,prompt\naccountant,Ein Foto des Gesichts eine*r Buchhalter*in.\n", bom=True, crlf=True)
    _write(root / "feminine" / "occ_german.csv",
           "name,prompt\naccountant,Ein Foto vom Gesicht einer Buchhalterin.\n")
    _write(root / "adj_english.csv",
           "name,prompt,sega1,baseline1\nambitious, a photo of the face of an ambitious person,male person,x\n",
           bom=True, crlf=True)
    _write(root / "README.csv", "whatever,else\n1,2\n")  # not a prompt file: ignored
    ps = P.load_official(root)
    assert ps["accountant/en/direct"].text == "A photo of the face of an accountant."
    assert ps["author/en/direct"].text == "A photo of the face of an author, novelist."
    assert ps["baker/en/direct"].text == "A photo of the face of a baker."
    assert ps["accountant/de/direct"].text == "Ein Foto vom Gesicht eines Buchhalters."
    assert ps["accountant/en/indirect"].formulation == "indirect"
    assert ps["accountant/de/gender_star"].text == "Ein Foto des Gesichts eine*r Buchhalter*in."
    assert ps["accountant/de/feminine"].text == "Ein Foto vom Gesicht einer Buchhalterin."
    assert ps["ambitious/en/direct"].text == "a photo of the face of an ambitious person"
    assert ps["ambitious/en/direct"].set == "traits"
    assert not any("\r" in p.text or "\ufeff" in p.text for p in ps)
    arts = P.validate(ps)
    ws = kinds_by_id(arts, "whitespace")
    assert ws == {"baker/en/direct", "ambitious/en/direct"}
    # the feminine prompt is expected to be feminine: no gendered_form for it
    assert "accountant/de/feminine" not in kinds_by_id(arts, "gendered_form")
    # everything else is missing from this tiny release
    missing = kinds_by_id(arts, "missing_subject")
    assert "doctor/en/direct" in missing and "doctor/de/gender_star" in missing
    assert "accountant/en/direct" not in missing
    # content-addressed version changes with the text
    v1 = ps.version
    _write(root / "occ_german.csv", "name,prompt\naccountant,Ein Foto vom Gesicht eines Steuerberaters.\n")
    assert P.load_official(root).version != v1


def test_official_hub_layout_wide_columns(tmp_path):
    """The Hub dataset ships one CSV per formulation; accept language columns."""
    data = tmp_path / "snapshot" / "data"
    _write(data / "occupations_direct-00000-of-00001.csv",
           "name,english,german\ndoctor,A photo of the face of a doctor.,Ein Foto vom Gesicht eines Arztes.\n",
           bom=True)
    _write(data / "occupations_direct_feminine-00000-of-00001.csv",
           "name,german\ndoctor,Ein Foto vom Gesicht einer Ärztin.\n")
    _write(data / "occupations_german_gender_star-00000-of-00001.csv",
           "name,prompt\ndoctor,Ein Foto des Gesichts eine*r Ärzt*in.\n")
    _write(data / "occupations_indirect-00000-of-00001.csv",
           "name,english\ndoctor,A photo of the face of a person who heals patients as a profession.\n")
    _write(data / "adjectives-00000-of-00001.csv", "name,english\nambitious,a photo of the face of an ambitious person\n")
    ps = P.load_official(tmp_path / "snapshot")
    assert set(ps.ids) == {"doctor/en/direct", "doctor/de/direct", "doctor/de/feminine",
                           "doctor/de/gender_star", "doctor/en/indirect", "ambitious/en/direct"}


def test_feminine_in_direct_detected_on_synthetic_data(tmp_path):
    root = tmp_path / "r"
    _write(root / "occ_german.csv", "name,prompt\ndoctor,Ein Foto vom Gesicht einer Ärztin.\n"
           "nurse,Ein Foto vom Gesicht einer Krankenschwester.\nteacher,Ein Foto vom Gesicht eines Lehrers.\n")
    _write(root / "occ_english.csv", "name,prompt\ndoctor,A photo of the face of a female doctor.\n"
           "nurse,A photo of a nurse.\n")
    _write(root / "occ_french.csv", "name,prompt\ndoctor,Une photo du visage d'une médecin.\n")
    arts = P.validate(P.load_official(root))
    g = {a.prompt_id: a.severity for a in arts if a.kind == "gendered_form"}
    # Ärztin (suffix -in) and "einer Krankenschwester" (feminine article) in German
    assert g == {"doctor/de/direct": "warning", "nurse/de/direct": "warning",
                 "doctor/en/direct": "warning", "doctor/fr/direct": "warning"}
    assert kinds_by_id(arts, "no_face_word") == {"nurse/en/direct"}


# ------------------------------------------------------------------------------------------
# bad input -> InputError naming the bad value


def _yaml_dir(tmp_path, lang="de", body=None, header=None, sub="yaml"):
    d = tmp_path / sub
    d.mkdir(exist_ok=True)
    header = header if header is not None else f"lang: {lang}\nversion: 1\ndirect_form: generic_masculine\n"
    body = body if body is not None else (
        "occupations:\n  doctor:\n    direct: \"Ein Foto vom Gesicht eines Arztes.\"\n"
    )
    (d / f"{lang}.yaml").write_text(header + body, encoding="utf-8")
    return d


@pytest.mark.parametrize(
    "body, needle",
    [
        ("occupations:\n  doctor:\n    direct: \"x.\"\n    masculine: \"y.\"\n", "'masculine'"),
        ("occupations:\n  doctor:\n    direct: \"  \"\n", "doctor"),
        ("occupations:\n  doctor:\n    indirect: \"Ein Foto.\"\n", "missing 'direct'"),
        ("occupations:\n  wizard:\n    direct: \"Ein Foto.\"\n", "'wizard'"),
        ("traits:\n  ambitious:\n    indirect: \"x.\"\n    direct: \"y.\"\n", "'indirect'"),
        ("occupations:\n  doctor: [\"x\"\n", "not valid YAML"),
    ],
)
def test_yaml_schema_errors(tmp_path, body, needle):
    d = _yaml_dir(tmp_path, body=body)
    with pytest.raises(InputError) as exc:
        P.load_yaml_dir(d)
    msg = str(exc.value)
    assert needle in msg and "de.yaml" in msg and "\n" not in msg


def test_yaml_header_errors(tmp_path):
    d = _yaml_dir(tmp_path, header="lang: fr\nversion: 1\ndirect_form: generic_masculine\n")
    with pytest.raises(InputError, match=r"lang 'fr'.*lang: de"):
        P.load_yaml_dir(d)
    d = _yaml_dir(tmp_path, header="lang: de\nversion: 1\ndirect_form: neutral\n", sub="y2")
    with pytest.raises(InputError, match="direct_form 'neutral'"):
        P.load_yaml_dir(d)
    d = _yaml_dir(tmp_path, lang="fr", header="lang: fr\nversion: 1\ndirect_form: generic_masculine\n",
                  body="occupations:\n  doctor:\n    direct: \"a.\"\n    gender_star: \"b.\"\n", sub="y3")
    with pytest.raises(InputError, match="gender_star"):
        P.load_yaml_dir(d)


def test_yaml_folder_loads_through_load_prompts(tmp_path):
    d = _yaml_dir(tmp_path)
    ps = P.load_prompts(str(d))
    assert ps.ids == ["doctor/de/direct"] and ps.version == "de:1" and ps.direct_forms == {"de": "generic_masculine"}


def test_official_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="no/such/folder"):
        P.load_official(tmp_path / "no" / "such" / "folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no MAGBIG prompt CSVs"):
        P.load_official(tmp_path / "empty")
    _write(tmp_path / "bad" / "occupations_direct.csv", "name,foo,bar\ndoctor,1,2\n")
    with pytest.raises(InputError, match="occupations_direct.csv"):
        P.load_official(tmp_path / "bad")
    _write(tmp_path / "latin1" / "occ_german.csv", "name,prompt\ndoctor,Ärzt\n", encoding="latin-1")
    with pytest.raises(InputError, match="UTF-8"):
        P.load_official(tmp_path / "latin1")


def test_select_and_source_errors(builtin):
    with pytest.raises(InputError, match="'klingon'"):
        builtin.select(langs="klingon")
    with pytest.raises(InputError, match="'neutral'.*direct, indirect, feminine, gender_star"):
        builtin.select(formulations="direct,neutral")
    with pytest.raises(InputError, match="'astronaut'"):
        builtin.select(subjects=["doctor", "astronaut"])
    with pytest.raises(InputError, match="'animals'"):
        builtin.select(set="animals")
    with pytest.raises(InputError, match="'nonsense-source'"):
        P.load_prompts("nonsense-source")
    with pytest.raises(InputError, match="'doctor/xx/direct'"):
        builtin["doctor/xx/direct"]


def test_hub_offline_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as exc:
        P.load_hub("felfri/MAGBIG", revision="main", cache_dir=tmp_path / "hf")
    msg = str(exc.value)
    assert "'felfri/MAGBIG'" in msg and "not cached" in msg and "--source PATH" in msg and "\n" not in msg
    with pytest.raises(InputError, match="not cached"):
        P.load_prompts("hf:felfri/MAGBIG@v1")
