"""Dutch: "een foto van" + noun phrases; colour -e with de-words only (see nl.yaml's note)."""

from __future__ import annotations


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        words = [lex["article"]]
        if "color" in item:
            # After "een": "een rode fiets" (de-word) but "een rood paard" (het-word).
            words.append(lex["colors"][item["color"]][lex["color_slots"].index(obj["g"])])
        words.append(obj["sg"])
        return " ".join(words)

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        body = f"{noun_phrase(inc[0])} en {noun_phrase(inc[1])}"
    elif tag == "counting":
        item = inc[0]
        body = f"{lex['numbers'][item['count']][0]} {lex['objects'][item['class']]['pl']}"
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<B> links van <A>".
        body = f"{noun_phrase(inc[1])} {lex['relations'][inc[1]['position'][0]]} {noun_phrase(inc[0])}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
