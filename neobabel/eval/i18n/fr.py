"""French: "une photo de" + noun phrases, colour after the noun with agreement (see fr.yaml's note)."""

from __future__ import annotations

from neobabel.eval.i18n import compose

import re

# "de" + vowel → "d'" ("une photo d'un banc", but "de deux horloges"). In these prompts "de" only
# precedes an article, a numeral or a fixed noun complement, so no h-word needs deciding.
_ELIDABLE_DE = re.compile(r"\bde (?=[aeiouyàâéèêëîïôûù])", flags=re.IGNORECASE)


def elide(text: str) -> str:
    return _ELIDABLE_DE.sub("d'", text)


def render(spec: dict, lex: dict) -> str:
    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        phrase = f"{lex['articles'][obj['g']]} {obj['sg']}"
        if "color" in item:
            # Agreement with the noun the adjective qualifies: "paire de ciseaux" agrees as m.pl.
            slot = obj.get("agree", obj["g"])
            phrase += " " + lex["colors"][item["color"]][lex["color_slots"].index(slot)]
        return phrase

    # position: "<B> à gauche de <A>"
    body = compose(spec, lex, noun_phrase, "et de")
    return elide(lex["frame"].format(body))
