"""Japanese: bare nouns, numeral + counter + の for counts, relative clauses for position,
framed "…の写真" (see ja.yaml's note)."""

from __future__ import annotations


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        colour = lex["colors"][item["color"]][0] if "color" in item else ""
        return f"{colour}{obj['n']}"

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        body = f"{noun_phrase(inc[0])}と{noun_phrase(inc[1])}"
    elif tag == "counting":
        item = inc[0]
        obj = lex["objects"][item["class"]]
        body = f"{lex['numbers'][item['count']][0]}{obj['ctr']}の{obj.get('counted', obj['n'])}"
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<A>の右にいる<B>" (B at A's right);
        # いる for living things, ある for objects.
        placed = inc[1]
        verb = "いる" if lex["objects"][placed["class"]].get("anim") else "ある"
        relation = lex["relations"][placed["position"][0]]
        body = f"{noun_phrase(inc[0])}の{relation}に{verb}{noun_phrase(placed)}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
