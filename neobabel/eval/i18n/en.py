"""English: GenEval's own grammar (create_prompts.py), so the rendered set equals GenEval's file."""

from __future__ import annotations


def _article(word: str) -> str:
    # GenEval's rule: "an" before a vowel letter, else "a".
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]
    frame = lex["frame"]
    num = lex["numbers"]
    rel = lex["relations"]

    def obj(i: dict) -> str:
        name = lex["objects"][i["class"]]["sg"]
        if "color" in i:
            return f"{_article(lex['colors'][i['color']][0])} {name}"
        return _article(name)

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        return frame.format(obj(inc[0]))
    if tag in ("two_object", "color_attr"):
        return frame.format(f"{obj(inc[0])} and {obj(inc[1])}")
    if tag == "counting":
        i = inc[0]
        return frame.format(f"{num[i['count']][0]} {lex['objects'][i['class']]['pl']}")
    if tag == "position":
        # include[1] is placed relative to include[0]: "a photo of <B> <rel> <A>"
        return frame.format(f"{obj(inc[1])} {rel[inc[1]['position'][0]]} {obj(inc[0])}")
    raise ValueError(f"unknown GenEval tag {tag!r}")
