"""A catalogue of bad inputs run against the real `neobabel` and `magbig` CLIs.

Each case runs in this process through the CLI's `main` (the same `run_cli` exit-code contract a
console script goes through), with stdout and stderr captured. The table lists the input, the
exit code and the message a user sees; a case whose exit code differs from the contract's (2 for
bad input) is flagged. Fixtures are built offline in a temporary folder: a tiny random
BabelPipeline and an oracle audit run (no diffusion), so nothing is downloaded.

Usage: python benchmarks/bad_inputs.py [--out benchmarks/results/bad_inputs.md]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    prog: str                     # "neobabel" or "magbig"
    what: str                     # the bad input, in words
    args: list[str]               # arguments; "{T}" is the scratch folder
    expected: int = 2             # the contract: 2 for bad input
    files: dict[str, bytes] = field(default_factory=dict)  # scratch files to write first (relative)
    read_only: str | None = None  # a scratch folder to make read-only first


@dataclass
class Outcome:
    case: Case
    code: int
    message: str
    seconds: float
    written: list[str]  # paths the command created under the scratch folder


# -- fixtures ----------------------------------------------------------------------------------

AUDIT_YAML = b"""\
name: bad-inputs
model: oracle
subjects: [pilot, hairdresser]
langs: [en, de]
formulations: [direct]
n: 4
classifiers: [{name: world}]
n_boot: 200
"""

CSV_OK = b"subject,lang,formulation,label\npilot,en,direct,female\npilot,en,direct,male\n"


def _env(scratch: Path) -> None:
    """Offline and quiet, with an empty Hugging Face cache and a scratch model cache."""
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       "TRANSFORMERS_VERBOSITY": "error", "OMP_NUM_THREADS": "1",
                       "HF_HOME": str(scratch / "empty-hf-home"),
                       "NEOBABEL_CACHE": str(scratch / "neobabel-cache")})
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "NEOBABEL_MODELS_DIR", "NEOBABEL_DEBUG"):
        os.environ.pop(key, None)


def _build_fixtures(scratch: Path) -> None:
    from neobabel.testing import build_tiny_babel

    build_tiny_babel(scratch / "model")
    (scratch / "audit.yaml").write_bytes(AUDIT_YAML)
    outcome = run_case(Case("magbig", "fixture: an oracle audit", ["audit", "--config", "{T}/audit.yaml", "--out",
                                                                  "{T}/run", "--no-progress"], expected=0), scratch)
    if outcome.code != 0:
        raise SystemExit(f"could not build the audit fixture: {outcome.message}")
    _corrupt_copies(scratch)


def _corrupt_copies(scratch: Path) -> None:
    """Copies of the audit run with one damaged file each."""
    import shutil

    damaged = {
        "run-bad-image": lambda run: _truncate(sorted((run / "images").glob("*.png"))[0]),
        "run-bad-labels": lambda run: (run / "labels.parquet").write_bytes(b"PAR1 not parquet"),
        "run-bad-runjson": lambda run: (run / "run.json").write_text("{not json", encoding="utf-8"),
        "run-bad-manifest": lambda run: (run / "generations.parquet").write_bytes(b"garbage"),
    }
    for name, damage in damaged.items():
        shutil.copytree(scratch / "run", scratch / name)
        damage(scratch / name)


def _truncate(png: Path) -> None:
    png.write_bytes(png.read_bytes()[:100])


# -- the catalogue -----------------------------------------------------------------------------

def catalogue() -> list[Case]:
    gen = ["generate", "a photo of a cat", "--model", "{T}/model", "--steps", "2", "--size", "64x64",
           "--out", "{T}/out", "--no-progress"]

    def g(what, *extra, **kw):  # generate with one thing wrong (later flags win over `gen`'s)
        return Case("neobabel", what, [*gen, *extra], **kw)

    def gp(what, name, content: bytes, *extra):  # generate from a prompts file
        return Case("neobabel", what, ["generate", "--prompts", f"{{T}}/{name}", "--model", "{T}/model",
                                       "--out", "{T}/out", "--no-progress", *extra], files={name: content})

    def audit(what, *extra, config: bytes | None = None, **kw):
        files = {"cfg.yaml": config} if config is not None else {}
        cfg = "{T}/cfg.yaml" if config is not None else "{T}/audit.yaml"
        return Case("magbig", what, ["audit", "--config", cfg, "--out", "{T}/audit-out", "--no-progress", *extra],
                    files=files, **kw)

    def stats(what, name, content: bytes, *extra):
        return Case("magbig", what, ["stats", f"{{T}}/{name}", *extra], files={name: content})

    return [
        # usage errors (click's usage line, exit 2)
        Case("neobabel", "bare command", []),
        Case("neobabel", "unknown top-level option", ["--nope"]),
        Case("neobabel", "unknown command", ["generat"]),
        Case("neobabel", "unknown option of generate", ["generate", "--nope", "a cat"]),
        Case("neobabel", "-n not a number", ["generate", "-n", "many", "a cat"]),
        Case("neobabel", "--steps not an integer", ["generate", "--steps", "2.5", "a cat"]),
        Case("neobabel", "option without its value", ["generate", "a cat", "--size"]),
        Case("magbig", "bare command", []),
        Case("magbig", "audit without --config", ["audit"]),
        Case("magbig", "stats without its table", ["stats"]),
        Case("magbig", "unknown command", ["audits"]),
        # generate: languages and prompts
        g("unknown language", "--lang", "xx"),
        g("misspelt language name", "--lang", "Germna"),
        Case("neobabel", "empty prompt", ["generate", "   ", "--model", "{T}/model", "--out", "{T}/out"]),
        Case("neobabel", "prompt and --prompts", ["generate", "a cat", "--prompts", "{T}/p.txt"],
             files={"p.txt": b"a dog\n"}),
        Case("neobabel", "neither prompt nor --prompts", ["generate", "--model", "{T}/model"]),
        Case("neobabel", "missing prompts file", ["generate", "--prompts", "{T}/none.txt"]),
        gp("prompts file of unknown type", "p.docx", b"a cat\n"),
        gp("prompts file not UTF-8", "p.txt", "une tête\n".encode("latin-1")),
        gp("prompts file empty", "p.txt", b"\n\n"),
        gp("jsonl line not JSON", "p.jsonl", b'{"prompt": "ok"}\n{"prompt": oops}\n'),
        gp("jsonl line without prompt", "p.jsonl", b'{"text": "a cat"}\n'),
        gp("jsonl prompt not a string", "p.jsonl", b'{"prompt": 42}\n'),
        gp("csv without prompt column", "p.csv", b"id,text\n1,a cat\n"),
        gp("csv row with more fields than the header", "p.csv", b"id,prompt\n1,a cat, sitting\n"),
        gp("csv row with unknown language", "p.csv", b"prompt,lang\na,de\nb,xx\n"),
        gp("csv with a duplicate id", "p.csv", b"id,prompt\nx,a cat\nx,a dog\n"),
        gp("too many images in all (101 prompts x 100,000)", "many.txt",
           b"".join(b"prompt %d\n" % i for i in range(101)), "-n", "100000"),
        # generate: numbers
        g("-n 0", "-n", "0"),
        g("-n 1,000,000,000", "-n", "1000000000"),
        g("size not a multiple of 8", "--size", "63x64"),
        g("size not WIDTHxHEIGHT", "--size", "big"),
        g("size 65536x65536", "--size", "65536x65536"),
        g("steps 0", "--steps", "0"),
        g("steps 5000", "--steps", "5000"),
        g("negative guidance", "--guidance", "-2"),
        g("guidance nan", "--guidance", "nan"),
        g("guidance inf", "--guidance", "inf"),
        g("unknown scheduler", "--scheduler", "bogus"),
        g("sampler that needs more steps", "--scheduler", "pndm", "--steps", "3"),
        g("batch size 0", "--batch-size", "0"),
        # generate: models and devices
        g("missing model folder", "--model", "{T}/no/such/model"),
        g("unknown preset", "--model", "nosuchpreset"),
        g("preset whose weights are not downloaded", "--model", "sdxl"),
        g("model folder that is empty", "--model", "{T}/empty-model", files={"empty-model/.keep": b""}),
        g("model folder with a corrupt config", "--model", "{T}/bad-model",
          files={"bad-model/babel_pipeline.json": b"{not json"}),
        g("xformers attention on CPU", "--attention", "xformers"),
        g("unknown device", "--device", "tpu"),
        audit("audit on an unknown device", "--device", "tpu"),
        g("--out is a file", "--out", "{T}/taken.txt", files={"taken.txt": b"mine"}),
        g("--out inside a file", "--out", "{T}/taken.txt/run", files={"taken.txt": b"mine"}),
        g("--out in a read-only folder", "--out", "{T}/ro/run", read_only="ro"),
        # world
        Case("neobabel", "world eval -n 0", ["world", "eval", "-n", "0", "--out", "{T}/ev"]),
        Case("neobabel", "world eval -n 200,000", ["world", "eval", "-n", "200000", "--out", "{T}/ev"]),
        Case("neobabel", "world eval unknown language", ["world", "eval", "--langs", "xx", "--out", "{T}/ev"]),
        Case("neobabel", "world train config missing", ["world", "train", "--config", "{T}/none.yaml"]),
        Case("neobabel", "world train config not YAML", ["world", "train", "--config", "{T}/t.yaml"],
             files={"t.yaml": b"steps: [1, 2\n"}),
        Case("neobabel", "world train config unknown field", ["world", "train", "--config", "{T}/t.yaml"],
             files={"t.yaml": b"stepz: 10\n"}),
        Case("neobabel", "world export without a training folder", ["world", "export", "--out", "{T}/none"]),
        # magbig audit
        Case("magbig", "audit config missing", ["audit", "--config", "{T}/none.yaml"]),
        audit("audit config not YAML", config=b"name: x\nn: [1, 2\n"),
        audit("audit config not a mapping", config=b"- a\n- b\n"),
        audit("audit config unknown field", config=b"name: x\nimages: 5\n"),
        audit("audit config not UTF-8", config="name: tête\n".encode("latin-1")),
        audit("audit config n: 0", config=b"model: oracle\nn: 0\n"),
        audit("audit config size 65536x65536", config=b"model: oracle\nsize: 65536x65536\n"),
        audit("audit config guidance .inf", config=b"model: oracle\nguidance: .inf\n"),
        audit("audit config unknown classifier", config=b"model: oracle\nclassifiers: [fairface]\n"),
        audit("audit --langs unknown", "--langs", "xx"),
        audit("audit --formulations unknown", "--formulations", "bogus"),
        audit("audit --subjects not in the prompt set", "--subjects", "astronaut"),
        audit("audit -n 200,000", "-n", "200000"),
        Case("magbig", "audit --out in a read-only folder", ["audit", "--config", "{T}/audit.yaml", "--out",
                                                            "{T}/ro/audit", "--no-progress"], read_only="ro"),
        # magbig on runs
        Case("magbig", "classify a missing run", ["classify", "{T}/none", "--classifier", "world"]),
        Case("magbig", "classify with an unknown classifier", ["classify", "{T}/run", "--classifier", "fairface"]),
        Case("magbig", "classify with an unknown option", ["classify", "{T}/run", "--classifier", "world",
                                                         "--option", "colour=red"]),
        Case("magbig", "classify option without =", ["classify", "{T}/run", "--classifier", "world",
                                                     "--option", "novalue"]),
        Case("magbig", "classify a run with a truncated image (labelled status error)",
             ["classify", "{T}/run-bad-image", "--classifier", "world", "--option", "alias=w2", "--no-progress"],
             expected=0),
        Case("magbig", "report on a missing run", ["report", "{T}/none"]),
        Case("magbig", "report on a folder that is not a run", ["report", "{T}/empty"], files={"empty/.keep": b""}),
        Case("magbig", "report --n-boot 10", ["report", "{T}/run", "--n-boot", "10"]),
        Case("magbig", "report for a classifier without labels", ["report", "{T}/run", "--classifier", "nosuch"]),
        Case("magbig", "report with a corrupt labels.parquet", ["report", "{T}/run-bad-labels"]),
        Case("magbig", "report with a corrupt run.json", ["report", "{T}/run-bad-runjson"]),
        Case("magbig", "report with a corrupt generations.parquet (the report reads only units and labels)",
             ["report", "{T}/run-bad-manifest"], expected=0),
        Case("magbig", "compare with a missing run", ["compare", "{T}/run", "{T}/none"]),
        Case("magbig", "align without the CLIP weights", ["align", "{T}/run", "--no-progress"]),
        Case("magbig", "planted --tolerance 1.5", ["planted", "{T}/run", "--tolerance", "1.5"]),
        Case("magbig", "planted --cells with a .txt name", ["planted", "{T}/run", "--cells", "{T}/cells.txt"]),
        # magbig stats
        Case("magbig", "stats on a missing file", ["stats", "{T}/none.csv"]),
        stats("stats on a .txt file", "labels.txt", CSV_OK),
        stats("stats on a table with zero rows", "labels.csv", b"subject,lang,formulation,label\n"),
        stats("stats on a table without lang", "labels.csv", b"subject,formulation,label\npilot,direct,female\n"),
        stats("stats with an unknown label", "labels.csv",
              b"subject,lang,formulation,label\npilot,en,direct,robot\n"),
        stats("stats with a negative count", "counts.csv",
              b"subject,lang,formulation,n_female,n_male\npilot,en,direct,-1,3\n"),
        stats("stats with a fractional count", "counts.csv",
              b"subject,lang,formulation,n_female,n_male\npilot,en,direct,1.5,3\n"),
        stats("stats on binary garbage", "labels.csv", bytes(range(256)) * 4),
        stats("stats --n-boot 5", "labels.csv", CSV_OK, "--n-boot", "5"),
        Case("magbig", "stats on a run's labels from several classifiers, no --classifier",
             ["stats", "{T}/run-bad-image/labels.parquet"]),
        # magbig prompts, selftest
        Case("magbig", "prompts --format xml", ["prompts", "--format", "xml"]),
        Case("magbig", "prompts --lang unknown", ["prompts", "--lang", "xx"]),
        Case("magbig", "prompts from a missing folder", ["prompts", "--source", "{T}/no-prompts"]),
        Case("magbig", "selftest --cells 0", ["selftest", "--cells", "0"]),
        Case("magbig", "selftest --n-boot 10", ["selftest", "--n-boot", "10"]),
    ]


# -- running one case --------------------------------------------------------------------------

def _prepare(case: Case, scratch: Path) -> None:
    for name, content in case.files.items():
        path = scratch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    if case.read_only:
        (scratch / case.read_only).mkdir(exist_ok=True)
        (scratch / case.read_only).chmod(0o555)


@contextlib.contextmanager
def _permission_bits_bind(folder: Path | None):
    """As root, chmod 555 does not stop writing; os.access then answers as for other users."""
    if folder is None or os.geteuid() != 0:
        yield
        return
    real = os.access

    def access(path, mode, *a, **k):
        if os.path.abspath(path) == str(folder) and mode & os.W_OK:
            return False
        return real(path, mode, *a, **k)

    os.access = access
    try:
        yield
    finally:
        os.access = real


def _message(stderr: str, stdout: str) -> str:
    """What a user reads first: the one error line (click's 'Error: ...' for usage errors)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("Error:", "neobabel: ", "magbig: "))]
    if errors:
        return errors[-1]
    if lines:
        return lines[-1]
    out = [ln.strip() for ln in stdout.splitlines() if ln.strip() and set(ln.strip()) - set("─╭╮╰╯│ ")]
    return f"(stdout) {out[0]}" if out else "(nothing)"


def run_case(case: Case, scratch: Path) -> Outcome:
    from magbig.cli import main as magbig_main
    from neobabel.cli import main as neobabel_main

    _prepare(case, scratch)
    before = _tree(scratch)
    args = [a.replace("{T}", str(scratch)) for a in case.args]
    main = neobabel_main if case.prog == "neobabel" else magbig_main
    out, err = io.StringIO(), io.StringIO()
    old_argv = sys.argv
    sys.argv = [case.prog, *args]
    t0 = time.perf_counter()
    read_only = scratch / case.read_only if case.read_only else None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _permission_bits_bind(read_only):
            main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old_argv
        if read_only is not None:
            read_only.chmod(0o755)
    message = _message(err.getvalue(), out.getvalue()).replace(str(scratch), "$TMP")
    written = sorted(str(p.relative_to(scratch)) for p in _tree(scratch) - before)
    return Outcome(case, code, message, time.perf_counter() - t0, written)


def _tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


# -- the report --------------------------------------------------------------------------------

def _cell(text: str, limit: int = 220) -> str:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("`", "'")


def markdown(outcomes: list[Outcome], seconds: float) -> str:
    as_expected = sum(o.code == o.case.expected for o in outcomes)
    refused = [o for o in outcomes if o.code == 2]
    clean = sum(not o.written for o in refused)
    codes = Counter(o.code for o in outcomes)
    lines = [
        "# Bad inputs against the real CLIs",
        "",
        "Generated by `python benchmarks/bad_inputs.py` (in-process through each CLI's `main`, fixtures",
        "built offline). The contract: bad input exits 2 with one line naming the value and the fix,",
        "before any model loads and before anything is written; runtime failures exit 1.",
        "",
        f"**{len(outcomes)} inputs; {as_expected} exit as the contract says** "
        f"(exit codes: {', '.join(f'{c}: {n}' for c, n in sorted(codes.items()))}); "
        f"{clean} of the {len(refused)} refused inputs wrote nothing. {seconds:.0f} s in all. "
        "`$TMP` is the scratch folder."
        + (" Running as root, the read-only folder is simulated (permission bits do not bind root)."
           if os.geteuid() == 0 else ""),
        "",
        "| # | bad input | command | exit | expected | wrote | message |",
        "|---|-----------|---------|-----:|---------:|-------|---------|",
    ]
    for i, o in enumerate(outcomes, 1):
        flag = "" if o.code == o.case.expected else " ⚠"
        wrote = "nothing" if not o.written else f"{len(o.written)} path(s), e.g. {o.written[0]}"
        command = _cell(' '.join(o.case.args).replace('{T}', '$TMP'), 200)
        lines.append(f"| {i} | {_cell(o.case.what)} | `{o.case.prog} {command}` | {o.code}{flag} | "
                     f"{o.case.expected} | {_cell(wrote, 60)} | {_cell(o.message)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bad_inputs.md")
    opts = parser.parse_args()
    sys.path.insert(0, str(REPO))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        scratch = Path(tmp)
        _env(scratch)
        _build_fixtures(scratch)
        outcomes = []
        for case in catalogue():
            outcome = run_case(case, scratch)
            outcomes.append(outcome)
            mark = "" if outcome.code == case.expected else "  <-- not as expected"
            mark += f"  (wrote {outcome.written})" if outcome.written and outcome.code == 2 else ""
            print(f"[{outcome.code}] {case.prog}: {case.what}: {outcome.message[:120]}{mark}", file=sys.__stderr__)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(markdown(outcomes, time.perf_counter() - t0), encoding="utf-8")
    print(f"wrote {opts.out} ({len(outcomes)} cases)", file=sys.__stderr__)


if __name__ == "__main__":
    main()
