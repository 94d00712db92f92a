"""m-GenEval prompts in zh, ja, ko, ar, hi, fa: the 553 GenEval specs render to grammatical
prompts that name every count and colour in the language's own words."""

from __future__ import annotations

import re

import pytest

from neobabel.eval.i18n import GENEVAL_COLORS, GENEVAL_RELATIONS, geneval_classes, lexicon, render, render_metadata

ASIA = ("zh", "ja", "ko", "ar", "hi", "fa")


def _spec(tag: str, *include: dict) -> dict:
    return {"tag": tag, "include": list(include)}


def _obj(cls: str, **kw) -> dict:
    return {"class": cls, "count": 1, **kw}


def _count(cls: str, n: int) -> dict:
    return {"tag": "counting", "include": [{"class": cls, "count": n}], "exclude": [{"class": cls, "count": n + 1}]}


def _pos(a: str, b: str, rel: str) -> dict:
    return _spec("position", _obj(a), _obj(b, position=[rel, 0]))


@pytest.mark.parametrize("lang", ASIA)
def test_lexicon_covers_every_class_colour_number_and_relation(lang):
    lex = lexicon(lang)
    assert set(lex["objects"]) == set(geneval_classes())
    assert set(lex["colors"]) == set(GENEVAL_COLORS)
    assert set(lex["numbers"]) == {2, 3, 4}
    assert set(lex["relations"]) == set(GENEVAL_RELATIONS)
    assert all(lex["colors"][c] for c in GENEVAL_COLORS)
    assert lex["note"]


@pytest.mark.parametrize("lang", ASIA)
def test_all_553_specs_render_distinct_prompts_naming_count_and_colour(lang):
    lex = lexicon(lang)
    rows = render_metadata(lang)
    assert len(rows) == 553
    prompts = [r["prompt"] for r in rows]
    assert len(set(prompts)) == 553, "two different specs rendered to the same prompt"
    for r in rows:
        p = r["prompt"]
        assert not re.search(r"[{}]|\s\s|^\s|\s$|[A-Za-z]", p), p
        for item in r["include"]:
            if "color" in item:
                assert any(f in p for f in lex["colors"][item["color"]]), (item, p)
            if r["tag"] == "counting":
                assert any(f in p for f in lex["numbers"][item["count"]]), (item, p)
        # no colour word the spec does not ask for (e.g. a class name containing one);
        # numbers get no such check: 三明治, गेंदों, کاسه hold a numeral inside a word
        asked = {item.get("color") for item in r["include"]}
        for colour, forms in lex["colors"].items():
            assert colour in asked or not any(f in p for f in forms), (colour, p)


# ---- Chinese -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "prompt"),
    [
        (_spec("single_object", _obj("bench")), "一张长椅的照片"),
        (_spec("two_object", _obj("bench"), _obj("sports ball")), "一张长椅和一个球的照片"),
        (_count("clock", 2), "两个时钟的照片"),
        (_count("cat", 3), "三只猫的照片"),
        (_count("banana", 4), "四根香蕉的照片"),
        (_spec("colors", _obj("fire hydrant", color="blue")), "一个蓝色消防栓的照片"),
        (_spec("colors", _obj("dog", color="white")), "一只白色的狗的照片"),
        (_pos("teddy bear", "dog", "right of"), "一只狗在一只泰迪熊右边的照片"),
        (_pos("sink", "tie", "above"), "一条领带在一个水槽上方的照片"),
        (
            _spec("color_attr", _obj("wine glass", color="purple"), _obj("apple", color="black")),
            "一个紫色葡萄酒杯和一个黑色苹果的照片",
        ),
    ],
)
def test_zh_exact_prompts(spec, prompt):
    assert render(spec, "zh") == prompt


@pytest.mark.parametrize(
    ("cls", "counted"),
    [("car", "两辆汽车"), ("horse", "两匹马"), ("cow", "两头牛"), ("book", "两本书"), ("airplane", "两架飞机"),
     ("tie", "两条领带"), ("chair", "两把椅子"), ("cell phone", "两部手机"), ("toothbrush", "两支牙刷")],
)
def test_zh_counts_through_each_class_measure_word_with_liang(cls, counted):
    # 两, never 二, before a measure word; the measure word is the class's own.
    assert render(_count(cls, 2), "zh") == f"{counted}的照片"


# ---- Japanese ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "prompt"),
    [
        (_spec("single_object", _obj("bench")), "ベンチの写真"),
        (_spec("two_object", _obj("bench"), _obj("sports ball")), "ベンチとボールの写真"),
        (_count("clock", 2), "二つの時計の写真"),
        (_count("cat", 3), "三匹の猫の写真"),
        (_count("car", 2), "二台の車の写真"),
        (_count("person", 4), "四人の人物の写真"),
        (_spec("colors", _obj("fire hydrant", color="blue")), "青い消火栓の写真"),
        (_spec("colors", _obj("bus", color="green")), "緑色のバスの写真"),
        (_pos("teddy bear", "dog", "right of"), "テディベアの右にいる犬の写真"),
        (_pos("sink", "tie", "above"), "シンクの上にあるネクタイの写真"),
        (
            _spec("color_attr", _obj("wine glass", color="purple"), _obj("apple", color="black")),
            "紫色のワイングラスと黒いリンゴの写真",
        ),
    ],
)
def test_ja_exact_prompts(spec, prompt):
    assert render(spec, "ja") == prompt


