"""The `magbig` command line: prompt sets and audit statistics.

Same exit-code contract as `neobabel` (2 bad input, 1 runtime failure, 130 interrupted).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from neobabel.cli import run_cli
from neobabel.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="MAGBIG-style gender-bias audits of text-to-image models.")


@app.command()
def prompts(
    source: Annotated[str, typer.Option("--source", help="builtin, hub, hf:OWNER/NAME[@REV] or a folder")] = "builtin",
    lang: Annotated[Optional[str], typer.Option("--lang", help="comma-separated codes or names, or all")] = None,
    formulation: Annotated[Optional[str], typer.Option("--formulation", help="direct, indirect, feminine, gender_star")] = None,
    subject: Annotated[Optional[str], typer.Option("--subject", help="comma-separated occupations/traits")] = None,
    prompt_set: Annotated[Optional[str], typer.Option("--set", help="occupations or traits")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    validate: Annotated[bool, typer.Option("--validate", help="list known artifacts instead of prompts")] = False,
):
    """Print a prompt set (built-in, the official MAGBIG release, or a folder)."""
    from magbig.prompts import artifacts_frame, load_prompts
    from magbig.prompts import validate as validate_set

    if fmt not in ("csv", "jsonl"):
        raise InputError(f"--format {fmt!r} is not supported; use csv or jsonl")
    ps = load_prompts(source).select(langs=lang, formulations=formulation, subjects=subject, set=prompt_set)
    frame = artifacts_frame(validate_set(ps)) if validate else ps.to_frame()
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    else:
        for row in frame.iter_rows(named=True):
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


@app.command()
def stats(
    labels: Annotated[Path, typer.Argument(help="labels table (.csv or .parquet)")],
    n_boot: Annotated[int, typer.Option("--n-boot", help="bootstrap replicates")] = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
):
    """Audit statistics from a labels table made anywhere (per-image labels or counts).

    Columns: subject, lang, formulation, and either label (+ optional status) per image or
    n_female and n_male per prompt. Prints JSON: one object per (lang, formulation) group.
    """
    from magbig.stats import read_labels_table, summarize_labels_table

    if n_boot < 100:
        raise InputError(f"--n-boot {n_boot} is too few for stable intervals; use at least 100")
    groups = summarize_labels_table(read_labels_table(labels), n_boot=n_boot, seed=seed)
    print(json.dumps(groups, indent=1, ensure_ascii=False))


def main() -> None:
    run_cli(app, "magbig")


if __name__ == "__main__":
    main()
