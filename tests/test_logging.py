"""neobabel._logging: the library is quiet unless a CLI asks; -v/-q pick the level."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neobabel._logging import cli_log_level, quiet_transformers

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    """A fresh interpreter: pytest's own log capture would hide what a user's program sees."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)


def test_library_loggers_are_quiet_by_default():
    out = _python(
        "import logging, neobabel, magbig\n"
        "logging.getLogger('neobabel.registry').warning('library-neobabel')\n"
        "logging.getLogger('magbig.audit').warning('library-magbig')\n"
        "logging.getLogger('someone.else').warning('not-ours')\n"
    )
    assert "library-neobabel" not in out.stderr and "library-magbig" not in out.stderr
    assert "not-ours" in out.stderr  # Python's last-resort handler: what we would print without ours


def test_cli_logging_shows_warnings_and_obeys_verbosity():
    out = _python(
        "import logging\n"
        "from neobabel._logging import configure_cli_logging\n"
        "log = logging.getLogger('neobabel.pipeline')\n"
        "configure_cli_logging(0)\n"
        "configure_cli_logging(0)\n"  # twice: still one handler, one line per record
        "log.info('hidden-info'); log.warning('shown-warning')\n"
        "configure_cli_logging(1); log.info('shown-info')\n"
        "configure_cli_logging(-1); log.warning('hidden-warning'); log.error('shown-error')\n"
    )
    err = out.stderr
    assert err.count("shown-warning") == 1 and "shown-info" in err and "shown-error" in err
    assert "hidden-info" not in err and "hidden-warning" not in err
    assert out.stdout == ""  # logs go to stderr: stdout stays for data (JSON, tables)


@pytest.mark.parametrize("verbosity,level", [(-2, logging.ERROR), (-1, logging.ERROR), (0, logging.WARNING),
                                             (1, logging.INFO), (2, logging.DEBUG), (5, logging.DEBUG)])
def test_verbosity_levels(verbosity, level):
    assert cli_log_level(verbosity) == level


def test_quiet_transformers_restores_what_it_found():
    from diffusers.utils import logging as d_logging
    from transformers.utils import logging as t_logging

    t_old, d_old = t_logging.get_verbosity(), d_logging.get_verbosity()
    t_logging.set_verbosity_info()
    t_logging.disable_progress_bar()  # a caller that turned bars off keeps them off
    try:
        with quiet_transformers():
            assert t_logging.get_verbosity() == d_logging.get_verbosity() == logging.ERROR
            assert not d_logging.is_progress_bar_enabled()
        assert t_logging.get_verbosity() == logging.INFO and not t_logging.is_progress_bar_enabled()
        assert d_logging.get_verbosity() == d_old and d_logging.is_progress_bar_enabled()
    finally:
        t_logging.set_verbosity(t_old)
        t_logging.enable_progress_bar()
