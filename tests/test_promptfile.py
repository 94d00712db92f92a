"""neobabel.promptfile: .txt / .csv / .jsonl prompt files and every way they can be wrong."""

from __future__ import annotations

import json

import pytest

from neobabel.errors import InputError
from neobabel.promptfile import PromptRow, read_prompt_file

BOM = "\ufeff"


def write(tmp_path, name: str, text: str | bytes, newline: str = "\n"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return p


def texts(rows):
    return [r.text for r in rows]


def error(path) -> str:
    with pytest.raises(InputError) as e:
        read_prompt_file(path)
    msg = str(e.value)
    assert str(path) in msg, msg  # every message names the file
    assert "\n" not in msg
    return msg


# -- .txt ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bom", ["", BOM])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_txt(tmp_path, bom, newline):
    p = write(tmp_path, "p.txt", bom + "a photo of a cat\n\n   \n  ein Foto  \nएक डॉक्टर\n\n", newline)
    rows = read_prompt_file(p)
    assert texts(rows) == ["a photo of a cat", "ein Foto", "एक डॉक्टर"]
    assert [r.lang for r in rows] == [None, None, None]
    assert len({r.id for r in rows}) == 3
    assert not rows[0].text.startswith(BOM)


def test_txt_ids_are_stable_and_ordered(tmp_path):
    a = read_prompt_file(write(tmp_path, "a.txt", "x\ny\nz\n"))
    b = read_prompt_file(write(tmp_path, "b.txt", "\nx\n\ny\nz"))
    assert [r.id for r in a] == [r.id for r in b] == sorted(r.id for r in a)


def test_suffix_is_case_insensitive(tmp_path):
    assert texts(read_prompt_file(write(tmp_path, "P.TXT", "hello\n"))) == ["hello"]


# -- .csv ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bom", ["", BOM])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_with_lang_and_id(tmp_path, bom, newline):
    p = write(tmp_path, "p.csv", bom + 'id,lang,prompt\n'
              'doc-de,German,"ein Foto, mit Komma"\n'
              'doc-hi,hi,एक डॉक्टर\n'
              ',,"a ""quoted"" cat"\n'
              'doc-zh,zh-CN,一张医生的脸部照片\n', newline)
    rows = read_prompt_file(p)
    assert rows[0] == PromptRow("doc-de", "ein Foto, mit Komma", "de")
    assert rows[1] == PromptRow("doc-hi", "एक डॉक्टर", "hi")
    assert rows[2].text == 'a "quoted" cat' and rows[2].lang is None and rows[2].id
    assert rows[3] == PromptRow("doc-zh", "一张医生的脸部照片", "zh")


def test_csv_prompt_only_and_header_case(tmp_path):
    rows = read_prompt_file(write(tmp_path, "p.csv", " Prompt , LANG \nhello,fr\n\nworld,\n"))
    assert texts(rows) == ["hello", "world"]
    assert [r.lang for r in rows] == ["fr", None]


def test_csv_no_prompt_column(tmp_path):
    msg = error(write(tmp_path, "p.csv", "id,text\n1,hello\n"))
    assert "prompt" in msg and "text" in msg


def test_csv_unquoted_comma(tmp_path):
    msg = error(write(tmp_path, "p.csv", "id,prompt\na,fine\nb,a cat, a dog\n"))
    assert "line 3" in msg and "quote" in msg


def test_csv_unknown_lang_line(tmp_path):
    msg = error(write(tmp_path, "p.csv", "prompt,lang\nhello,de\nbonjour,fr\nhola,xx\n"))
    assert "line 4" in msg and "'xx'" in msg


def test_csv_line_numbers_count_blank_lines(tmp_path):
    msg = error(write(tmp_path, "p.csv", "prompt,lang\nhello,de\n\nhola,xx\n"))
    assert "line 4" in msg


def test_csv_empty_prompt_with_other_fields(tmp_path):
    msg = error(write(tmp_path, "p.csv", "id,prompt\na,hello\nb,\n"))
    assert "line 3" in msg and "empty prompt" in msg


def test_csv_duplicate_ids(tmp_path):
    msg = error(write(tmp_path, "p.csv", "id,prompt\nx,one\ny,two\nx,three\n"))
    assert "'x'" in msg


# -- .jsonl --------------------------------------------------------------------------------

@pytest.mark.parametrize("bom", ["", BOM])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_jsonl(tmp_path, bom, newline):
    lines = [json.dumps({"id": "a", "prompt": "صورة لوجه طبيب", "lang": "Arabic"}, ensure_ascii=False),
             "", json.dumps({"prompt": "  a cat  "}), json.dumps({"id": 7, "prompt": "x", "lang": None})]
    rows = read_prompt_file(write(tmp_path, "p.jsonl", bom + "\n".join(lines) + "\n", newline))
    assert rows[0] == PromptRow("a", "صورة لوجه طبيب", "ar")
    assert rows[1].text == "a cat" and rows[1].lang is None
    assert rows[2] == PromptRow("7", "x", None)


def test_jsonl_numeric_id_zero_is_kept(tmp_path):
    lines = [json.dumps({"id": i, "prompt": f"p{i}"}) for i in range(3)]
    rows = read_prompt_file(write(tmp_path, "p.jsonl", "\n".join(lines)))
    assert [r.id for r in rows] == ["0", "1", "2"]


def test_jsonl_bad_json_line(tmp_path):
    msg = error(write(tmp_path, "p.jsonl", '{"prompt": "ok"}\n\n{"prompt": "missing quote}\n'))
    assert "line 3" in msg and "JSON" in msg


@pytest.mark.parametrize("bad", ['["a list"]', '{"text": "no prompt key"}', '{"prompt": "   "}', '{"prompt": 5}'])
def test_jsonl_record_without_prompt(tmp_path, bad):
    msg = error(write(tmp_path, "p.jsonl", '{"prompt": "ok"}\n' + bad + "\n"))
    assert "line 2" in msg and "prompt" in msg


def test_jsonl_unknown_lang_line(tmp_path):
    msg = error(write(tmp_path, "p.jsonl", '{"prompt": "a"}\n{"prompt": "b", "lang": "Klingon"}\n'))
    assert "line 2" in msg and "Klingon" in msg and "de" in msg


def test_jsonl_duplicate_ids(tmp_path):
    msg = error(write(tmp_path, "p.jsonl", '{"id": "q", "prompt": "a"}\n{"id": "q", "prompt": "b"}\n'))
    assert "'q'" in msg


# -- any type ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["p.txt", "p.csv", "p.jsonl"])
def test_not_utf8(tmp_path, name):
    header = b"prompt\n" if name.endswith(".csv") else b""
    body = b'{"prompt": "ok"}\n{"prompt": "\xc4rztin"}\n' if name.endswith(".jsonl") else b"ok\n\xc4rztin\n"
    msg = error(write(tmp_path, name, header + body))
    assert "UTF-8" in msg
    assert f"line {2 + bool(header)}" in msg


@pytest.mark.parametrize("name,text", [("p.txt", ""), ("p.txt", "\n  \n\r\n"), ("p.csv", "prompt\n"),
                                       ("p.jsonl", "\n\n"), ("p.txt", BOM)])
def test_empty_file(tmp_path, name, text):
    assert "no prompts" in error(write(tmp_path, name, text))


@pytest.mark.parametrize("name", ["p.tsv", "p.json", "p.parquet"])
def test_unknown_suffix(tmp_path, name):
    msg = error(write(tmp_path, name, "prompt\nhello\n"))
    assert ".txt" in msg and ".csv" in msg and ".jsonl" in msg


def test_missing_file(tmp_path):
    assert "does not exist" in error(tmp_path / "nope.txt")
