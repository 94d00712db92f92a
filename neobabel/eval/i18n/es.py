"""Spanish: "una foto de" + noun phrases, colour after the noun with agreement (see es.yaml's note)."""

from __future__ import annotations


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        # g is the agreement class: m/f, or mpl/fpl for plural-only nouns ("unas tijeras rojas").
        phrase = f"{lex['articles'][obj['g']]} {obj['sg']}"
        if "color" in item:
            phrase += " " + lex["colors"][item["color"]][lex["color_slots"].index(obj["g"])]
        return phrase

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        # "y" never needs to become "e": the next word is always an article.
        body = f"{noun_phrase(inc[0])} y {noun_phrase(inc[1])}"
    elif tag == "counting":
        item = inc[0]
        body = f"{lex['numbers'][item['count']][0]} {lex['objects'][item['class']]['pl']}"
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<B> a la izquierda de <A>".
        body = f"{noun_phrase(inc[1])} {lex['relations'][inc[1]['position'][0]]} {noun_phrase(inc[0])}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
