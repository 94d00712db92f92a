"""`--help` conventions of both CLIs, and -v/-q on their apps.

Every command's help shows a usage example, the real defaults of options the model decides,
the choices of choice options, and no `<bool>` type on flags.
"""

from __future__ import annotations

import logging

import pytest
import typer
from typer.testing import CliRunner

from magbig import cli as magbig_cli
from neobabel import cli as neobabel_cli

APPS = {"neobabel": neobabel_cli.app, "magbig": magbig_cli.app}


def _command_paths(group, prefix=()) -> list[tuple[str, ...]]:
    """Every leaf command of a click group, as its path of names (e.g. ("world", "train"))."""
    paths = []
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            paths += _command_paths(cmd, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


ALL_COMMANDS = [(prog, path) for prog, app in APPS.items()
                for path in _command_paths(typer.main.get_command(app))]


def _help(prog: str, *path: str) -> str:
    res = CliRunner().invoke(APPS[prog], [*path, "--help"], prog_name=prog, terminal_width=250)
    assert res.exit_code == 0, res.output
    return res.output


def test_every_command_is_listed():
    names = {" ".join(p) for prog, p in ALL_COMMANDS}
    assert {"generate", "world train", "world eval", "audit", "classify", "selftest"} <= names


@pytest.mark.parametrize("prog, path", ALL_COMMANDS, ids=lambda x: x if isinstance(x, str) else "-".join(x))
def test_help_has_an_example_and_no_bool_type(prog, path):
    text = _help(prog, *path)
    examples = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("Example: ")]
    assert len(examples) == 1, text
    assert examples[0].startswith(f"Example: {prog} {' '.join(path)}"), examples
    assert "<bool>" not in text


@pytest.mark.parametrize("prog", list(APPS))
def test_top_level_help_shows_verbosity_and_no_bool(prog):
    text = _help(prog)
    assert "-v, --verbose" in text and "-q, --quiet" in text and "--version" in text
    assert "<bool>" not in text


def test_generate_help_shows_the_model_defaults_and_the_choices():
    text = " ".join(_help("neobabel", "generate").split())  # one line: no wrapping surprises
    assert "--steps <int> sampling steps; default: the model's own (world: 20)" in text
    assert "default: the model's own (world: 4.0)" in text
    assert "default: the model's own (world: 32x32)" in text
    assert "--scheduler <ddim|dpm++|euler|euler_a|pndm|ddpm|unipc>" in text
    assert "default: the model's own (world: ddim)" in text
    assert "--attention <sdpa|xformers>" in text
    assert "--device [cpu|cuda|cuda:N|mps|auto]" in text
    assert "(default: world)" in text or "(default: tiny-random)" in text


@pytest.mark.parametrize("args, choice", [
    (["generate", "a cat", "--scheduler", "bogus"], "'ddim'"),
    (["generate", "a cat", "--attention", "flash"], "'xformers'"),
])
def test_a_bad_choice_is_a_usage_error_listing_the_choices(args, choice, cli):
    code, _, err = cli(*args)
    assert code == 2
    assert "is not one of" in err and choice in err and "failed" not in err


# -- -v / -q ------------------------------------------------------------------------------------

@pytest.fixture
def restore_library_logging():
    """configure_cli_logging sets the library loggers' level and handler: put them back after."""
    saved = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers))
             for name in ("neobabel", "magbig")}
    yield
    for name, (level, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers


def _log_from_models_command(monkeypatch):
    """`neobabel models` with a library call that logs one info and one warning line."""
    real = neobabel_cli.list_presets

    def logging_list_presets():
        log = logging.getLogger("neobabel.registry")
        log.info("an-info-line")
        log.warning("a-warning-line")
        return real()

    monkeypatch.setattr(neobabel_cli, "list_presets", logging_list_presets)


@pytest.mark.usefixtures("restore_library_logging")
def test_verbose_shows_info_and_quiet_hides_warnings(cli, monkeypatch):
    _log_from_models_command(monkeypatch)
    code, _, err = cli("models", "--json")
    assert code == 0 and "a-warning-line" in err and "an-info-line" not in err  # default: warnings
    code, _, err = cli("-v", "models", "--json")
    assert code == 0 and "an-info-line" in err and "a-warning-line" in err
    code, _, err = cli("-q", "models", "--json")
    assert code == 0 and "a-warning-line" not in err and "an-info-line" not in err


@pytest.mark.usefixtures("restore_library_logging")
def test_magbig_takes_verbosity_too(mb_main, monkeypatch):
    code, out, err = mb_main("-q", "prompts", "--lang", "de", "--subject", "pilot")
    assert code == 0 and "pilot" in out
    assert logging.getLogger("magbig").level == logging.ERROR
    code, _, _ = mb_main("-vv", "prompts", "--lang", "de", "--subject", "pilot")
    assert code == 0 and logging.getLogger("neobabel").level == logging.DEBUG


@pytest.fixture
def mb_main(monkeypatch, capsys):
    from conftest import run_in_process

    return run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)


def test_magbig_imports_the_neobabel_library_never_its_cli():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(magbig_cli.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert "neobabel.cli" not in imported and "neobabel.clikit" in imported
