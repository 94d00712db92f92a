"""German: "ein Foto von" + dative noun phrases (see de.yaml's note for the grammar choices)."""

from __future__ import annotations

from neobabel.eval.i18n import compose


def render(spec: dict, lex: dict) -> str:
    def noun_phrase(item: dict) -> str:
        # "von" governs the dative: einem/einer + weak adjective ending -en + dative noun.
        obj = lex["objects"][item["class"]]
        words = [lex["articles"][obj["g"]]]
        if "color" in item:
            words.append(lex["colors"][item["color"]][0])
        words.append(obj["sg"])
        return " ".join(words)

    # position: "<B> links von <A>"
    body = compose(spec, lex, noun_phrase, "und")
    return lex["frame"].format(body)
