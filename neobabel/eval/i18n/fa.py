"""Persian: یک + noun (+ ezafe + colour), numeral + singular noun for counts, framed
"عکسی از …" (see fa.yaml's note)."""

from __future__ import annotations


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        if "color" in item:
            # noun in its written ezafe form, then the colour: یک گربه‌ی سفید
            return f"{lex['one']} {obj.get('ez', obj['n'])} {lex['colors'][item['color']][0]}"
        return f"{lex['one']} {obj['n']}"

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        body = f"{noun_phrase(inc[0])} و {noun_phrase(inc[1])}"
    elif tag == "counting":
        item = inc[0]
        obj = lex["objects"][item["class"]]
        # numerals take the singular: سه گربه
        body = f"{lex['numbers'][item['count']][0]} {obj.get('counted', obj['n'])}"
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<B> در سمت راست <A>".
        placed = inc[1]
        body = f"{noun_phrase(placed)} {lex['relations'][placed['position'][0]]} {noun_phrase(inc[0])}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
