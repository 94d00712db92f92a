"""Synthetic world: spec vocabulary, deterministic renderer, exact detector (issue 3, items 1 and 4)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from neobabel.world import detect, render, spec
from neobabel.world.detect import count_objects, matches_spec, read_image, relation_holds
from neobabel.world.render import layout, render_array, render_batch
from neobabel.world.spec import (
    BACKGROUND,
    COLORS,
    OCCUPATIONS,
    PALETTE,
    PRESENTATIONS,
    RELATIONS,
    SHAPES,
    SKIN_TONES,
    TASKS,
    UNIFORMS,
    ObjectScene,
    Portrait,
    WorldObject,
    relative_position,
    sample_object_scene,
    sample_portrait,
    spec_from_dict,
)

OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _scenes(n_per_task: int, seed: int) -> list[ObjectScene]:
    rng = np.random.default_rng(seed)
    return [sample_object_scene(t, rng) for _ in range(n_per_task) for t in TASKS]


def _portraits(n: int, seed: int) -> list[Portrait]:
    rng = np.random.default_rng(seed)
    return [sample_portrait(rng) for _ in range(n)]


def _corrupt(img: np.ndarray, rng: np.random.Generator, noise: float = 8.0, blur: float = 0.7) -> np.ndarray:
    a = ndimage.gaussian_filter(img.astype(np.float32), (blur, blur, 0)) + rng.normal(0, noise, img.shape)
    return np.clip(a, 0, 255).round().astype(np.uint8)


def _accuracy(specs, size: int, corrupt_seed: int | None = None) -> tuple[float, list]:
    rng = np.random.default_rng(corrupt_seed) if corrupt_seed is not None else None
    wrong = []
    for i, s in enumerate(specs):
        img = render_array(s, 1000 + i, size)
        if rng is not None:
            img = _corrupt(img, rng)
        r = read_image(img)
        if not matches_spec(r, s):
            wrong.append((i, s.to_dict(), r.to_dict()))
    return 1 - len(wrong) / len(specs), wrong


# ---------------------------------------------------------------------------------------------
# spec
# ---------------------------------------------------------------------------------------------


def test_vocabulary_is_fixed():
    assert SHAPES == ("circle", "square", "triangle", "star", "cross")
    assert COLORS == ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
    assert TASKS == ("single_object", "two_object", "counting", "colors", "position", "color_attr")
    assert RELATIONS == ("left of", "right of", "above", "below")
    assert len(OCCUPATIONS) == 12 and "police officer" in OCCUPATIONS and "construction worker" in OCCUPATIONS
    assert PRESENTATIONS == ("masculine", "feminine", "ambiguous")
    assert len(SKIN_TONES) >= 4
    assert set(UNIFORMS) == set(OCCUPATIONS)
    # every occupation is told apart by (torso colour, hat colour)
    assert len({(u.torso, u.hat_color) for u in UNIFORMS.values()}) == len(OCCUPATIONS)


def test_palette_is_far_apart_and_far_from_background():
    rgb = {c: np.array(v, float) for c, v in PALETTE.items()}
    for a, b in itertools.combinations(COLORS, 2):
        assert np.linalg.norm(rgb[a] - rgb[b]) >= 90, (a, b)
    for c in COLORS:
        assert np.linalg.norm(rgb[c] - np.array(BACKGROUND)) >= 100, c


def test_spec_round_trips_through_json():
    rng = np.random.default_rng(0)
    specs = [sample_object_scene(t, rng) for t in TASKS] + [sample_portrait(rng) for _ in range(5)]
    specs.append(layout(specs[4], 3))  # with boxes
    for s in specs:
        d = json.loads(json.dumps(s.to_dict()))
        assert spec_from_dict(d) == s
        assert type(s).from_dict(d) == s
    assert WorldObject.from_dict(WorldObject("star", "red", (0.1, 0.2, 0.3, 0.4)).to_dict()).box == (0.1, 0.2, 0.3, 0.4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: WorldObject("hexagon", "red"),
        lambda: WorldObject("circle", "teal"),
        lambda: ObjectScene("position", (WorldObject("circle", "red"), WorldObject("star", "blue")), None),
        lambda: ObjectScene("single_object", (WorldObject("circle", "red"), WorldObject("star", "blue"))),
        lambda: ObjectScene("counting", (WorldObject("circle", "red"), WorldObject("star", "red"))),
        lambda: ObjectScene("counting", tuple(WorldObject("circle", "red") for _ in range(5))),
        lambda: Portrait("astronaut", "feminine", 0),
        lambda: Portrait("doctor", "female", 0),
        lambda: Portrait("doctor", "feminine", len(SKIN_TONES)),
    ],
)
def test_spec_validation(make):
    with pytest.raises(ValueError):
        make()


def test_samplers_follow_geneval_semantics():
    rng = np.random.default_rng(1)
    for _ in range(40):
        s = sample_object_scene("two_object", rng)
        assert len(s.objects) == 2 and s.objects[0].shape != s.objects[1].shape
        s = sample_object_scene("color_attr", rng)
        assert s.objects[0].shape != s.objects[1].shape and s.objects[0].color != s.objects[1].color
        s = sample_object_scene("position", rng)
        assert s.relation in RELATIONS and s.objects[0].shape != s.objects[1].shape
        s = sample_object_scene("counting", rng)
        assert 1 <= s.count <= 4 and len(set(s.objects)) == 1
        p = sample_portrait(rng, occupation="pilot")
        assert p.occupation == "pilot" and 0 <= p.skin_tone < len(SKIN_TONES)
    counts = {sample_object_scene("counting", rng).count for _ in range(100)}
    assert counts == {1, 2, 3, 4}
    assert {sample_portrait(rng, presentation="ambiguous").presentation for _ in range(5)} == {"ambiguous"}


# ---------------------------------------------------------------------------------------------
# renderer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_render_is_deterministic_and_seed_dependent(size):
    specs = _scenes(1, 2) + _portraits(4, 2)
    for s in specs:
        a = render.render(s, 7, size)
        assert isinstance(a, Image.Image) and a.mode == "RGB" and a.size == (size, size)
        assert a.tobytes() == render.render(s, 7, size).tobytes()
        assert a.tobytes() != render.render(s, 8, size).tobytes()
    scene = _scenes(1, 3)[2]
    assert layout(scene, 1, size) == layout(scene, 1, size)
    assert layout(scene, 1, size) != layout(scene, 2, size)


def test_render_batch_matches_single_renders():
    specs = _scenes(1, 4)[:3] + _portraits(2, 4)
    batch = render_batch(specs, [1, 2, 3, 4, 5], 64)
    assert batch.shape == (5, 64, 64, 3) and batch.dtype == np.uint8
    for i, s in enumerate(specs):
        assert np.array_equal(batch[i], render_array(s, i + 1, 64))
    with pytest.raises(ValueError):
        render_batch(specs, [1], 64)


@pytest.mark.parametrize("size", [32, 64])
def test_layouts_keep_objects_apart_inside_and_in_relation(size):
    for s in _scenes(25, 5):
        lay = layout(s, 11, size)
        boxes = [o.box for o in lay.objects]
        assert len(boxes) == s.count
        for x0, y0, x1, y1 in boxes:
            assert 0.0 < x0 < x1 < 1.0 and 0.0 < y0 < y1 < 1.0
            assert (x1 - x0) * size >= 8  # readable
        for a, b in itertools.combinations(boxes, 2):
            gap = max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])
            assert gap * size >= 3, (s, boxes)
        if s.task == "position":
            assert relative_position(boxes[0], boxes[1]) == {s.relation}


def test_explicit_boxes_are_respected():
    scene = ObjectScene(
        "position",
        (WorldObject("square", "red", (0.1, 0.4, 0.35, 0.65)), WorldObject("circle", "blue", (0.6, 0.35, 0.9, 0.65))),
        "left of",
    )
    r = read_image(render.render(scene, 0, 64))
    sq = detect.find_objects(r, "square", "red")[0]
    assert np.allclose(np.array(sq.bbox) / 64, scene.objects[0].box, atol=0.04)
    assert relation_holds(r, "square", "circle", "left of")


# ---------------------------------------------------------------------------------------------
# detector
# ---------------------------------------------------------------------------------------------


def test_detector_reads_object_scenes_exactly():
    specs = _scenes(40, 10)  # 240 scenes, 40 per task
    acc, wrong = _accuracy(specs, 64)
    assert acc >= 0.99, wrong[:3]


def test_detector_reads_portraits_exactly():
    specs = _portraits(240, 11)
    acc, wrong = _accuracy(specs, 64)
    assert acc >= 0.99, wrong[:3]
    # every occupation x presentation cell at least once, skin tone read back too
    rng = np.random.default_rng(12)
    for occ, pres in itertools.product(OCCUPATIONS, PRESENTATIONS):
        p = sample_portrait(rng, occ, pres)
        r = read_image(render.render(p, 3, 64))
        assert (r.kind, r.status, r.occupation, r.presentation) == ("portrait", "ok", occ, pres)
        assert r.person_found and r.skin_tone == p.skin_tone


def test_detector_tolerates_noise_and_blur():
    acc_o, wrong_o = _accuracy(_scenes(40, 20), 64, corrupt_seed=0)
    acc_p, wrong_p = _accuracy(_portraits(240, 21), 64, corrupt_seed=1)
    assert acc_o >= 0.95, wrong_o[:3]
    assert acc_p >= 0.95, wrong_p[:3]


def test_detector_reads_32px_images():
    acc_o, wrong_o = _accuracy(_scenes(20, 30), 32)
    acc_p, wrong_p = _accuracy(_portraits(120, 31), 32)
    assert acc_o >= 0.95, wrong_o[:3]
    assert acc_p >= 0.95, wrong_p[:3]


def test_counts_and_relations():
    rng = np.random.default_rng(40)
    for n in (1, 2, 3, 4):
        s = ObjectScene("counting", tuple(WorldObject("star", "green") for _ in range(n)))
        r = read_image(render.render(s, n, 64))
        assert count_objects(r, "star", "green") == n
        assert count_objects(r, shape="star") == count_objects(r) == n
        assert count_objects(r, "circle") == count_objects(r, color="red") == 0
    for rel in RELATIONS:
        for k in range(5):
            a, b = (WorldObject(sh, c) for sh, c in zip(rng.choice(SHAPES, 2, replace=False), rng.choice(COLORS, 2)))
            s = ObjectScene("position", (a, b), rel)
            r = read_image(render.render(s, k, 64))
            assert relation_holds(r, a, b, rel)
            assert relation_holds(r, (a.shape, None), b.shape, rel)
            assert not relation_holds(r, a, b, OPPOSITE[rel])
            assert relation_holds(r, b, a, OPPOSITE[rel])
            assert not relation_holds(r, a, WorldObject("cross" if b.shape != "cross" else "circle", b.color), rel)


def test_relative_position_follows_geneval():
    assert relative_position((0, 0, 10, 10), (20, 0, 30, 10)) == {"left of"}
    assert relative_position((0, 30, 10, 40), (0, 0, 10, 10)) == {"below"}
    assert relative_position((0, 0, 10, 10), (20, 20, 30, 30)) == {"left of", "above"}
    assert relative_position((0, 0, 10, 10), (1, 1, 11, 11)) == set()


def test_reading_accepts_pil_arrays_and_other_sizes():
    p = Portrait("firefighter", "feminine", 4)
    img = render.render(p, 5, 64)
    expected = read_image(img)
    assert expected.occupation == "firefighter" and expected.presentation == "feminine"
    arr = np.asarray(img)
    for variant in (arr, arr.astype(np.float32) / 255.0, np.moveaxis(arr, -1, 0), np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])):
        r = read_image(variant)
        assert (r.kind, r.occupation, r.presentation) == ("portrait", "firefighter", "feminine")
    big = read_image(img.resize((256, 256), Image.BICUBIC))
    assert (big.occupation, big.presentation, big.size) == ("firefighter", "feminine", (256, 256))
    scene = ObjectScene("counting", tuple(WorldObject("triangle", "yellow") for _ in range(3)))
    r = read_image(render.render(scene, 1, 64).resize((128, 128), Image.BICUBIC))
    assert count_objects(r, "triangle", "yellow") == 3
    assert all(0 <= v <= 128 for o in r.objects for v in o.bbox)


def test_garbage_input_gets_a_status_not_an_exception():
    rng = np.random.default_rng(50)
    cases = {
        "noise": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "noise32": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "blank": np.full((64, 64, 3), BACKGROUND, np.uint8),
        "black": np.zeros((64, 64, 3), np.uint8),
        "white": Image.new("RGB", (32, 32), "white"),
        "gray2d": np.full((48, 48), 90, np.uint8),
        "float": np.full((64, 64, 3), 0.3, np.float32),
        "tiny": np.zeros((2, 3, 3), np.uint8),
        "gradient": np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3)),
    }
    for name, img in cases.items():
        r = read_image(img)
        assert r.kind in ("objects", "portrait", "unknown"), name
        assert r.status in detect.STATUSES, (name, r.status)
        assert not r.person_found, name
        assert r.kind == "unknown", (name, r.to_dict())
        json.dumps(r.to_dict())
    assert read_image(cases["blank"]).status == "empty"
    assert read_image(cases["noise"]).status == "unreadable"
    with pytest.raises(ValueError):
        read_image(np.zeros((16, 16, 7), np.uint8))


def test_undetermined_presentation_and_missing_person():
    p = Portrait("teacher", "ambiguous", 1)
    img = render_array(p, 2, 64).copy()
    r = read_image(img)
    cx, cy, rx = r.scores["head"]
    ry = 1.18 * rx
    # paint long hair AND a beard: contradictory cues -> undetermined, occupation still read
    hair = np.array(spec.HAIR_COLOR, np.uint8)
    y0, y1 = int(cy + 0.3 * ry), int(cy + ry)
    img[y0:y1, int(cx - rx - 4) : int(cx - rx)] = hair
    img[y0:y1, int(cx + rx) + 1 : int(cx + rx) + 5] = hair
    img[int(cy + 0.4 * ry) : int(cy + 0.95 * ry), int(cx - 0.4 * rx) : int(cx + 0.4 * rx) + 1] = hair
    r2 = read_image(img)
    assert r2.kind == "portrait" and r2.occupation == "teacher"
    assert r2.presentation is None and r2.status == "presentation_undetermined"
    # an object scene has no person
    r3 = read_image(render.render(_scenes(1, 60)[0], 0, 64))
    assert r3.kind == "objects" and not r3.person_found and r3.occupation is None
