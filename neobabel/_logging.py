"""Library logging: quiet by default, rich output only where a CLI asks for it.

Library modules log through ``logging.getLogger(__name__)``; nothing here prints. The
``neobabel`` and ``magbig`` root loggers carry a NullHandler, so a program that imports the
library and configures no logging sees nothing (Python's last-resort handler would otherwise
print warnings to stderr). The CLIs call :func:`configure_cli_logging` with their -v/-q count.

Also here: muting the chatty Hugging Face libraries while weights load. The one progress
display is :mod:`neobabel.progress`.
"""

from __future__ import annotations

import contextlib
import logging
import sys

LIBRARY_LOGGERS = ("neobabel", "magbig")
# Marks the handler configure_cli_logging installs, so calling it again replaces it.
_CLI_HANDLER_FLAG = "_neobabel_cli_handler"


def _install_null_handlers() -> None:
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


_install_null_handlers()


def cli_log_level(verbosity: int) -> int:
    """-q (negative): errors only; default (0): warnings; -v: info; -vv and more: debug."""
    if verbosity < 0:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)


def configure_cli_logging(verbosity: int = 0) -> None:
    """Send the library loggers to stderr through rich, at the level -v/-q ask for.

    Idempotent: a second call replaces the handler the first installed (tests and
    in-process CLI runs call it repeatedly)."""
    level = cli_log_level(verbosity)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if getattr(h, _CLI_HANDLER_FLAG, False)]:
            logger.removeHandler(h)
        handler = _cli_handler()
        setattr(handler, _CLI_HANDLER_FLAG, True)
        logger.addHandler(handler)
        logger.setLevel(level)


class _PlainFormatter(logging.Formatter):
    """``warning: message`` on one line, like the CLIs' ``error:`` lines (grep-able in logs)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _cli_handler() -> logging.Handler:
    """rich on a terminal; plain one-line records in a log file or pipe (rich would wrap them)."""
    if sys.stderr.isatty():
        from rich.console import Console  # deferred: rich loads only in CLI processes
        from rich.logging import RichHandler  # deferred: rich loads only in CLI processes

        return RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PlainFormatter())
    return handler


# -- Hugging Face libraries -------------------------------------------------------------------

@contextlib.contextmanager
def _muted(hf_logging):
    """Errors only and no progress bars in one HF library's logging module, restored after."""
    old, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def muted_transformers():
    """transformers' load reports, warnings and progress bars off (errors still raise)."""
    from transformers.utils import logging as hf_logging  # heavy: transformers, only as a model loads

    with _muted(hf_logging):
        yield


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' and diffusers' load reports and progress bars while loading
    weights (errors still raise)."""
    from diffusers.utils import logging as diffusers_logging  # heavy: diffusers, only as a model loads

    with muted_transformers(), _muted(diffusers_logging):
        yield

