"""Reading YAML config files into typed specs, with one-line errors naming the bad value."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from neobabel.errors import InputError


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """A YAML file's top-level mapping, or InputError (missing, not UTF-8, bad YAML, not a mapping)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not UTF-8 text; save it as UTF-8 YAML") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"{what} {path} is not valid YAML{where} ({problem}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} must be a YAML mapping of fields, not a {type(data).__name__}")
    return data


def validation_message(e: ValidationError, model: type[BaseModel]) -> str:
    """The first validation error as 'field = value: problem' (or the unknown field and the allowed ones)."""
    errors = e.errors()
    first = errors[0]
    loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        allowed = f" (allowed: {', '.join(model.model_fields)})" if len(first["loc"]) == 1 else ""
        msg = f"unknown field {first['loc'][-1]!r}{allowed}"
    elif "input" in first and not isinstance(first["input"], dict):
        msg = f"{loc} = {first['input']!r}: {first['msg']}"
    else:
        msg = f"{loc}: {first['msg']}"
    others = len({tuple(err["loc"][:1]) for err in errors}) - 1
    return msg + (f" (and {others} more field(s))" if others > 0 else "")


def validate_spec(data: dict, model: type[BaseModel], where: str):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InputError(f"{where}: {validation_message(e, model)}; fix the config") from None
