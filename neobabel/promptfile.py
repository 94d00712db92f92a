"""Reading prompt files: .txt (one a line), .csv and .jsonl (`prompt`, optional `lang`, `id`).

UTF-8 with or without a BOM, CRLF line ends, blank lines skipped. Anything malformed is an
InputError naming the file, the line and the fix; nothing is generated from a bad file.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from neobabel.errors import InputError
from neobabel.jsonl import jsonl_objects
from neobabel.languages import normalize_lang


@dataclass(frozen=True)
class PromptRow:
    id: str
    text: str
    lang: str | None  # None: use the command's --lang


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"prompts file {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"prompts file {path} is not UTF-8 (bad byte at line {line}); save it as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _lang(value, path: Path, line: int) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return normalize_lang(str(value))
    except InputError as e:
        raise InputError(f"{path}, line {line}: {e}") from None


def read_prompt_file(path: str | Path) -> list[PromptRow]:
    path = Path(path)
    text = _read_text(path)
    suffix = path.suffix.lower()
    rows: list[PromptRow] = []
    if suffix in (".txt", ""):
        for i, line in enumerate(text.split("\n"), 1):
            if line.strip():
                rows.append(PromptRow(f"p{len(rows):05d}", line.strip(), None))
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "prompt" not in fields:
            raise InputError(f"prompts file {path} has no 'prompt' column (columns: {', '.join(fields) or 'none'}); "
                             "add a header line such as: id,lang,prompt")
        reader.fieldnames = fields
        for rec in reader:
            i = reader.line_num
            if None in rec:
                raise InputError(f"{path}, line {i}: more fields than the header has; quote prompts that contain commas")
            prompt = (rec.get("prompt") or "").strip()
            if not prompt:
                if any((v or "").strip() for v in rec.values()):
                    raise InputError(f"{path}, line {i}: empty prompt; fill it in or delete the line")
                continue
            rows.append(PromptRow((rec.get("id") or "").strip() or f"p{len(rows):05d}", prompt,
                                  _lang(rec.get("lang"), path, i)))
    elif suffix == ".jsonl":
        example = '{"prompt": "a photo of a cat"}'
        for i, rec in jsonl_objects(text, lambda i: f"{path}, line {i}", f"one per line, e.g. {example}"):
            if not isinstance(rec.get("prompt"), str) or not rec["prompt"].strip():
                raise InputError(f'{path}, line {i}: needs a non-empty "prompt" string, e.g. {{"prompt": "a photo of a cat"}}')
            rid = rec.get("id")
            rid = str(rid).strip() if rid is not None else ""
            rows.append(PromptRow(rid or f"p{len(rows):05d}", rec["prompt"].strip(),
                                  _lang(rec.get("lang"), path, i)))
    else:
        raise InputError(f"prompts file {path}: unknown type {suffix!r}; use .txt, .csv or .jsonl")
    if not rows:
        raise InputError(f"prompts file {path} has no prompts")
    dup = next((i for i, c in Counter(r.id for r in rows).items() if c > 1), None)
    if dup is not None:
        raise InputError(f"prompts file {path}: id {dup!r} is used more than once; ids must be unique")
    return rows
