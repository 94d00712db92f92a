"""The world owns its portrait captions, never imports magbig; `neobabel world bias` writes --out.

The world's portrait captions are its own copy (the shipped bias table's `prompt` field) of
magbig's built-in prompts for its twelve occupations; these tests, which may import both
packages, keep the copy equal to the source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

import neobabel
from magbig.prompts import load_builtin
from neobabel.languages import LANGUAGE_CODES
from neobabel.world.bias import DEFAULT_PATH, build_table, direct_form_of, load_table
from neobabel.world.spec import OCCUPATIONS


def magbig_captions() -> dict[tuple[str, str, str], str]:
    ps = load_builtin().select(set="occupations", subjects=list(OCCUPATIONS))
    return {(p.subject, p.lang, p.formulation): p.text for p in ps}


def test_world_captions_are_the_builtin_magbig_prompts():
    # Built from magbig's set, the table is the shipped one: same cells, texts and shares.
    assert build_table(magbig_captions()).cells == load_table().cells


def test_world_direct_forms_are_the_builtin_ones():
    builtin = load_builtin().direct_forms
    assert {lang: direct_form_of(lang) for lang in LANGUAGE_CODES} == builtin


def magbig_imports(path: Path) -> list[str]:
    """`import magbig...` / `from magbig... import` anywhere in a file, function bodies included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        found += [f"{path.name}:{node.lineno} {n}" for n in names if n == "magbig" or n.startswith("magbig.")]
    return found


def test_neobabel_never_imports_magbig():
    files = sorted(Path(neobabel.__file__).parent.rglob("*.py"))
    assert len(files) > 10  # the scan reads the package, not an empty folder
    assert [hit for f in files for hit in magbig_imports(f)] == []


def test_world_bias_writes_to_out_and_leaves_the_shipped_table_alone(cli, tmp_path, monkeypatch):
    shipped = DEFAULT_PATH.read_bytes()
    code, out, err = cli("world", "bias", "--out", tmp_path / "new" / "table.yaml")
    assert code == 0, err
    written = yaml.safe_load((tmp_path / "new" / "table.yaml").read_text(encoding="utf-8"))
    assert written["cells"] == yaml.safe_load(shipped)["cells"] and "table.yaml" in out
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("world", "bias")
    assert code == 0 and (tmp_path / "bias.yaml").is_file(), err  # default: the current directory
    assert DEFAULT_PATH.read_bytes() == shipped
