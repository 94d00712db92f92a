"""Italian: "una foto di" + noun phrases, article by sound, colour agreement (see it.yaml's note)."""

from __future__ import annotations

from neobabel.eval.i18n import compose

import re

# "uno" before s + consonant, z, gn, ps, pn, x, y ("uno zaino", "uno spazzolino").
_S_IMPURA = re.compile(r"^(s[^aeiou]|z|gn|ps|pn|x|y)", flags=re.IGNORECASE)


def article(obj: dict, articles: dict) -> str:
    if "art" in obj:
        return obj["art"]
    if obj["g"] == "f":
        return articles["f_vowel"] if obj["sg"][0].lower() in "aeiou" else articles["f"]
    return articles["m_s_impura"] if _S_IMPURA.match(obj["sg"]) else articles["m"]


def render(spec: dict, lex: dict) -> str:
    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        art = article(obj, lex["articles"])
        phrase = f"{art}{obj['sg']}" if art.endswith("'") else f"{art} {obj['sg']}"
        if "color" in item:
            # "un paio di forbici rosse": the colour agrees with the plural noun, not with "paio".
            slot = obj.get("agree", obj["g"])
            phrase += " " + lex["colors"][item["color"]][lex["color_slots"].index(slot)]
        return phrase

    # position: "<B> a sinistra di <A>"
    body = compose(spec, lex, noun_phrase, "e")
    return lex["frame"].format(body)
