"""Hindi: oblique noun phrases before postpositions, colour agreement by gender, framed
"… की तस्वीर" (see hi.yaml's note)."""

from __future__ import annotations

_GENDER_INDEX = {"m": 0, "f": 1}


def _with(form: str, modifier: str) -> str:
    # "{}" marks where the article/numeral and colour go inside a form; else they lead it.
    return form.format(f"{modifier} ") if "{}" in form else f"{modifier} {form}"


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict) -> str:
        obj = lex["objects"][item["class"]]
        words = [lex["one"]]
        if "pair" in obj:
            # measure word between article and colour, as with shoes: एक जोड़ी लाल स्की
            words.append(obj["pair"])
        if "color" in item:
            forms = lex["colors"][item["color"]]
            # inflecting colours start [masculine oblique, feminine]; invariable ones one form
            inflects = item["color"] in lex["inflecting_colors"]
            words.append(forms[_GENDER_INDEX[obj["g"]]] if inflects else forms[0])
        return _with(obj["sg"], " ".join(words))

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        body = f"{noun_phrase(inc[0])} और {noun_phrase(inc[1])}"
    elif tag == "counting":
        item = inc[0]
        obj = lex["objects"][item["class"]]
        numeral = lex["numbers"][item["count"]][0]
        body = _with(obj["pl"], f"{numeral} {obj['pair']}" if "pair" in obj else numeral)
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<A> के दाईं ओर <B>" (B at A's right).
        placed = inc[1]
        body = f"{noun_phrase(inc[0])} {lex['relations'][placed['position'][0]]} {noun_phrase(placed)}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
