"""Korean: noun + native numeral + counter for counts, 와/과 by final consonant, relative
clauses "<A> 오른쪽에 있는 <B>" for position, framed "… 사진" (see ko.yaml's note)."""

from __future__ import annotations

_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3


def has_final_consonant(word: str) -> bool:
    """Whether the last Hangul syllable ends in a consonant (batchim): 공 yes, 벤치 no."""
    code = ord(word[-1])
    return _HANGUL_FIRST <= code <= _HANGUL_LAST and (code - _HANGUL_FIRST) % 28 != 0


def _and(word: str) -> str:
    return "과" if has_final_consonant(word) else "와"


def render(spec: dict, lex: dict) -> str:
    inc = spec["include"]

    def noun_phrase(item: dict) -> str:
        noun = lex["objects"][item["class"]]["n"]
        return f"{lex['colors'][item['color']][0]} {noun}" if "color" in item else noun

    tag = spec["tag"]
    if tag in ("single_object", "colors"):
        body = noun_phrase(inc[0])
    elif tag in ("two_object", "color_attr"):
        first = noun_phrase(inc[0])
        body = f"{first}{_and(first)} {noun_phrase(inc[1])}"
    elif tag == "counting":
        item = inc[0]
        obj = lex["objects"][item["class"]]
        body = f"{obj['n']} {lex['numbers'][item['count']][0]} {obj['ctr']}"
    elif tag == "position":
        # include[1] is placed relative to include[0]: "<A> 오른쪽에 있는 <B>" (B at A's right).
        placed = inc[1]
        body = f"{noun_phrase(inc[0])} {lex['relations'][placed['position'][0]]} 있는 {noun_phrase(placed)}"
    else:
        raise ValueError(f"unknown GenEval tag {tag!r}")
    return lex["frame"].format(body)
