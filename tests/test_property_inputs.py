"""Property: any bytes given as a prompt file or config file either load or fail with InputError.

InputError is what the CLIs turn into exit 2 with one line; any other exception would be a
traceback-shaped "failed" (exit 1) for what is only a bad file. The strategies mix raw bytes
with text built from the characters and words these formats care about, so hypothesis reaches
the parsers' deeper branches (headers, quotes, JSON objects, YAML anchors, typed fields).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neobabel.errors import InputError

# No example database: the runs stay independent of earlier ones and write nothing into the checkout.
SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

PROMPT_WORDS = ["prompt", "lang", "id", "de", "German", "xx", "zh", "a photo", "null", "true", "1e999",
                "\ufeff", "\u202e", "é", "中文", "\x00", "\\u0000", "NaN"]
PROMPT_PUNCT = list(',"{}[]:\n\r\t \\') + ['\r\n', '""', '{"prompt": ', '"lang": ']

YAML_WORDS = ["name", "model", "oracle", "prompts", "set", "occupations", "langs", "formulations",
              "subjects", "world", "all", "n", "seed", "seeds", "shared", "steps", "guidance", "size",
              "scheduler", "batch_size", "classifiers", "deepface", "world", "options", "alias",
              "face_policy", "reject", "max_tries", "n_boot", "backbone", "mode", "tower", "family",
              "lr", "device", "cpu", ".inf", ".nan", "-1", "0", "7", "1e400", "99999999999999999999999",
              "64x64", "2020-01-01", "null", "~", "yes", "&a", "*a", "!!binary", "!!python/object",
              "!!set", "? ", "---", "...", "%YAML 1.1", "é", "中文", "\x00", "\ufeff"]
YAML_PUNCT = list(":-[]{},\n \t'\"#|>") + ["\n  ", ": ", "- "]


def _text_from(words: list[str], punct: list[str]) -> st.SearchStrategy[bytes]:
    pieces = st.lists(st.sampled_from(words) | st.sampled_from(punct) | st.text(max_size=3), max_size=40)
    encodings = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16"])
    return st.tuples(pieces, encodings).map(lambda t: "".join(t[0]).encode(t[1], errors="replace"))


# Values of the kinds YAML and JSON can carry, small and nested.
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["all", "world", "oracle", "de", "German", "xx", "64x64", "pilot", "direct",
                              "deepface", "world", "reject", "shared", "ddim", "pndm"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _csv_table() -> st.SearchStrategy[bytes]:
    """A header naming some of id/lang/prompt (and strangers), then rows of awkward fields."""
    names = st.lists(st.sampled_from(["id", "lang", "Prompt ", "extra", ""]), max_size=3)
    header = st.tuples(names, st.integers(0, 3)).map(lambda t: t[0][:t[1]] + ["prompt"] + t[0][t[1]:]) | names
    field = st.sampled_from(["", "a cat", "de", "xx", "p1", '"a, b"', '"unclosed', "中文"]) | st.text(max_size=6)
    rows = st.lists(st.lists(field, max_size=5), max_size=6)
    return st.tuples(header, rows).map(
        lambda t: "\n".join([",".join(t[0]), *(",".join(r) for r in t[1])]).encode("utf-8", "surrogatepass"))


def _jsonl_lines() -> st.SearchStrategy[bytes]:
    """Lines that are mostly JSON objects with prompt/lang/id of any type, some not JSON at all."""
    import json

    prompt = st.fixed_dictionaries({"prompt": st.text(max_size=10) | VALUES})
    record = st.tuples(prompt, st.dictionaries(st.sampled_from(["lang", "id", "other"]), VALUES, max_size=3)) \
        .map(lambda t: {**t[0], **t[1]}) | st.dictionaries(st.sampled_from(["prompt", "lang"]), VALUES)
    line = record.map(lambda r: json.dumps(r, ensure_ascii=False)) | VALUES.map(json.dumps) \
        | st.text(max_size=20)
    return st.lists(line, max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass"))


def _yaml_documents() -> st.SearchStrategy[bytes]:
    """Mappings over the config fields the loaders know (and a few they do not), any values."""
    import yaml

    keys = st.sampled_from([w for w in YAML_WORDS if w.isidentifier()] + ["images", "lr"])
    doc = st.dictionaries(keys, VALUES, max_size=6) | VALUES
    return doc.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode("utf-8", "surrogatepass"))


_ANY_PROMPT_BYTES = st.binary(max_size=300) | _text_from(PROMPT_WORDS, PROMPT_PUNCT)
PROMPT_BYTES = {  # per file type: mostly well-formed-looking content of that type, some anything
    ".txt": _ANY_PROMPT_BYTES,
    "": _ANY_PROMPT_BYTES,
    ".csv": st.one_of(_csv_table(), _csv_table(), _ANY_PROMPT_BYTES),
    ".jsonl": st.one_of(_jsonl_lines(), _jsonl_lines(), _ANY_PROMPT_BYTES),
}
YAML_BYTES = st.binary(max_size=300) | _text_from(YAML_WORDS, YAML_PUNCT) | _yaml_documents()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("property-inputs")


def _loads_or_input_error(load, path: Path) -> None:
    try:
        load(path)
    except InputError as e:
        message = str(e)
        assert message.strip() and "\n" not in message, repr(message)  # one line, exit 2


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl", ""])
def test_prompt_files_load_or_fail_with_input_error(scratch, suffix):
    from neobabel.promptfile import read_prompt_file

    path = scratch / f"prompts{suffix}"

    @SETTINGS
    @given(data=PROMPT_BYTES[suffix])
    def check(data: bytes):
        path.write_bytes(data)
        try:
            rows = read_prompt_file(path)
        except InputError as e:
            assert str(e).strip() and "\n" not in str(e), repr(str(e))
            return
        assert rows and all(r.text.strip() for r in rows)  # what loads is usable
        assert len({r.id for r in rows}) == len(rows)

    check()


def _audit(path):
    from magbig.audit import load_audit_config

    return load_audit_config(path)


def _model_preset(path):
    from neobabel.registry import load_preset_file

    return load_preset_file(path)


def _training_config(path):
    from neobabel.world.train import load_config

    return load_config(path)


def _yaml_mapping(path):
    from neobabel.configfile import read_yaml_mapping

    return read_yaml_mapping(path, "config")


@pytest.mark.parametrize("load", [_yaml_mapping, _audit, _model_preset, _training_config],
                         ids=["yaml mapping", "audit config", "model preset", "training config"])
def test_config_files_load_or_fail_with_input_error(scratch, load):
    path = scratch / f"{load.__name__.strip('_')}.yaml"

    @SETTINGS
    @given(data=YAML_BYTES)
    def check(data: bytes):
        path.write_bytes(data)
        _loads_or_input_error(load, path)

    check()


@pytest.mark.parametrize("text", [
    "a: &a [*a]\n",                       # a list that contains itself
    "n: 1e400\n",                          # a float that is infinite
    "? [a, b]\n: c\n",                      # an unhashable key
    "1: 2\n",                              # a key that is not a name
    "size: 99999999999999999999999x1\n",   # an integer beyond any machine word
])
def test_yaml_edge_cases_load_or_fail_with_input_error(scratch, text):
    path = scratch / "edge.yaml"
    path.write_text(text, encoding="utf-8")
    _loads_or_input_error(_audit, path)
