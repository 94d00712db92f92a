"""MultilingualTower: a transformers text encoder plus an adapter into a backbone's space.

The tower replaces a diffusion backbone's own (English CLIP) text encoder. Any transformers
encoder works (XLM-R, mT5's encoder, multilingual E5, a decoder LM's hidden states); the
adapter maps its hidden states to the backbone's cross-attention width (`prompt_embeds`,
B x L x D) and, for SDXL-family backbones, to the pooled text embedding (B x P).

Texts are always padded to `max_length`, never to the longest in the batch, so a prompt's
embedding does not depend on which other prompts share its batch.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn

from neobabel._logging import quiet_transformers
from neobabel.errors import InputError
from neobabel.weights import reading_pickle, weights_kwargs

CONFIG_NAME = "tower_config.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
ENCODER_DIR = "encoder"


@dataclass
class TowerConfig:
    adapter: str = "mlp"  # "linear" | "mlp"
    out_dim: int = 768  # backbone cross_attention_dim
    pooled_dim: int = 0  # SDXL pooled text embedding width (1280 for SDXL); 0 = none
    num_tokens: int = 0  # resampler to a fixed token count; 0 = one output per input token
    max_length: int = 77  # texts are padded/truncated to this many tokens
    hidden_dim: int = 0  # MLP hidden width; 0 = out_dim
    resampler_heads: int = 8
    # Zero the output at padded positions. The UNet's cross-attention (and diffusers' pooled
    # text-time embedding) see every position unmasked, and after the LayerNorm each pad carries
    # a full-norm copy of the common component, crowding out the few caption tokens.
    zero_padding: bool = False
    # Where the encoder lives: "encoder" (a subfolder of the saved tower) or a hub id.
    encoder: str = ENCODER_DIR
    encoder_revision: str | None = None

    def __post_init__(self):
        if self.adapter not in ("linear", "mlp"):
            raise InputError(f"tower adapter {self.adapter!r} is not supported; use 'linear' or 'mlp'")
        for name in ("out_dim", "max_length"):
            if getattr(self, name) <= 0:
                raise InputError(f"tower {name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, data: dict) -> TowerConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown tower config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


class Resampler(nn.Module):
    """Learned queries cross-attending to the token states: a fixed number of output tokens."""

    def __init__(self, dim: int, num_tokens: int, heads: int):
        super().__init__()
        heads = heads if dim % heads == 0 else math.gcd(dim, heads) or 1
        self.queries = nn.Parameter(torch.randn(num_tokens, dim) / math.sqrt(dim))
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q = self.queries.unsqueeze(0).expand(states.shape[0], -1, -1)
        out, _ = self.attn(q, states, states, key_padding_mask=~mask.bool(), need_weights=False)
        out = out + q
        return out + self.ff(out)


class TowerAdapter(nn.Module):
    def __init__(self, in_dim: int, config: TowerConfig):
        super().__init__()
        out = config.out_dim
        if config.adapter == "linear":
            self.proj = nn.Linear(in_dim, out)
        else:
            hidden = config.hidden_dim or out
            self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out))
        self.resampler = Resampler(out, config.num_tokens, config.resampler_heads) if config.num_tokens else None
        # CLIP's text states end in a LayerNorm; backbones expect embeddings on that scale.
        self.norm = nn.LayerNorm(out)
        self.pooled = nn.Linear(in_dim, config.pooled_dim) if config.pooled_dim else None
        self.zero_padding = config.zero_padding

    def forward(self, states: torch.Tensor, mask: torch.Tensor):
        tokens = self.proj(states)
        if self.resampler is not None:
            tokens = self.resampler(tokens, mask)
        tokens = self.norm(tokens)
        if self.zero_padding and self.resampler is None:
            tokens = tokens * mask.unsqueeze(-1).to(tokens.dtype)
        pooled = None
        if self.pooled is not None:
            m = mask.unsqueeze(-1).to(states.dtype)
            mean = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
            pooled = self.pooled(mean)
        return tokens, pooled


def _drop_loader_kwargs(tokenizer_config: Path) -> None:
    """transformers 5 writes how a tokenizer was loaded (``local_files_only``, ``is_local``) into
    the config it saves; a saved model must not carry that into the next load."""
    if not tokenizer_config.is_file():
        return
    data = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    if {"local_files_only", "is_local"} & data.keys():
        for key in ("local_files_only", "is_local"):
            data.pop(key, None)
        tokenizer_config.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _local_encoder_folder(source: str | Path, revision: str | None, local_files_only: bool) -> Path | None:
    """The folder the encoder loads from: `source` itself, or its snapshot in the local Hugging
    Face cache; None when transformers may still download it (or reports it missing itself)."""
    if Path(source).is_dir():
        return Path(source)
    if not local_files_only:
        return None
    from huggingface_hub import snapshot_download  # heavy: huggingface_hub, only when the Hub cache is read

    try:
        return Path(snapshot_download(str(source), revision=revision, local_files_only=True))
    except Exception:
        return None


def _encoder_weights_kwargs(source, revision, local_files_only: bool, allow_pickle: bool) -> dict:
    folder = _local_encoder_folder(source, revision, local_files_only)
    if folder is not None and (folder / "config.json").is_file():  # else AutoConfig says what is missing
        return weights_kwargs(folder, "transformers", allow_pickle)
    # Downloading: only safetensors, unless pickle is allowed (then transformers prefers safetensors).
    return {"use_safetensors": None if allow_pickle else True}


def _load_encoder(source: str | Path, revision: str | None, local_files_only: bool, dtype=None,
                  allow_pickle: bool = False):
    # heavy: transformers (and torch), only when a model is built or loaded
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    weights_kw = _encoder_weights_kwargs(source, revision, local_files_only, allow_pickle)
    with quiet_transformers():
        config = AutoConfig.from_pretrained(source, revision=revision, local_files_only=local_files_only)
        if getattr(config, "is_encoder_decoder", False):
            # mT5 and friends: only the encoder conditions the backbone.
            from transformers import AutoModelForTextEncoding as auto_cls
        else:
            auto_cls = AutoModel
        kw = {"dtype": dtype, **weights_kw} if dtype is not None else weights_kw
        with reading_pickle(weights_kw["use_safetensors"], source):
            model = auto_cls.from_pretrained(source, revision=revision, local_files_only=local_files_only, **kw)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=local_files_only)
    return model.eval(), tokenizer


class MultilingualTower(nn.Module):
    def __init__(self, encoder: nn.Module, tokenizer, config: TowerConfig):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        self.adapter = TowerAdapter(encoder.config.hidden_size, config)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_encoder(cls, encoder: str | Path, config: TowerConfig, revision: str | None = None,
                     local_files_only: bool = True, allow_pickle: bool = False) -> MultilingualTower:
        """A new tower (random adapter) over a pretrained encoder folder or hub id."""
        model, tokenizer = _load_encoder(encoder, revision, local_files_only, allow_pickle=allow_pickle)
        if config.encoder == ENCODER_DIR:  # remember where the encoder came from (save_encoder=False)
            config = replace(config, encoder=str(encoder), encoder_revision=revision)
        return cls(model, tokenizer, config)

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype | None = None,
                        local_files_only: bool = True, allow_pickle: bool = False) -> MultilingualTower:
        """A saved tower. `allow_pickle` lets a pickled encoder load (neobabel.weights); the
        adapter is always adapter.safetensors."""
        from safetensors.torch import load_file  # heavy: safetensors.torch pulls in torch

        path = Path(path)
        cfg_file = path / CONFIG_NAME
        if not cfg_file.is_file():
            raise InputError(f"{path} is not a saved tower (no {CONFIG_NAME}); save one with "
                             "MultilingualTower.save_pretrained")
        config = TowerConfig.from_dict(json.loads(cfg_file.read_text(encoding="utf-8")))
        source = path / config.encoder if (path / config.encoder).is_dir() else config.encoder
        adapter_file = path / ADAPTER_WEIGHTS
        if not adapter_file.is_file():  # before the encoder loads: fail fast, in one line
            raise InputError(f"{adapter_file} is missing; the tower folder is incomplete: copy the file "
                             "there or re-save the tower with MultilingualTower.save_pretrained")
        model, tokenizer = _load_encoder(source, config.encoder_revision, local_files_only, dtype, allow_pickle)
        tower = cls(model, tokenizer, config)
        state = load_file(str(adapter_file))
        tower.adapter.load_state_dict(state)
        if dtype is not None:
            tower.to(dtype)
        return tower.eval()

    def save_pretrained(self, path: str | Path, save_encoder: bool = True,
                        dtype: torch.dtype | None = None) -> None:
        """Write tower_config.json + adapter.safetensors (+ encoder/ with its tokenizer).

        With save_encoder=False the config keeps pointing at the encoder's hub id, so an
        adapter for a large public encoder ships as a few MB.
        """
        from safetensors.torch import save_file  # heavy: safetensors.torch pulls in torch

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = TowerConfig(**asdict(self.config))
        if save_encoder:
            config.encoder, config.encoder_revision = ENCODER_DIR, None
            # Convert a copy of the weights, not the live module (nn.Module.to is in place).
            state = None
            if dtype is not None:
                state = {k: v.to(dtype) for k, v in self.encoder.state_dict().items()}
            self.encoder.save_pretrained(path / ENCODER_DIR, state_dict=state)
            self.tokenizer.save_pretrained(path / ENCODER_DIR)
            _drop_loader_kwargs(path / ENCODER_DIR / "tokenizer_config.json")
        state = {k: (v.to(dtype) if dtype is not None else v).contiguous()
                 for k, v in self.adapter.state_dict().items()}
        save_file(state, str(path / ADAPTER_WEIGHTS))
        (path / CONFIG_NAME).write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")

    # -- encoding -----------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.adapter.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.adapter.parameters()).dtype

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.config.max_length,
            return_tensors="pt",
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        states = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return self.adapter(states, attention_mask)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Texts -> (prompt_embeds (B, L, D), pooled (B, P) or None) on the tower's device."""
        batch = self.tokenize(texts)
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        return self.forward(ids, mask)


