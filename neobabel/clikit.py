"""What the `neobabel` and `magbig` command lines share: the app's top-level options (--version,
-v/-q), help texts used by several commands, the console, and `run_cli`, the exit-code contract.

A library module, so magbig's CLI imports neobabel's library and never neobabel's CLI.

Exit codes: 0 success, 2 bad input (one line naming the bad value and the fix, or click's usage
line for a malformed command line), 1 runtime failure, 130 interrupted.
"""

# No `from __future__ import annotations`: the top-level callback below is built per program,
# and typer must see its Annotated options as objects, not as strings to evaluate later.

import json
import os
import signal
import sys
from importlib import import_module
from typing import Annotated, Literal

import typer
from rich.console import Console

from neobabel._logging import configure_cli_logging
from neobabel.builtins import default_model, world_weights_path
from neobabel.errors import InputError
from neobabel.modelfolder import PIPELINE_CONFIG

console = Console(soft_wrap=True)  # never break a printed path across lines

# -- help texts several commands share (one home each) -------------------------------------------

# Scale-out options, the same words on every command that has them (neobabel generate,
# magbig audit/classify, magbig batch run).
EngineName = Literal["local", "ray"]  # neobabel.engines.ENGINES (not imported here: it pulls polars)
ENGINE_HELP = "local: this process; ray: a pool of Ray actors (the [ray] extra)"
ADDRESS_HELP = "Ray cluster to join (auto: the running one; default: start a local Ray)"
WORKERS_HELP = "Ray actors, one model each (default: the cluster's GPUs, else CPUs)"

NO_LIMITS_HELP = ("lift the upper bounds (images per prompt, total images, size, steps, batch size) "
                  "for a deliberately huge run")
ALLOW_PICKLE_HELP = ("also load pickled .bin weights (with torch.load(weights_only=True)) where a folder "
                     "has no .safetensors; only for files you trust (recorded in run.json)")
FAST_BATCHING_HELP = ("default kernels instead of the batch-invariant op set: 1.05-1.16x faster on CPU, "
                      "most at batch size 1 (benchmarks/RESULTS.md §8); images may then differ in the last "
                      "bits with batch size and order (recorded in run.json)")
# --device takes any torch device name (cuda:1 too), so it is checked by preflight, not a fixed list.
DEVICE_METAVAR = "[cpu|cuda|cuda:N|mps|auto]"


def _world_defaults() -> dict:
    """The embedded world model's sampling defaults (its babel_pipeline.json), {} when not shipped."""
    try:
        cfg = json.loads((world_weights_path() / PIPELINE_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    d = cfg.get("defaults", {})
    if "width" in d and "height" in d:
        d["size"] = f"{d['width']}x{d['height']}"
    return d


WORLD_DEFAULTS = _world_defaults()


def model_default(field: str) -> str:
    """Help text for a sampling option the model decides: "default: the model's own (world: 20)"."""
    value = WORLD_DEFAULTS.get(field)
    return "default: the model's own" + (f" (world: {value})" if value is not None else "")


def model_help(what: str = "preset name or model folder") -> str:
    return f"{what} (default: {default_model()})"


# -- the app and its top-level options --------------------------------------------------------------

def new_app(help_text: str, **kwargs) -> typer.Typer:
    """A Typer app with the projects' conventions: plain click help (flags show no `<bool>`)."""
    return typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                       rich_markup_mode=None, help=help_text, **kwargs)


def version_option(package: str):
    """A `--version` option for a Typer app's callback: prints `PROG VERSION` and exits 0."""

    def show(value: bool) -> None:
        if value:
            print(f"{package} {import_module(package).__version__}")
            raise typer.Exit(0)

    return typer.Option("--version", callback=show, is_eager=True, help="print the version and exit")


def add_top_level_options(app: typer.Typer, package: str) -> None:
    """--version, and -v/-q (repeatable) setting the log level of the library's loggers."""

    @app.callback()
    def top_level(
        version: Annotated[bool, version_option(package)] = False,
        verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, show_default=False,
                                             help="more log output: -v info, -vv debug")] = 0,
        quiet: Annotated[int, typer.Option("--quiet", "-q", count=True, show_default=False,
                                           help="less log output: errors only")] = 0,
    ) -> None:
        configure_cli_logging(verbose - quiet)


# -- running an app with the exit-code contract -----------------------------------------------------

def _show_usage_error(e: Exception, prog: str) -> None:
    if type(e).__name__ == "NoArgsIsHelpError" and not str(e).strip():
        return  # the help has already been printed; its message is empty
    show = getattr(e, "show", None)
    if callable(show):
        show()
    else:
        print(f"{prog}: error: {e}", file=sys.stderr)


def _bad_choice_line(e: Exception) -> str | None:
    """A bad value of a choice option as one line naming the value and the choices, else None."""
    param = getattr(e, "param", None)
    choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
    if not choices or not hasattr(e, "format_message"):
        return None
    # typer validates choices through pydantic, whose message starts "Value error, ".
    return e.format_message().replace("Value error, ", "")


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def run_cli(typer_app: typer.Typer, prog: str) -> None:
    """Run a Typer app with the project's exit-code contract (shared by both CLIs)."""
    # Library chatter (e.g. "CLIPImageProcessor requires torchvision") is not for CLI users.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rv = typer_app(standalone_mode=False, prog_name=prog)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:  # click's form of Ctrl-C
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as e:
        # Usage errors (unknown option, missing argument, bare command): the usage line and the
        # message, exit 2; a bad choice: one line, like every other bad value.
        line = _bad_choice_line(e)
        if line is not None:
            print(f"{prog}: error: {line}", file=sys.stderr)
        else:
            _show_usage_error(e, prog)
        sys.exit(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except InputError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # runtime failure: one line unless debugging
        if os.environ.get("NEOBABEL_DEBUG"):
            raise
        print(f"{prog}: failed: {type(e).__name__}: {e} (set NEOBABEL_DEBUG=1 for a traceback)",
              file=sys.stderr)
        sys.exit(1)
    if rv == 130:  # typer (standalone_mode=False) turns Ctrl-C into a return value of 130
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
    sys.exit(rv if isinstance(rv, int) else 0)
