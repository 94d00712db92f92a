"""English: GenEval's own grammar (create_prompts.py), so the rendered set equals GenEval's file."""

from __future__ import annotations

from neobabel.eval.i18n import compose


def _article(word: str) -> str:
    # GenEval's rule: "an" before a vowel letter, else "a".
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def render(spec: dict, lex: dict) -> str:
    def noun_phrase(item: dict) -> str:
        name = lex["objects"][item["class"]]["sg"]
        if "color" in item:
            return f"{_article(lex['colors'][item['color']][0])} {name}"
        return _article(name)

    # position: "a photo of <B> <rel> <A>"
    return lex["frame"].format(compose(spec, lex, noun_phrase, "and"))
