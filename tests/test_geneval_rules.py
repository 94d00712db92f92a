"""m-GenEval's rules engine against GenEval's evaluate_images.py, rule by rule.

Every case is decided twice: by neobabel.eval.geneval and by a line-for-line transcription of
GenEval's own code (`_geneval_reference` below: the box-keeping loop of `evaluate_image` and
`evaluate`, djghosh13/geneval, MIT), and both must give the hand-written expected decision.
Case names say which rule they exercise.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from neobabel.errors import InputError
from neobabel.eval import geneval as ge
from neobabel.eval.geneval import Detection, GenEvalOptions
from neobabel.world.spec import relative_position as world_relative_position


def D(label, score, box, color=None):
    return Detection(label, score, tuple(float(v) for v in box), color=color)


# -- GenEval's code, transcribed (numpy in place of mmdet's per-class arrays) ------------------

def _geneval_reference(spec, detections, opts: GenEvalOptions):
    THRESHOLD, COUNTING_THRESHOLD = opts.threshold, opts.counting_threshold
    MAX_OBJECTS, NMS_THRESHOLD, POSITION_THRESHOLD = opts.max_objects, opts.max_overlap, opts.position_threshold
    COLORS = list(opts.colors)
    classnames = sorted({d.label for d in detections} | {r["class"] for r in spec["include"] + spec.get("exclude", [])})
    bbox = [np.array([[*d.box, d.score] for d in detections if d.label == c]).reshape(-1, 5) for c in classnames]
    dets_of = [[d for d in detections if d.label == c] for c in classnames]

    def compute_iou(box_a, box_b):
        area_fn = lambda box: max(box[2] - box[0] + 1, 0) * max(box[3] - box[1] + 1, 0)  # noqa: E731
        i_area = area_fn([max(box_a[0], box_b[0]), max(box_a[1], box_b[1]),
                          min(box_a[2], box_b[2]), min(box_a[3], box_b[3])])
        u_area = area_fn(box_a) + area_fn(box_b) - i_area
        return i_area / u_area if u_area else 0

    def relative_position(obj_a, obj_b):
        boxes = np.array([obj_a[0], obj_b[0]])[:, :4].reshape(2, 2, 2)
        center_a, center_b = boxes.mean(axis=-2)
        dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
        offset = center_a - center_b
        revised_offset = np.maximum(np.abs(offset) - POSITION_THRESHOLD * (dim_a + dim_b), 0) * np.sign(offset)
        if np.all(np.abs(revised_offset) < 1e-3):
            return set()
        dx, dy = revised_offset / np.linalg.norm(offset)
        relations = set()
        if dx < -0.5: relations.add("left of")  # noqa: E701
        if dx > 0.5: relations.add("right of")  # noqa: E701
        if dy < -0.5: relations.add("above")  # noqa: E701
        if dy > 0.5: relations.add("below")  # noqa: E701
        return relations

    def color_classification(image, bboxes, classname):
        return [det.color for _, det in bboxes]

    detected = {}
    confidence_threshold = THRESHOLD if spec['tag'] != "counting" else COUNTING_THRESHOLD
    for index, classname in enumerate(classnames):
        ordering = np.argsort(bbox[index][:, 4], kind="stable")[::-1]
        # GenEval's argsort breaks ties in reverse order; no case here has tied scores in a class
        ordering = ordering[bbox[index][ordering, 4] > confidence_threshold]
        ordering = ordering[:MAX_OBJECTS].tolist()
        detected[classname] = []
        while ordering:
            max_obj = ordering.pop(0)
            detected[classname].append((bbox[index][max_obj], dets_of[index][max_obj]))
            ordering = [obj for obj in ordering
                        if NMS_THRESHOLD == 1 or compute_iou(bbox[index][max_obj], bbox[index][obj]) < NMS_THRESHOLD]
        if not detected[classname]:
            del detected[classname]
    objects, metadata, image = detected, spec, None
    correct = True
    matched_groups = []
    for req in metadata.get('include', []):
        classname = req['class']
        matched = True
        found_objects = objects.get(classname, [])[:req['count']]
        if len(found_objects) < req['count']:
            correct = matched = False
        else:
            if 'color' in req:
                colors = color_classification(image, found_objects, classname)
                if colors.count(req['color']) < req['count']:
                    correct = matched = False
            if 'position' in req and matched:
                expected_rel, target_group = req['position']
                if matched_groups[target_group] is None:
                    correct = matched = False
                else:
                    for obj in found_objects:
                        for target_obj in matched_groups[target_group]:
                            true_rels = relative_position(obj, target_obj)
                            if expected_rel not in true_rels:
                                correct = matched = False
                                break
                        if not matched:
                            break
        matched_groups.append(found_objects if matched else None)
    for req in metadata.get('exclude', []):
        classname = req['class']
        if len(objects.get(classname, [])) >= req['count']:
            correct = False
    return correct


# -- the cases ------------------------------------------------------------------------------

CAT1 = {"tag": "single_object", "include": [{"class": "cat", "count": 1}]}


def two(a="cat", b="dog"):
    return {"tag": "two_object", "include": [{"class": a, "count": 1}, {"class": b, "count": 1}]}


def counting(n, cls="cat"):
    return {"tag": "counting", "include": [{"class": cls, "count": n}], "exclude": [{"class": cls, "count": n + 1}]}


def colors(c, cls="cat"):
    return {"tag": "colors", "include": [{"class": cls, "count": 1, "color": c}]}


def color_attr(c1, c2, a="cat", b="dog"):
    return {"tag": "color_attr", "include": [{"class": a, "count": 1, "color": c1},
                                             {"class": b, "count": 1, "color": c2}]}


def position(rel, a="cat", b="dog"):
    """GenEval's form: include[1] (b) is `rel` include[0] (a)."""
    return {"tag": "position", "include": [{"class": a, "count": 1},
                                           {"class": b, "count": 1, "position": [rel, 0]}]}


