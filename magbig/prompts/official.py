"""The official MAGBIG release: its GitHub repository layout, or the Hub dataset's CSVs.

``load_official`` reads a local folder; ``load_hub`` reads the Hub dataset ``felfri/MAGBIG`` at a
pinned commit (:data:`HUB_REVISION`) from the local Hugging Face cache, downloading only when
asked (``allow_download``, CLI ``--download``).
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from magbig.prompts.model import (
    LANG_INDEX,
    Artifact,
    Prompt,
    PromptSet,
    content_digest,
    default_direct_form,
    sort_key,
)
from neobabel.errors import InputError
from neobabel.languages import normalize_lang

HUB_DATASET = "felfri/MAGBIG"
# The commit of HUB_DATASET that `--source hub` loads: a commit, never a branch (`main` moves,
# and an audit must name the exact prompts it ran). This is the newest commit ("Upload 3 files",
# 27 commits, with the data/ folder) in a stored copy of the dataset's file listing; it could
# not be downloaded and checked from here (no network), so `hub` reads it from the local cache
# only unless --download is given. Set to None to make `hub` ask for an explicit commit.
HUB_REVISION: str | None = "72dd7a19f75ff33ac9370f2dc9e44a874273eb26"
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


def _read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (byte {exc.start}); re-save the file as UTF-8") from None
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = [r for r in reader if any(c.strip() for c in r)]
    if not rows:
        return [], []
    header = [h.replace("\ufeff", "").strip().lower() for h in rows[0]]
    return header, rows[1:]


def _lang_from_token(token: str, allow_code: bool) -> str | None:
    token = token.strip().lower()
    if not token or (len(token) <= 3 and not allow_code):
        return None
    try:
        return normalize_lang(token)
    except InputError:
        return None


def _classify_csv(rel: Path) -> tuple[str | None, str, str | None]:
    """(set, formulation, lang-from-name) for a CSV path relative to the release root."""
    stem = rel.stem.lower()
    parts = [p.lower() for p in rel.parts[:-1]]
    tokens = [t for t in re.split(r"[_\-\s.]+", stem) if t]
    if not tokens:
        return None, "direct", None
    if tokens[0] in ("occ", "occupation", "occupations"):
        set_name = "occupations"
    elif tokens[0] in ("adj", "adjective", "adjectives", "trait", "traits"):
        set_name = "traits"
    else:
        return None, "direct", None
    where = " ".join(parts + [stem])
    if "star" in tokens:
        form = "gender_star"
    elif "feminine" in where or "female" in where:
        form = "feminine"
    elif "indirect" in where or "neutral" in where:
        form = "indirect"
    else:
        form = "direct"
    lang = None
    for i, tok in enumerate(tokens[1:], start=1):
        lang = _lang_from_token(tok, allow_code=(i == 1))
        if lang:
            break
    if form == "gender_star" and lang is None:
        lang = "de"
    return set_name, form, lang


def load_official(path: str | os.PathLike, name: str = "magbig-official") -> PromptSet:
    """Load the official MAGBIG prompts from a folder.

    Understands the GitHub repository layout (``occ_<language>.csv`` = direct,
    ``indirect:gender_neutral/occ_<language>.csv`` = indirect,
    ``indirect:gender_neutral/occ_german_star.csv`` = German gender-star, ``adj_<language>.csv``
    = traits, any folder or file named ``*feminine*`` = feminine) and the Hub dataset's
    (``occupations_direct-*.csv``, ``occupations_indirect-*.csv``,
    ``occupations_direct_feminine-*.csv``, ``occupations_german_gender_star-*.csv``,
    ``adjectives-*.csv``; a ``prompt`` column, or one column per language). The folder may be
    the ``prompts/`` folder itself or any folder above it. Handles a UTF-8 BOM, CRLF line ends,
    stray spaces and extra columns; whitespace stripped from a prompt is kept as a note that
    ``validate`` reports. Languages outside ``neobabel.languages`` are skipped with a note.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(
            f"MAGBIG prompt folder {str(path)!r} does not exist; pass the release's prompts/ folder"
        )
    files = sorted(
        p
        for p in root.rglob("*.csv")
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    prompts: dict[str, Prompt] = {}
    notes: list[Artifact] = []
    used = 0
    for f in files:
        rel = f.relative_to(root)
        set_name, form, file_lang = _classify_csv(rel)
        if set_name is None:
            continue
        header, rows = _read_csv_rows(f)
        if not header:
            continue
        used += 1
        subj_col = next(
            (header.index(c) for c in ("name", "occupation", "adjective", "trait", "subject") if c in header),
            0,
        )
        lang_cols: list[tuple[int, str]] = []
        if "prompt" in header:
            lang_col = next((header.index(c) for c in ("lang", "language") if c in header), None)
            if file_lang is None and lang_col is None:
                notes.append(Artifact(str(rel), "unsupported_language",
                                      f"{rel}: no supported language in the file name; skipped", "info"))
                continue
            lang_cols = [(header.index("prompt"), file_lang or "")]
        else:
            lang_col = None
            for i, h in enumerate(header):
                if i == subj_col:
                    continue
                # "german", "de", "en_prompt", "prompt_english", "german (de)" ...
                code = _lang_from_token(h, allow_code=True) or next(
                    (c for t in re.split(r"[_\-\s()]+", h) if (c := _lang_from_token(t, allow_code=True))),
                    None,
                )
                if code and code not in {c for _, c in lang_cols}:
                    lang_cols.append((i, code))
            if not lang_cols:
                raise InputError(
                    f"{f}: no 'prompt' column and no language columns in header {header}; "
                    "expected columns name,prompt"
                )
        for row in rows:
            cells = row + [""] * (len(header) - len(row))
            subject = cells[subj_col].strip().lower()
            if not subject:
                continue
            for col, lang in lang_cols:
                if lang_col is not None:
                    lang = _lang_from_token(cells[lang_col], allow_code=True) or ""
                    if not lang:
                        continue
                raw = cells[col]
                text = raw.strip()
                pid = f"{subject}/{lang}/{form}"
                if not text:
                    notes.append(Artifact(pid, "empty_prompt", f"{rel}: empty prompt for {subject!r}"))
                    continue
                if pid in prompts:
                    if prompts[pid].text != text:
                        notes.append(Artifact(pid, "conflicting_rows",
                                              f"{rel}: a second, different prompt for {pid}; kept the first"))
                    continue
                if raw != text:
                    notes.append(Artifact(pid, "whitespace",
                                          f"{rel}: leading/trailing whitespace stripped from {raw!r}", "info"))
                prompts[pid] = Prompt.make(set_name, subject, lang, form, text)
    if not used:
        raise InputError(
            f"no MAGBIG prompt CSVs (occ_<language>.csv, adj_<language>.csv) under {str(path)!r}; "
            "pass the release's prompts/ folder"
        )
    ordered = tuple(sorted(prompts.values(), key=sort_key))
    langs = sorted({p.lang for p in ordered}, key=lambda c: LANG_INDEX.get(c, 99))
    return PromptSet(
        name=name,
        version=f"sha256:{content_digest(ordered)}",
        prompts=ordered,
        direct_forms={c: default_direct_form(c) for c in langs},
        source=str(root),
        notes=tuple(notes),
    )


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_hub(
    dataset: str = HUB_DATASET,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = False,
) -> PromptSet:
    """Load the MAGBIG dataset from the Hugging Face Hub (``repo_type="dataset"``).

    ``revision`` defaults to :data:`HUB_REVISION` for :data:`HUB_DATASET`. Read from the local
    Hugging Face cache; downloaded only with ``allow_download`` (CLI ``--download``), when
    ``HF_HUB_OFFLINE`` is not set, and only at a commit hash (a branch moves). Anything else is
    a one-line InputError saying how to provide the files (``--source PATH``).
    """
    rev = revision or (HUB_REVISION if dataset == HUB_DATASET else None)
    fix = (f"on a machine with internet run `hf download --repo-type dataset {dataset}"
           f"{' --revision ' + rev if rev else ''}` and point HF_HOME at that cache, or pass a local "
           "folder: --source PATH (the prompts/ folder of github.com/felifri/MAGBIG)")
    if rev is None:
        raise InputError(f"dataset {dataset!r} has no pinned revision in this version of magbig; pass "
                         f"--source hf:{dataset}@COMMIT (a 40-hex commit) or a local folder: --source PATH")
    try:
        from huggingface_hub import snapshot_download  # heavy: huggingface_hub, only when the Hub cache is read
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        raise InputError(f"huggingface_hub is not installed, so {dataset!r} cannot be loaded; {fix}") from None
    kwargs = dict(repo_id=dataset, repo_type="dataset", revision=rev, cache_dir=cache_dir)
    try:
        folder = snapshot_download(local_files_only=True, **kwargs)
    except Exception:
        if _hub_offline():
            raise InputError(f"dataset {dataset!r} (revision {rev}) is not cached and the Hub is offline "
                             f"(HF_HUB_OFFLINE is set); {fix}") from None
        if not allow_download:
            raise InputError(f"dataset {dataset!r} (revision {rev}) is not cached and nothing is downloaded "
                             f"without --download; {fix}") from None
        if not _COMMIT_RE.fullmatch(rev):
            raise InputError(f"dataset revision {rev!r} is not a commit hash: a branch or tag moves, so the "
                             f"prompts could change under the same name; pass hf:{dataset}@COMMIT (40 hex digits)")
        try:
            folder = snapshot_download(**kwargs)
        except Exception as exc:
            reason = type(exc).__name__
            raise InputError(f"dataset {dataset!r} (revision {rev}) is not cached and could not be downloaded ({reason}); {fix}") from None
    commit = Path(folder).name
    ps = load_official(folder, name=f"hf:{dataset}")
    ps.version = f"{commit[:12]}+{ps.version}" if re.fullmatch(r"[0-9a-f]{40}", commit) else ps.version
    ps.source = f"hf:{dataset}@{rev}"
    return ps

