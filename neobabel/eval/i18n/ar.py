"""Arabic: "صورة لـ" + genitive indefinite noun phrases, colour and numeral agreement by gender,
the dual for two and reversed-gender numerals for three and four (see ar.yaml's note)."""

from __future__ import annotations

_GENDER_INDEX = {"m": 0, "f": 1}


def _with(form: str, modifier: str) -> str:
    # "{}" marks where a modifier goes inside a form (نبتة{} في أصيص); else it follows the noun.
    if "{}" in form:
        return form.format(f" {modifier}" if modifier else "")
    return f"{form} {modifier}" if modifier else form


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]
    numbers = lex["numbers"]

    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        colour = lex["colors"][item["color"]][_GENDER_INDEX[obj["g"]]] if "color" in item else ""
        return _with(obj["sg"], colour)

    def counted(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        gender = _GENDER_INDEX[obj["g"]]
        if item["count"] == 2:
            # dual noun + numeral of the same gender: ساعتين اثنتين, كلبين اثنين
            return _with(obj["du"], numbers[2][gender])
        # 3-10 take the opposite gender of the singular: ثلاث ساعات, ثلاثة كلاب
        numeral = numbers[item["count"]][gender]
        return f"{numeral} {_with(obj['pl'], '')}"

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        body = f"{noun_phrase(inc[0])} و{noun_phrase(inc[1])}"
    elif tag == "counting":
        body = counted(inc[0])
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<B> على يمين <A>".
        placed = inc[1]
        body = f"{noun_phrase(placed)} {lex['relations'][placed['position'][0]]} {noun_phrase(inc[0])}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
