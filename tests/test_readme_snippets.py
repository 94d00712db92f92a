"""The README's snippets work: its Python blocks run (on offline models), every `neobabel ...` /
`magbig ...` line of its shell blocks names a command and options that exist, and the cheap
commands run for real.

A Python block that needs weights which cannot exist offline says so in a comment containing
SKIP_MARKER; only those are skipped.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from magbig import cli as magbig_cli
from neobabel import cli as neobabel_cli

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP_MARKER = "needs real weights"
APPS = {"neobabel": neobabel_cli.app, "magbig": magbig_cli.app}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# Commands cheap enough to run for real here: no model, no run directory, nothing written.
CHEAP = {("neobabel", "languages"), ("neobabel", "models"), ("magbig", "prompts")}


def _blocks(*kinds: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(README.read_text(encoding="utf-8"))
            if m.group(1) in kinds]


def _python_blocks() -> list:
    return [pytest.param(code, id=f"python-{i}",
                         marks=[pytest.mark.skip(reason="needs real weights")] if SKIP_MARKER in code else [])
            for i, (_, code) in enumerate(_blocks("python"))]


def _command_lines() -> list[tuple[list[str], str | None]]:
    """(argv, the output line the README shows after it or None) for each CLI line of a shell block."""
    found = []
    for kind, code in _blocks("bash", "console"):
        lines = code.splitlines()
        for i, line in enumerate(lines):
            if kind == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            line = line.split(" | ")[0].strip()  # the command before any pipe
            if not line.startswith(("neobabel ", "magbig ")):
                continue
            shown = lines[i + 1] if kind == "console" and i + 1 < len(lines) else None
            found.append((shlex.split(line, comments=True), shown))
    return found


COMMAND_LINES = _command_lines()


def _resolve(argv: list[str]):
    """(the click command argv names, its own arguments)."""
    prog, *rest = argv
    cmd = typer.main.get_command(APPS[prog])
    while hasattr(cmd, "commands") and rest and rest[0] in cmd.commands:
        cmd, rest = cmd.commands[rest[0]], rest[1:]
    assert not hasattr(cmd, "commands"), f"{' '.join(argv)}: names no command"
    return cmd, rest


def test_the_readme_has_snippets_of_every_kind():
    assert len(_python_blocks()) >= 2 and len(COMMAND_LINES) >= 20
    assert {argv[0] for argv, _ in COMMAND_LINES} == {"neobabel", "magbig"}


@pytest.mark.parametrize("code", _python_blocks())
def test_python_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a block may write files (save_pretrained("my-model"))
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("argv, shown", COMMAND_LINES, ids=[" ".join(a[:3]) for a, _ in COMMAND_LINES])
def test_command_line_names_a_command_and_its_options(argv, shown):
    cmd, rest = _resolve(argv)
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for token in rest:
        if token.startswith("-") and token != "-":
            assert token.split("=")[0] in known, f"{' '.join(argv)}: no option {token} (known: {sorted(known)})"


CHEAP_LINES = [(argv, shown) for argv, shown in COMMAND_LINES
               if tuple(argv[:2]) in CHEAP and "--source" not in argv]


@pytest.mark.parametrize("argv, shown", CHEAP_LINES, ids=[" ".join(a) for a, _ in CHEAP_LINES])
def test_cheap_command_runs(argv, shown):
    res = CliRunner().invoke(APPS[argv[0]], argv[1:], prog_name=argv[0], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert res.output.strip()


def test_shown_bad_input_error_is_what_the_cli_prints(cli):
    [(argv, shown)] = [(a, s) for a, s in COMMAND_LINES if s and "--lang" in a and "xx" in a]
    code, _, err = cli(*argv[1:])
    assert code == 2 and err.strip() == shown
