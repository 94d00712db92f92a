"""German: "ein Foto von" + dative noun phrases (see de.yaml's note for the grammar choices)."""

from __future__ import annotations


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict) -> str:
        # "von" governs the dative: einem/einer + weak adjective ending -en + dative noun.
        obj = lex["objects"][item["class"]]
        words = [lex["articles"][obj["g"]]]
        if "color" in item:
            words.append(lex["colors"][item["color"]][0])
        words.append(obj["sg"])
        return " ".join(words)

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        body = f"{noun_phrase(inc[0])} und {noun_phrase(inc[1])}"
    elif tag == "counting":
        item = inc[0]
        body = f"{lex['numbers'][item['count']][0]} {lex['objects'][item['class']]['pl']}"
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<B> links von <A>".
        body = f"{noun_phrase(inc[1])} {lex['relations'][inc[1]['position'][0]]} {noun_phrase(inc[0])}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