def train_subword_tokenizer(corpus: list[str], vocab_size: int = 400, model_max_length: int = 32):
    """Train a SentencePiece-style BPE tokenizer (metaspace, <s> ... </s>) offline with `tokenizers`.

    BPE, not Unigram: Unigram's parallel EM gives near-tied pieces different scores in every
    process, so the same corpus gave different vocabularies; BPE's trainer breaks ties
    deterministically, so the shipped model is reproducible. Chinese and Japanese are split into
    characters first: without spaces, a small corpus would otherwise yield whole clauses as
    single tokens (design.md). NFKC only, no accent stripping: stripping destroys Hindi vowel
    signs and German umlauts. Returned as a `PreTrainedTokenizerFast`, whose tokenizer.json
    reloads exactly as trained (a model class such as XLMRobertaTokenizer would rebuild its
    own pre-tokenizer on reload).
    """
    # heavy: tokenizers, only when a tokenizer is trained
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    # heavy: transformers (and torch), only when a model is built or loaded
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=_cjk_char_pattern(), behavior="isolated"),
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first"),
    ])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    alphabet = sorted({ch for text in corpus for ch in text.replace(" ", "\u2581")})
    trainer = trainers.BpeTrainer(vocab_size=max(vocab_size, len(alphabet) + len(specials) + 1),
                                  special_tokens=specials, initial_alphabet=alphabet + ["\u2581"],
                                  min_frequency=2, show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        mask_token="<mask>", cls_token="<s>", sep_token="</s>", model_max_length=model_max_length,
    )


def _cjk_char_pattern():
    from tokenizers import Regex  # heavy: tokenizers, only when a tokenizer is trained

    # Han, Hiragana, Katakana: one character per pre-token.
    return Regex("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
