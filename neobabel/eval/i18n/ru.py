"""Russian: "фотография" + genitive noun phrases, instrumental after над/под (see ru.yaml's note)."""

from __future__ import annotations


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict, case: str) -> str:
        obj = lex["objects"][item["class"]]
        if "color" not in item:
            return obj[case]
        if case != "gen":
            # GenEval puts colours only in the colors/color_attr tags, which are all genitive.
            raise ValueError(f"no {case} colour forms in the Russian lexicon: {item}")
        color = lex["colors"][item["color"]][lex["color_slots"].index(obj["g"])]
        return f"{color} {obj['gen']}"

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0], "gen")
    elif tag in ("two_object", "color_attr"):
        body = f"{noun_phrase(inc[0], 'gen')} и {noun_phrase(inc[1], 'gen')}"
    elif tag == "counting":
        # Genitive numeral (двух/трёх/четырёх) + genitive plural noun: "фотография двух собак".
        item = inc[0]
        body = f"{lex['numbers'][item['count']][0]} {lex['objects'][item['class']]['gen_pl']}"
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<B> слева от <A>", "<B> над <A-ins>".
        relation = lex["relations"][inc[1]["position"][0]]
        body = f"{noun_phrase(inc[1], 'gen')} {relation['prep']} {noun_phrase(inc[0], relation['case'])}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
