"""French: "une photo de" + noun phrases, colour after the noun with agreement (see fr.yaml's note)."""

from __future__ import annotations

import re

# "de" + vowel → "d'" ("une photo d'un banc", but "de deux horloges"). In these prompts "de" only
# precedes an article, a numeral or a fixed noun complement, so no h-word needs deciding.
_ELIDABLE_DE = re.compile(r"\bde (?=[aeiouyàâéèêëîïôûù])", flags=re.IGNORECASE)


def elide(text: str) -> str:
    return _ELIDABLE_DE.sub("d'", text)


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        phrase = f"{lex['articles'][obj['g']]} {obj['sg']}"
        if "color" in item:
            # Agreement with the noun the adjective qualifies: "paire de ciseaux" agrees as m.pl.
            slot = obj.get("agree", obj["g"])
            phrase += " " + lex["colors"][item["color"]][lex["color_slots"].index(slot)]
        return phrase

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        body = f"{noun_phrase(inc[0])} et de {noun_phrase(inc[1])}"
    elif tag == "counting":
        item = inc[0]
        body = f"{lex['numbers'][item['count']][0]} {lex['objects'][item['class']]['pl']}"
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<B> à gauche de <A>".
        body = f"{noun_phrase(inc[1])} {lex['relations'][inc[1]['position'][0]]} {noun_phrase(inc[0])}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return elide(lex["frame"].format(body))
