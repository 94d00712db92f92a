"""Spanish: "una foto de" + noun phrases, colour after the noun with agreement (see es.yaml's note)."""

from __future__ import annotations

from neobabel.eval.i18n import compose


def render(spec: dict, lex: dict) -> str:
    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        # g is the agreement class: m/f, or mpl/fpl for plural-only nouns ("unas tijeras rojas").
        phrase = f"{lex['articles'][obj['g']]} {obj['sg']}"
        if "color" in item:
            phrase += " " + lex["colors"][item["color"]][lex["color_slots"].index(obj["g"])]
        return phrase

    # position: "<B> a la izquierda de <A>"
    # "y" never needs to become "e": the next word is always an article.
    body = compose(spec, lex, noun_phrase, "y")
    return lex["frame"].format(body)