def test_ja_position_uses_iru_for_animals_and_aru_for_things():
    for cls, verb in (("cat", "いる"), ("person", "いる"), ("giraffe", "いる"), ("cup", "ある"), ("bus", "ある")):
        assert f"の左に{verb}" in render(_pos("bench", cls, "left of"), "ja"), cls


# ---- Korean --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "prompt"),
    [
        (_spec("single_object", _obj("bench")), "벤치 사진"),
        (_spec("two_object", _obj("bench"), _obj("sports ball")), "벤치와 공 사진"),
        (_spec("two_object", _obj("sports ball"), _obj("bench")), "공과 벤치 사진"),
        (_count("clock", 2), "시계 두 개 사진"),
        (_count("cat", 3), "고양이 세 마리 사진"),
        (_count("bus", 4), "버스 네 대 사진"),
        (_count("person", 2), "사람 두 명 사진"),
        (_count("book", 3), "책 세 권 사진"),
        (_spec("colors", _obj("fire hydrant", color="blue")), "파란 소화전 사진"),
        (_pos("teddy bear", "dog", "right of"), "곰 인형 오른쪽에 있는 개 사진"),
        (_pos("sink", "tie", "above"), "싱크대 위에 있는 넥타이 사진"),
        (
            _spec("color_attr", _obj("wine glass", color="purple"), _obj("apple", color="black")),
            "보라색 와인잔과 검은 사과 사진",
        ),
    ],
)
def test_ko_exact_prompts(spec, prompt):
    assert render(spec, "ko") == prompt


def test_ko_counts_use_native_numerals_and_never_the_sino_korean_ones():
    for row in render_metadata("ko"):
        if row["tag"] == "counting":
            item = row["include"][0]
            ctr = lexicon("ko")["objects"][item["class"]]["ctr"]
            native = {2: "두", 3: "세", 4: "네"}[item["count"]]
            assert row["prompt"].endswith(f" {native} {ctr} 사진"), row["prompt"]
            assert not re.search(r"(^| )(이|삼|사|둘|셋|넷) ", row["prompt"]), row["prompt"]


# ---- Arabic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "prompt"),
    [
        (_spec("single_object", _obj("bench")), "صورة لمقعد"),
        (_spec("single_object", _obj("skateboard")), "صورة للوح تزلج"),
        (_spec("two_object", _obj("bench"), _obj("sports ball")), "صورة لمقعد وكرة"),
        (_count("clock", 2), "صورة لساعتين اثنتين"),
        (_count("dog", 2), "صورة لكلبين اثنين"),
        (_count("traffic light", 2), "صورة لإشارتي مرور اثنتين"),
        (_count("clock", 3), "صورة لثلاث ساعات"),
        (_count("dog", 3), "صورة لثلاثة كلاب"),
        (_count("person", 4), "صورة لأربعة أشخاص"),
        (_count("bus", 4), "صورة لأربع حافلات"),
        (_spec("colors", _obj("fire hydrant", color="blue")), "صورة لصنبور إطفاء أزرق"),
        (_spec("colors", _obj("car", color="red")), "صورة لسيارة حمراء"),
        (_spec("colors", _obj("potted plant", color="green")), "صورة لنبتة خضراء في أصيص"),
        (_pos("teddy bear", "dog", "right of"), "صورة لكلب على يمين دمية دب"),
        (_pos("sink", "tie", "above"), "صورة لربطة عنق فوق حوض غسيل"),
        (
            _spec("color_attr", _obj("wine glass", color="purple"), _obj("apple", color="black")),
            "صورة لكأس نبيذ بنفسجية وتفاحة سوداء",
        ),
        (
            _spec("color_attr", _obj("chair", color="white"), _obj("cup", color="yellow")),
            "صورة لكرسي أبيض وكوب أصفر",
        ),
    ],
)
def test_ar_exact_prompts(spec, prompt):
    assert render(spec, "ar") == prompt


@pytest.mark.parametrize("cls", sorted(geneval_classes()))
def test_ar_numerals_and_colours_agree_with_each_class_gender(cls):
    obj = lexicon("ar")["objects"][cls]
    masc = obj["g"] == "m"
    assert obj["g"] in ("m", "f")
    # two: dual noun + same-gender numeral
    two = render(_count(cls, 2), "ar").split()
    assert ("اثنين" in two) == masc and ("اثنتين" in two) == (not masc)
    # the dual's head ends in -ين, or in -ي when it heads a construct (إشارتي مرور)
    head = obj["du"].replace("{}", "").split()[0]
    assert head.endswith("ين") or (head.endswith("ي") and " " in obj["du"]), obj["du"]
    # three/four: the numeral takes the opposite gender (ة on a masculine noun's numeral)
    assert render(_count(cls, 3), "ar").startswith("صورة لثلاثة " if masc else "صورة لثلاث ")
    assert render(_count(cls, 4), "ar").startswith("صورة لأربعة " if masc else "صورة لأربع ")
    # colour adjectives: masculine or feminine form by the noun's gender
    colour = render(_spec("colors", _obj(cls, color="red")), "ar")
    assert ("أحمر" in colour) == masc and ("حمراء" in colour) == (not masc)


