"""JSON Lines input: one object per line, blank lines skipped, one-line errors naming the line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from neobabel.errors import InputError


def jsonl_objects(text: str, where: Callable[[int], str], fix: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) per non-blank line of ``text``; a line that is not a JSON object is
    an InputError ``"<where(line)>: not a JSON object (<parser message>); <fix>"``.

    Lines split on "\\n" only: JSON strings may hold U+2028 and other characters that
    ``str.splitlines`` would break a line at (a trailing "\\r" is JSON whitespace).
    """
    for no, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{where(no)}: not a JSON object ({e.msg}); {fix}") from None
        if not isinstance(obj, dict):
            raise InputError(f"{where(no)}: not a JSON object; {fix}")
        yield no, obj
