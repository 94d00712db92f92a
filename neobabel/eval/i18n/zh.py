"""Chinese: numeral + measure word + (colour) + noun, framed "…的照片" (see zh.yaml's note)."""

from __future__ import annotations


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict, count: int = 1) -> str:
        # A Chinese noun is counted through its measure word: 一张长椅, 两辆汽车, 三只猫.
        obj = lex["objects"][item["class"]]
        numeral = lex["one"] if count == 1 else lex["numbers"][count][0]
        colour = lex["colors"][item["color"]][0] if "color" in item else ""
        if colour and len(obj["n"]) == 1:
            # a one-character noun takes 的 after the colour: 一只黑色的猫, not 一只黑色猫
            colour += "的"
        return f"{numeral}{obj['mw']}{colour}{obj['n']}"

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        body = f"{noun_phrase(inc[0])}和{noun_phrase(inc[1])}"
    elif tag == "counting":
        body = noun_phrase(inc[0], inc[0]["count"])
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<B>在<A>右边".
        body = f"{noun_phrase(inc[1])}在{noun_phrase(inc[0])}{lex['relations'][inc[1]['position'][0]]}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