# ---- Hindi ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "prompt"),
    [
        (_spec("single_object", _obj("bench")), "एक बेंच की तस्वीर"),
        (_spec("single_object", _obj("dog")), "एक कुत्ते की तस्वीर"),
        (_spec("two_object", _obj("bench"), _obj("sports ball")), "एक बेंच और एक गेंद की तस्वीर"),
        (_count("clock", 2), "दो घड़ियों की तस्वीर"),
        (_count("dog", 3), "तीन कुत्तों की तस्वीर"),
        (_count("tv", 4), "चार टीवी की तस्वीर"),
        (_count("potted plant", 3), "गमलों में लगे तीन पौधों की तस्वीर"),
        (_count("skis", 3), "तीन जोड़ी स्की की तस्वीर"),
        (_spec("colors", _obj("skis", color="green")), "एक जोड़ी हरी स्की की तस्वीर"),
        (_spec("colors", _obj("fire hydrant", color="blue")), "एक नीले फ़ायर हाइड्रेंट की तस्वीर"),
        (_spec("colors", _obj("car", color="blue")), "एक नीली कार की तस्वीर"),
        (_spec("colors", _obj("car", color="red")), "एक लाल कार की तस्वीर"),
        (_spec("colors", _obj("potted plant", color="green")), "गमले में लगे एक हरे पौधे की तस्वीर"),
        (_pos("teddy bear", "dog", "right of"), "एक टेडी बियर के दाईं ओर एक कुत्ते की तस्वीर"),
        (_pos("sink", "tie", "above"), "एक सिंक के ऊपर एक टाई की तस्वीर"),
        (
            _spec("color_attr", _obj("wine glass", color="purple"), _obj("apple", color="black")),
            "एक बैंगनी वाइन ग्लास और एक काले सेब की तस्वीर",
        ),
    ],
)
def test_hi_exact_prompts(spec, prompt):
    assert render(spec, "hi") == prompt


@pytest.mark.parametrize("cls", sorted(geneval_classes()))
def test_hi_inflecting_colours_agree_with_each_class_gender(cls):
    fem = lexicon("hi")["objects"][cls]["g"] == "f"
    for colour, (masc_form, fem_form) in (("yellow", ("पीले", "पीली")), ("black", ("काले", "काली"))):
        words = render(_spec("colors", _obj(cls, color=colour)), "hi").split()
        assert (fem_form if fem else masc_form) in words
        assert (masc_form if fem else fem_form) not in words


# ---- Persian -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "prompt"),
    [
        (_spec("single_object", _obj("bench")), "عکسی از یک نیمکت"),
        (_spec("two_object", _obj("bench"), _obj("sports ball")), "عکسی از یک نیمکت و یک توپ"),
        (_count("clock", 2), "عکسی از دو ساعت"),
        (_count("cat", 3), "عکسی از سه گربه"),
        (_count("person", 4), "عکسی از چهار نفر"),
        (_spec("colors", _obj("bench", color="blue")), "عکسی از یک نیمکت آبی"),
        (_spec("colors", _obj("cat", color="white")), "عکسی از یک گربه\u200cی سفید"),
        (_spec("colors", _obj("pizza", color="yellow")), "عکسی از یک پیتزای زرد"),
        (_spec("colors", _obj("knife", color="black")), "عکسی از یک چاقوی سیاه"),
        (_spec("colors", _obj("cow", color="brown")), "عکسی از یک گاو قهوه\u200cای"),
        (_pos("teddy bear", "dog", "right of"), "عکسی از یک سگ در سمت راست یک خرس عروسکی"),
        (_pos("sink", "tie", "above"), "عکسی از یک کراوات بالای یک سینک"),
        (
            _spec("color_attr", _obj("wine glass", color="purple"), _obj("apple", color="black")),
            "عکسی از یک جام شراب بنفش و یک سیب سیاه",
        ),
    ],
)
def test_fa_exact_prompts(spec, prompt):
    assert render(spec, "fa") == prompt


def test_fa_counts_keep_the_noun_singular():
    lex = lexicon("fa")
    for row in render_metadata("fa"):
        if row["tag"] == "counting":
            item = row["include"][0]
            obj = lex["objects"][item["class"]]
            assert row["prompt"] == f"عکسی از {lex['numbers'][item['count']][0]} {obj.get('counted', obj['n'])}"
            assert not row["prompt"].endswith("ها"), row["prompt"]  # no plural suffix after a numeral
