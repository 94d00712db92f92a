"""Translate-then-generate: a machine-translation model puts each prompt into English first.

The baseline NeoBabel's multilingual tower is measured against: a transformers seq2seq MT model
(Marian / OPUS-MT, M2M100, NLLB; any hub id + pinned revision, or a local folder) translates
every non-English prompt, and the backbone generates from the English text as it would from an
English prompt. Each image's translation is recorded (manifest column ``translation``, PNG text
chunk ``translation``) and enters its image key, so an image is still a function of its key.

Translations are batched per language, decoded greedily (deterministic), and cached in the run
directory (``translations.json``, keyed by MT model + revision + language + text), so a resumed
or extended run does not translate a prompt twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from neobabel._logging import quiet_transformers
from neobabel.atomicfiles import atomic_write_json
from neobabel.errors import InputError, ModelNotAvailableError
from neobabel.languages import normalize_lang
from neobabel.rundir import WorkUnit

CACHE_FILE = "translations.json"

# NLLB's FLORES-200 codes for our languages (M2M100 uses the ISO codes themselves).
NLLB_CODES = {"en": "eng_Latn", "de": "deu_Latn", "fr": "fra_Latn", "es": "spa_Latn", "it": "ita_Latn",
              "nl": "nld_Latn", "ru": "rus_Cyrl", "zh": "zho_Hans", "ja": "jpn_Jpan", "ko": "kor_Hang",
              "ar": "arb_Arab", "hi": "hin_Deva", "fa": "pes_Arab"}


class MTTranslator:
    """A transformers seq2seq MT model translating into English.

    Marian (OPUS-MT) models translate their one language pair (or, for `opus-mt-mul-en`, any
    source) and need no language code; M2M100 and NLLB models are told the source language and
    forced to start English output.
    """

    def __init__(self, model, tokenizer, name: str, revision: str = "", batch_size: int = 16,
                 max_new_tokens: int = 128):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.revision = revision or ""
        self.batch_size = batch_size
        # never past the decoder's position table (a small model's would overflow mid-generation)
        limit = getattr(model.config, "max_position_embeddings", None)
        self.max_new_tokens = min(max_new_tokens, limit - 1) if limit else max_new_tokens
        self.calls = 0  # model batches run (tests check the cache and the batching with it)
        vocab = tokenizer.get_vocab()
        if "eng_Latn" in vocab:
            self.family = "nllb"
        elif getattr(model.config, "model_type", "") == "m2m_100":
            self.family = "m2m100"
        else:
            self.family = "marian"

    @classmethod
    def from_pretrained(cls, source: str | Path, revision: str | None = None, *, local_files_only: bool = True,
                        device: str = "cpu", **kw) -> MTTranslator:
        # heavy: transformers (and torch), only when a translator loads
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        try:
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=local_files_only)
                model = AutoModelForSeq2SeqLM.from_pretrained(source, revision=revision,
                                                              local_files_only=local_files_only, use_safetensors=True)
        except OSError as e:
            raise ModelNotAvailableError(
                f"the translation model {source} (revision {revision or 'unpinned'}) could not be loaded: "
                f"{str(e).splitlines()[0]}. On a machine with internet run `hf download {source} --revision "
                f"{revision or 'REV'}` and point HF_HOME at that cache, or pass a local folder") from None
        name = str(source) if not Path(source).is_dir() else Path(source).name
        return cls(model.to(device), tokenizer, name, revision or "", **kw)

    def _prepare(self, lang: str) -> dict:
        if self.family == "nllb":
            self.tokenizer.src_lang = NLLB_CODES[lang]
            return {"forced_bos_token_id": self.tokenizer.convert_tokens_to_ids(NLLB_CODES["en"])}
        if self.family == "m2m100":
            self.tokenizer.src_lang = lang
            return {"forced_bos_token_id": self.tokenizer.get_lang_id("en")}
        return {}

    def translate(self, texts: Sequence[str], lang: str) -> list[str]:
        """`texts` (all in `lang`) -> English, in batches; English input is returned unchanged."""
        import torch  # heavy: only when translating

        lang = normalize_lang(lang)
        if lang == "en":
            return list(texts)
        extra = self._prepare(lang)
        out: list[str] = []
        device = next(self.model.parameters()).device
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            batch = self.tokenizer(chunk, return_tensors="pt", padding=True, truncation=True).to(device)
            batch.pop("token_type_ids", None)
            with torch.no_grad():
                ids = self.model.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=self.max_new_tokens,
                                          **extra)
            out += [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
            self.calls += 1
        return out


def cache_key(translator, lang: str, text: str) -> str:
    blob = json.dumps([translator.name, translator.revision, lang, text], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def translate_units(translator, units: Sequence[WorkUnit], cache_dir: str | Path | None = None) -> list[WorkUnit]:
    """The units with `translation` filled in: from the run's cache, the rest translated in one
    batched pass per language (each distinct text once) and added to the cache."""
    cache_path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    cache: dict[str, dict] = {}
    if cache_path is not None and cache_path.is_file():
        try:
            cache = json.loads(cache_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise InputError(f"{cache_path} is not valid JSON; delete it to translate again") from None
    todo: dict[str, list[str]] = {}
    for u in units:
        if u.lang != "en" and cache_key(translator, u.lang, u.text) not in cache:
            todo.setdefault(u.lang, [])
            if u.text not in todo[u.lang]:
                todo[u.lang].append(u.text)
    for lang, texts in todo.items():
        for text, english in zip(texts, translator.translate(texts, lang)):
            cache[cache_key(translator, lang, text)] = {"model": translator.name, "revision": translator.revision,
                                                         "lang": lang, "text": text, "translation": english}
    if todo and cache_path is not None:
        atomic_write_json(cache_path, cache)
    return [replace(u, translation=u.text if u.lang == "en" else cache[cache_key(translator, u.lang, u.text)]["translation"])
            for u in units]


__all__ = ["CACHE_FILE", "MTTranslator", "NLLB_CODES", "cache_key", "translate_units"]
