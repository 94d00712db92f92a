"""Dutch: "een foto van" + noun phrases; colour -e with de-words only (see nl.yaml's note)."""

from __future__ import annotations

from neobabel.eval.i18n import compose


def render(spec: dict, lex: dict) -> str:
    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        words = [lex["article"]]
        if "color" in item:
            # After "een": "een rode fiets" (de-word) but "een rood paard" (het-word).
            words.append(lex["colors"][item["color"]][lex["color_slots"].index(obj["g"])])
        words.append(obj["sg"])
        return " ".join(words)

    # position: "<B> links van <A>"
    body = compose(spec, lex, noun_phrase, "en")
    return lex["frame"].format(body)
