"""m-DPG scoring: the CSV contract, grids and tiles, the dependency rule, fixed vs legacy numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neobabel.errors import InputError
from neobabel.eval import dpg

HEADER = ",".join(dpg.DPG_COLUMNS)
# Prompt A's first row is the one the reference skips; its children then hit a dangling parent.
HAND_CSV = HEADER + "\n" + "\n".join([
    'A,"a black cat left of a dog",,1,0,entity,whole,entity - whole (cat),Is there a cat?',
    'A,"a black cat left of a dog",,2,1,attribute,color,"attribute - color (cat, black)",Is the cat black?',
    'A,"a black cat left of a dog",,3,0,entity,whole,entity - whole (dog),Is there a dog?',
    'A,"a black cat left of a dog",,4,"1,3",relation,spatial,"relation - spatial (cat, dog, left of)",Is the cat left of the dog?',
    'B,"two birds",,1,0,entity,whole,entity - whole (bird),Is there a bird?',
    'B,"two birds",,2,1,other,count,"other - count (bird, ==2)",Are there two birds?',
    'C,"a fish",,1,0,entity,whole,entity - whole (fish),Is there a fish?',
]) + "\n"

# yes (1) / no (0) per question text, per tile 0..3
ANSWERS = {
    "Is there a cat?": (1, 0, 1, 1),
    "Is the cat black?": (1, 1, 0, 1),
    "Is there a dog?": (1, 1, 0, 1),
    "Is the cat left of the dog?": (1, 1, 1, 0),
    "Is there a bird?": (1, 1, 0, 1),
    "Are there two birds?": (1, 0, 1, 1),
}


class TileAnswerer:
    """Answers from ANSWERS; the tile index is written in the red channel (50 * k)."""

    name = "table"

    def __init__(self):
        self.calls = 0

    def p_yes_questions(self, images, questions):
        self.calls += 1
        out = []
        for im, q in zip(images, questions):
            k = im.getpixel((1, 1))[0] // 50
            out.append(0.9 if ANSWERS[q.question][k] else 0.1)
        return np.array(out)


def _tiles():
    return [Image.new("RGB", (16, 16), (50 * k, 0, 0)) for k in range(4)]


@pytest.fixture()
def hand_case(tmp_path: Path):
    csv = tmp_path / "dpg.csv"
    csv.write_text(HAND_CSV, encoding="utf-8")
    img = tmp_path / "img"
    img.mkdir()
    dpg.make_grid(_tiles()).save(img / "A.png")
    for k, t in enumerate(_tiles()):  # B as four separate files
        t.save(img / f"B_{k}.png")
    (img / "C.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.new("RGB", (8, 8)).save(img / "stray.png")
    return csv, img


def test_fixed_mode_numbers_by_hand(hand_case):
    csv, img = hand_case
    items = dpg.read_dpg_csv(csv)
    assert [it.item_id for it in items] == ["A", "B", "C"] and len(items[0].questions) == 4
    sources, unknown = dpg.find_images(img, items)
    assert unknown == ["stray.png"]
    res = dpg.score_dpg(items, sources, TileAnswerer())
    en = res.summary["per_lang"]["en"]
    # A tiles after the dependency rule: 1, 1/4, 1/4, 3/4 -> 0.5625; B: 1, 1/2, 0, 1 -> 0.625;
    # C: unreadable -> 0. Mean over three prompts.
    assert en["score"] == pytest.approx(100 * (0.5625 + 0.625 + 0) / 3)
    assert en["score_without_failed"] == pytest.approx(100 * (0.5625 + 0.625) / 2)
    assert en["failed_tiles"] == 4 and en["prompts"] == 3
    assert {f["item_id"] for f in en["failures"]} == {"C"}
    # raw answers over all tiles; C's fish counts 0 on its four failed tiles: 9 yes of 16
    assert en["categories_l2"] == {"entity - whole": 56.25, "attribute - color": 75.0,
                                   "relation - spatial": 75.0, "other - count": 75.0}
    assert en["categories_l1"]["entity"] == 56.25
    rows = res.rows
    assert rows.height == 4 * (4 + 2 + 1)
    t1 = rows.filter((rows["item_id"] == "A") & (rows["tile"] == 1)).sort("qid")
    assert t1["score_raw"].to_list() == [0.0, 1.0, 1.0, 1.0]
    assert t1["score"].to_list() == [0.0, 0.0, 1.0, 0.0]  # cat missing zeroes colour and relation


def test_legacy_mode_reproduces_the_reference(hand_case):
    csv, img = hand_case
    items = dpg.read_dpg_csv(csv, legacy=True)
    assert len(items[0].questions) == 3  # the first data row is skipped, as in the reference
    sources, _ = dpg.find_images(img, items)
    en = dpg.score_dpg(items, sources, TileAnswerer(), legacy=True).summary["per_lang"]["en"]
    # A: KeyError on the skipped parent -> dropped; C: corrupt -> dropped; only B counts.
    assert en["score"] == pytest.approx(62.5)
    assert en["prompts_scored"] == 1
    # the last tile's raw answers only (B, tile 3: yes, yes)
    assert en["categories_l2"] == {"entity - whole": 100.0, "other - count": 100.0}
    # ... but the dropped prompts are still reported
    assert {f["item_id"] for f in en["failures"]} == {"A", "C"}


def test_missing_column_is_one_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(HAND_CSV.replace("category_detailed", "category"), encoding="utf-8")
    with pytest.raises(InputError, match="missing column 'category_detailed'") as e:
        dpg.read_dpg_csv(p)
    assert "\n" not in str(e.value)


def test_bad_numbers_and_files_are_input_errors(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(HAND_CSV.replace('A,"a black cat left of a dog",,3,', 'A,"a black cat left of a dog",,x3,'), encoding="utf-8")
    with pytest.raises(InputError, match="line 4: proposition_id 'x3'"):
        dpg.read_dpg_csv(p)
    with pytest.raises(InputError, match="does not exist"):
        dpg.read_dpg_csv(tmp_path / "nope.csv")


def test_missing_prompt_images_count_as_failures(hand_case):
    csv, img = hand_case
    (img / "A.png").unlink()
    items = dpg.read_dpg_csv(csv)
    sources, _ = dpg.find_images(img, items)
    en = dpg.score_dpg(items, sources, TileAnswerer()).summary["per_lang"]["en"]
    assert en["failed_tiles"] == 8 and en["score"] == pytest.approx(100 * 0.625 / 3)


def test_transitive_dependencies_fixed_vs_single_pass():
    q = dpg.DpgQuestion
    # the child is listed before its parent: the reference's single pass misses the chain
    item = dpg.DpgItem("X", "", (q(3, (2,), "", ""), q(1, (0,), "", ""), q(2, (1,), "", "")))
    answers = {1: 0.0, 2: 1.0, 3: 1.0}
    fixed, _ = dpg.apply_dependencies(item, answers)
    legacy, _ = dpg.apply_dependencies(item, answers, legacy=True)
    assert fixed == {1: 0.0, 2: 0.0, 3: 0.0}
    assert legacy == {1: 0.0, 2: 0.0, 3: 1.0}


def test_grid_split_order_and_bad_grid():
    grid = dpg.make_grid(_tiles())
    tiles = dpg.split_grid(grid)
    assert [t.getpixel((0, 0))[0] for t in tiles] == [0, 50, 100, 150]
    with pytest.raises(ValueError, match="square"):
        dpg.split_grid(Image.new("RGB", (30, 20)))


def test_real_dpg_prompt_files_read_as_prompts():
    folder = Path("/work/shared/data/dpg-bench/prompts")
    if not folder.is_dir():
        pytest.skip("DPG-Bench prompt files not present")
    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))[:20]}
    rows = [{"item_id": k, "text": v, "keywords": "", "proposition_id": "1", "dependency": "0",
             "category_broad": "entity", "category_detailed": "whole", "tuple": "entity - whole (thing)",
             "question_natural_language": "Is there a thing?"} for k, v in texts.items()]
    import polars as pl
    items = dpg.dpg_items_from_frame(pl.DataFrame(rows))
    assert {it.item_id for it in items} == set(texts) and all(it.text == texts[it.item_id] for it in items)
    back = dpg.dpg_items_from_frame(dpg.dpg_frame(items))
    assert back == items


def test_dangling_parents_are_ignored_and_counted_once_per_prompt(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text(HEADER + "\n" + "\n".join([
        'A,"a black cat",,2,1,attribute,color,"attribute - color (cat, black)",Is the cat black?',
        'A,"a black cat",,3,0,entity,whole,entity - whole (dog),Is there a dog?',
    ]) + "\n", encoding="utf-8")
    items = dpg.read_dpg_csv(csv)
    tiles = {("en", "A"): _tiles()}
    answers = dpg.answer_items(items, tiles, TileAnswerer())
    en = dpg.score_answers(items, answers).summary["per_lang"]["en"]
    assert en["dangling_parents"] == 1 and en["failed_tiles"] == 0
    # "Is the cat black?" keeps its raw answers (1, 1, 0, 1); the dog: (1, 1, 0, 1)
    assert en["score"] == pytest.approx(75.0)