A = (40, 40, 60, 60)  # a box in the middle
LEFT, RIGHT = (0, 40, 20, 60), (80, 40, 100, 60)
UP, DOWN = (40, 0, 60, 20), (40, 80, 60, 100)
DEFAULT = GenEvalOptions()

CASES = [
    # rule 1: threshold, counting threshold, max objects, NMS
    ("threshold_is_strictly_above", CAT1, [D("cat", 0.3, A)], DEFAULT, False),
    ("threshold_just_above_keeps", CAT1, [D("cat", 0.31, A)], DEFAULT, True),
    ("threshold_option_raised", CAT1, [D("cat", 0.5, A)], GenEvalOptions(threshold=0.6), False),
    ("counting_threshold_drops_uncertain", counting(2), [D("cat", 0.95, LEFT), D("cat", 0.85, RIGHT)], DEFAULT, False),
    ("counting_threshold_keeps_confident", counting(2), [D("cat", 0.95, LEFT), D("cat", 0.91, RIGHT)], DEFAULT, True),
    ("counting_threshold_only_for_counting_tag", two(), [D("cat", 0.5, LEFT), D("dog", 0.5, RIGHT)], DEFAULT, True),
    ("counting_threshold_hides_uncertain_extra_from_exclude", counting(2),
     [D("cat", 0.95, LEFT), D("cat", 0.92, RIGHT), D("cat", 0.5, UP)], DEFAULT, True),
    ("counting_threshold_is_strictly_above", counting(1), [D("cat", 0.9, A)], DEFAULT, False),
    ("max_objects_caps_a_class", counting(3), [D("cat", 0.99, LEFT), D("cat", 0.98, A), D("cat", 0.97, RIGHT)],
     GenEvalOptions(max_objects=2), False),
    ("max_objects_default_16_hides_the_17th_from_exclude",
     {"tag": "two_object", "include": [{"class": "cat", "count": 1}], "exclude": [{"class": "cat", "count": 17}]},
     [D("cat", 0.9 - i * 0.01, (i * 5, 0, i * 5 + 4, 4)) for i in range(20)], DEFAULT, True),
    ("nms_off_by_default_keeps_duplicate_boxes", counting(2), [D("cat", 0.99, A), D("cat", 0.98, A)], DEFAULT, True),
    ("nms_on_merges_duplicate_boxes", counting(2), [D("cat", 0.99, A), D("cat", 0.98, A)],
     GenEvalOptions(max_overlap=0.5), False),
    ("nms_on_keeps_disjoint_boxes", counting(2), [D("cat", 0.99, LEFT), D("cat", 0.98, RIGHT)],
     GenEvalOptions(max_overlap=0.5), True),
    ("nms_iou_counts_plus_one_pixels", counting(2), [D("cat", 0.99, (0, 0, 9, 9)), D("cat", 0.98, (5, 0, 14, 9))],
     GenEvalOptions(max_overlap=0.3), False),  # IoU 50/150 with GenEval's +1, 36/126 without
    ("nms_is_per_class", two(), [D("cat", 0.99, A), D("dog", 0.98, A)], GenEvalOptions(max_overlap=0.5), True),
    # rule 2: counts of include clauses
    ("count_single_object_missing", CAT1, [D("dog", 0.9, A)], DEFAULT, False),
    ("count_single_object_extra_objects_allowed", CAT1, [D("cat", 0.9, LEFT), D("cat", 0.8, RIGHT)], DEFAULT, True),
    ("count_two_object_both_present", two(), [D("cat", 0.9, LEFT), D("dog", 0.8, RIGHT)], DEFAULT, True),
    ("count_two_object_second_missing", two(), [D("cat", 0.9, LEFT)], DEFAULT, False),
    ("count_two_object_first_missing", two(), [D("dog", 0.9, LEFT)], DEFAULT, False),
    ("count_counting_exact", counting(3), [D("cat", 0.99, LEFT), D("cat", 0.98, A), D("cat", 0.97, RIGHT)],
     DEFAULT, True),
    ("count_counting_too_few", counting(3), [D("cat", 0.99, LEFT), D("cat", 0.98, A)], DEFAULT, False),
    ("count_other_classes_ignored", counting(2), [D("cat", 0.99, LEFT), D("cat", 0.98, RIGHT), D("dog", 0.99, A)],
     DEFAULT, True),
    # rule 3: colour
    ("color_top_object_right_colour", colors("red"), [D("cat", 0.9, A, "red")], DEFAULT, True),
    ("color_top_object_wrong_colour", colors("red"), [D("cat", 0.9, A, "blue")], DEFAULT, False),
    ("color_only_top_count_objects_classified", colors("red"), [D("cat", 0.9, A, "red"), D("cat", 0.8, LEFT, "blue")],
     DEFAULT, True),
    ("color_lower_ranked_right_colour_does_not_help", colors("red"),
     [D("cat", 0.9, A, "blue"), D("cat", 0.8, LEFT, "red")], DEFAULT, False),
    ("color_every_counted_object_needs_the_colour",
     {"tag": "colors", "include": [{"class": "cat", "count": 2, "color": "red"}]},
     [D("cat", 0.9, LEFT, "red"), D("cat", 0.8, RIGHT, "blue")], DEFAULT, False),
    ("color_every_counted_object_has_the_colour",
     {"tag": "colors", "include": [{"class": "cat", "count": 2, "color": "red"}]},
     [D("cat", 0.9, LEFT, "red"), D("cat", 0.8, RIGHT, "red")], DEFAULT, True),
    ("color_attr_both_right", color_attr("red", "blue"), [D("cat", 0.9, LEFT, "red"), D("dog", 0.9, RIGHT, "blue")],
     DEFAULT, True),
    ("color_attr_swapped_colours", color_attr("red", "blue"),
     [D("cat", 0.9, LEFT, "blue"), D("dog", 0.9, RIGHT, "red")], DEFAULT, False),
    ("color_attr_second_wrong", color_attr("red", "blue"), [D("cat", 0.9, LEFT, "red"), D("dog", 0.9, RIGHT, "red")],
     DEFAULT, False),
    ("color_attr_second_missing", color_attr("red", "blue"), [D("cat", 0.9, LEFT, "red")], DEFAULT, False),
    # rule 4: position
    ("position_right_of_holds", position("right of"), [D("cat", 0.9, LEFT), D("dog", 0.9, RIGHT)], DEFAULT, True),
    ("position_left_of_holds", position("left of"), [D("cat", 0.9, RIGHT), D("dog", 0.9, LEFT)], DEFAULT, True),
    ("position_above_holds", position("above"), [D("cat", 0.9, DOWN), D("dog", 0.9, UP)], DEFAULT, True),
    ("position_below_holds", position("below"), [D("cat", 0.9, UP), D("dog", 0.9, DOWN)], DEFAULT, True),
    ("position_wrong_side", position("left of"), [D("cat", 0.9, LEFT), D("dog", 0.9, RIGHT)], DEFAULT, False),
    ("position_margin_small_offset_is_no_relation", position("right of"),
     [D("cat", 0.9, (40, 40, 50, 50)), D("dog", 0.9, (41.5, 40, 51.5, 50))], DEFAULT, False),
    ("position_margin_zero_small_offset_counts", position("right of"),
     [D("cat", 0.9, (40, 40, 50, 50)), D("dog", 0.9, (41.5, 40, 51.5, 50))],
     GenEvalOptions(position_threshold=0.0), True),
    ("position_diagonal_gives_both_relations", position("above"),
     [D("cat", 0.9, (50, 50, 60, 60)), D("dog", 0.9, (20, 20, 30, 30))], DEFAULT, True),
    ("position_steep_diagonal_is_not_beside", position("left of"),
     [D("cat", 0.9, (50, 50, 60, 60)), D("dog", 0.9, (44, 10, 54, 20))], DEFAULT, False),
    ("position_centre_offset_rule_uses_box_sizes", position("right of"),
     [D("cat", 0.9, (0, 0, 40, 10)), D("dog", 0.9, (30, 0, 70, 10))], DEFAULT, True),
    ("position_no_target_when_target_missing", position("right of"), [D("dog", 0.9, RIGHT)], DEFAULT, False),
    ("position_own_object_missing", position("right of"), [D("cat", 0.9, LEFT)], DEFAULT, False),
    ("position_uses_top_object_of_each_class", position("right of"),
     [D("cat", 0.9, LEFT), D("dog", 0.9, RIGHT), D("dog", 0.5, (0, 0, 5, 5))], DEFAULT, True),
    ("position_target_failing_colour_is_no_target",
     {"tag": "position", "include": [{"class": "cat", "count": 1, "color": "red"},
                                     {"class": "dog", "count": 1, "position": ["right of", 0]}]},
     [D("cat", 0.9, LEFT, "blue"), D("dog", 0.9, RIGHT)], DEFAULT, False),
    ("position_every_object_against_every_target",
     {"tag": "position", "include": [{"class": "cat", "count": 1},
                                     {"class": "dog", "count": 2, "position": ["right of", 0]}]},
     [D("cat", 0.9, A), D("dog", 0.9, RIGHT), D("dog", 0.8, LEFT)], DEFAULT, False),
    # rule 5: exclude
    ("exclude_counting_too_many", counting(2), [D("cat", 0.99, LEFT), D("cat", 0.98, A), D("cat", 0.97, RIGHT)],
     DEFAULT, False),
    ("exclude_clauses_are_ored",
     {"tag": "single_object", "include": [{"class": "cat", "count": 1}],
      "exclude": [{"class": "dog", "count": 1}, {"class": "cow", "count": 2}]},
     [D("cat", 0.9, A), D("cow", 0.9, LEFT), D("cow", 0.8, RIGHT)], DEFAULT, False),
    ("exclude_under_count_passes",
     {"tag": "single_object", "include": [{"class": "cat", "count": 1}], "exclude": [{"class": "cow", "count": 2}]},
     [D("cat", 0.9, A), D("cow", 0.9, LEFT)], DEFAULT, True),
    ("exclude_below_threshold_not_counted",
     {"tag": "single_object", "include": [{"class": "cat", "count": 1}], "exclude": [{"class": "dog", "count": 1}]},
     [D("cat", 0.9, A), D("dog", 0.2, LEFT)], DEFAULT, True),
]


