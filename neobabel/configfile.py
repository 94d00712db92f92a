"""Reading YAML config files into typed specs, with one-line errors naming the bad value.

The shipped configs (model presets, audits, world recipes) are package data: the checkout's
top-level ``configs/`` folder is linked into the package as ``neobabel/configs`` and installed
with it, so ``--config configs/audits/quick.yaml`` and ``--config quick`` work from any
directory, also from a wheel (:func:`resolve_config`). A file that exists at the given path
always wins: users keep their own configs wherever they like.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from neobabel.errors import InputError


def shipped_configs() -> Path:
    """The ``configs`` folder installed with the package."""
    return Path(str(resources.files("neobabel") / "configs"))


def shipped_names(kind: str) -> list[str]:
    folder = shipped_configs() / kind
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_config(value: str | Path, kind: str) -> Path:
    """A config file: ``value`` itself if it exists, else the shipped one it names.

    A shipped config is named by its path in the checkout (``configs/audits/quick.yaml``) or
    by its bare name (``quick`` for an audit). Anything else is an InputError naming the
    shipped configs of that kind.
    """
    path = Path(value)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if not path.is_absolute() and path.parts[:1] == ("configs",) and (shipped.joinpath(*path.parts[1:])).is_file():
        return shipped.joinpath(*path.parts[1:])
    if len(path.parts) == 1 and not path.suffix and (shipped / kind / f"{value}.yaml").is_file():
        return shipped / kind / f"{value}.yaml"
    names = ", ".join(shipped_names(kind)) or "none"
    raise InputError(f"config {str(value)!r} not found: no such file, and no shipped {kind} config of that "
                     f"name (shipped: {names}); pass the path of a YAML file")


def parse_yaml(text: str, where: str, loader=yaml.SafeLoader, fix: str = "fix the syntax"):
    """YAML text to data, or one InputError line naming `where`, the line and the problem."""
    try:
        return yaml.load(text, loader)  # noqa: S506 (callers pass safe loaders only)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"{where} is not valid YAML{line} ({problem}); {fix}") from None


def listed_mappings(value: Any, key: str) -> Any:
    """YAML shorthand: ``x`` or ``[x, {...}]`` for ``[{key: x}, {...}]`` (anything else unchanged,
    for the typed spec to refuse)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [{key: v} if isinstance(v, str) else v for v in value]
    return value


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """A YAML file's top-level mapping, or InputError (missing, not UTF-8, bad YAML, not a mapping)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not UTF-8 text; save it as UTF-8 YAML") from None
    data = parse_yaml(text, f"{what} {path}")
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