@pytest.mark.parametrize("spec,dets,opts,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decision_matches_geneval(spec, dets, opts, expected):
    ge.check_spec(spec)
    ours = ge.evaluate_detections(spec, dets, options=opts)
    assert ours.correct is expected, ours.reason
    assert _geneval_reference(spec, dets, opts) is expected
    assert (ours.reason == "") is expected


def test_there_are_at_least_40_cases_with_distinct_names():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def test_reasons_are_genevals_wording():
    d = ge.evaluate_detections(counting(2), [D("cat", 0.99, LEFT), D("cat", 0.98, A), D("cat", 0.97, RIGHT)])
    assert d.reason == "expected cat<3, found 3"
    d = ge.evaluate_detections(colors("red"), [D("cat", 0.9, A, "blue")])
    assert d.reason == "expected red cat>=1, found 0 red; and 1 blue"
    d = ge.evaluate_detections(position("right of"), [D("dog", 0.9, RIGHT)])
    assert d.reason == "expected cat>=1, found 0\nno target for dog to be right of"
    assert [(c.kind, c.passed) for c in d.checks] == [("count", False), ("count", True), ("position", False)]


def test_colour_is_not_classified_when_the_count_fails():
    def boom(image, dets):
        raise AssertionError("classified")

    assert not ge.evaluate_detections(colors("red"), [], color_classifier=boom).correct


def test_colour_classifier_sees_the_top_count_objects_in_order():
    seen = []

    def clf(image, dets):
        seen.append([d.score for d in dets])
        return ["red"] * len(dets)

    spec = {"tag": "colors", "include": [{"class": "cat", "count": 2, "color": "red"}]}
    ge.evaluate_detections(spec, [D("cat", 0.5, A), D("cat", 0.9, LEFT), D("cat", 0.7, RIGHT)], color_classifier=clf)
    assert seen == [[0.9, 0.7]]


def test_colour_prompt_without_colours_or_classifier_is_an_input_error():
    with pytest.raises(InputError, match="colour classifier"):
        ge.evaluate_detections(colors("red"), [D("cat", 0.9, A)])


def test_relative_position_agrees_with_the_worlds_copy_of_genevals_rule():
    rng = np.random.default_rng(0)
    for _ in range(500):
        a, b = rng.uniform(0, 100, (2, 2, 2))
        box_a, box_b = [*a.min(0), *a.max(0)], [*b.min(0), *b.max(0)]
        assert ge.relative_position(box_a, box_b) == world_relative_position(box_a, box_b)


def test_iou_of_degenerate_boxes_is_zero():
    assert ge.compute_iou((0, 0, -1, -1), (0, 0, -1, -1)) == 0.0
    assert ge.compute_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0


@pytest.mark.parametrize("spec,match", [
    ({"tag": "counts", "include": [{"class": "cat", "count": 1}]}, "unknown GenEval tag 'counts'"),
    ({"tag": "counting", "include": []}, "non-empty 'include'"),
    ({"tag": "counting", "include": [{"class": "cat", "count": 0}]}, "integer 'count'"),
    ({"tag": "position", "include": [{"class": "cat", "count": 1, "position": ["near", 0]}]}, "position"),
])
def test_bad_specs_are_input_errors(spec, match):
    with pytest.raises(InputError, match=match):
        ge.check_spec(spec)


def test_bad_options_are_input_errors():
    with pytest.raises(InputError, match="threshold=1.5"):
        GenEvalOptions(threshold=1.5)


def _rows(lang, tag, prompt, correct_list, status="ok"):
    rows = []
    for i, c in enumerate(correct_list):
        fields = {"key": f"{lang}{tag}{prompt}{i}", "lang": lang, "tag": tag, "prompt_id": f"{tag}{prompt}", "seed": i}
        if status != "ok":
            rows += ge.decision_rows(fields, None, status)
        else:
            rows += ge.decision_rows(fields, ge.ImageDecision(c, "" if c else "x", (ge.Check(0, "count", "cat", ">=1", "1", c),
                                                                                  ge.Check(0, "exclude", "cat", "<2", "1", True))))
    return rows


def test_overall_is_the_unweighted_mean_of_task_means_and_prompts_pass_with_any_image():
    rows = _rows("en", "single_object", 0, [True] * 4) + _rows("en", "single_object", 1, [True] * 4)
    rows += _rows("en", "counting", 0, [True, False, False, False])
    rows += _rows("en", "counting", 1, [False] * 3, status="missing")
    s = ge.summarize(ge.scores_frame(rows))["per_lang"]["en"]
    assert s["tasks"]["single_object"]["score"] == 1.0
    assert s["tasks"]["counting"]["score"] == pytest.approx(1 / 7)  # the 3 missing images count as failures
    assert s["overall"] == pytest.approx((1 + 1 / 7) / 2)  # not the image-weighted 9/15
    assert s["correct_images"] == pytest.approx(9 / 15)
    assert s["correct_prompts"] == pytest.approx(3 / 4)
    assert s["failed_images"] == 3 and s["failed_by_status"] == {"missing": 3}


def test_scores_have_one_row_per_image_and_check():
    frame = ge.scores_frame(_rows("de", "counting", 0, [True, False]))
    assert frame.height == 4 and frame["key"].n_unique() == 2
    assert ge.image_table(frame).height == 2 and frame.schema["passed"] == pl.Boolean


def test_two_prompts_sharing_one_image_are_both_counted():
    rows = []
    for pid, ok in (("colors/001", True), ("colors/002", False)):
        fields = {"key": "same-image", "lang": "ko", "tag": "colors", "prompt_id": pid, "seed": 0}
        rows += ge.decision_rows(fields, ge.ImageDecision(ok, "", (ge.Check(0, "count", "star", ">=1", "1", ok),)))
    s = ge.summarize(ge.scores_frame(rows))["per_lang"]["ko"]
    assert s["images"] == 2 and s["tasks"]["colors"]["score"] == 0.5 and s["prompts"] == 2
