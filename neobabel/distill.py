"""Tower distillation: align a multilingual encoder + adapter to a backbone's own text encoder.

`neobabel distill --backbone PRESET|PATH --encoder HUB_ID|PATH --data PARALLEL.tsv --out DIR`.
The teacher is what the backbone's UNet reads today: its native text encoder's `prompt_embeds`
(and pooled embeddings for SDXL-family) on the English text, or, for a tower-mode backbone
(an English-only world model), its tower on the English text. The student is a
:class:`~neobabel.tower.MultilingualTower`: the multilingual encoder (frozen, or its last N
layers trained) + a new adapter that resamples to the teacher's token count. It reads the
other-language text (and the English text itself) and is trained to output the teacher's
conditioning for the English text (Multilingual-CLIP, AltDiffusion's concept alignment,
GlueGen, PEA-Diffusion): a per-token MSE, a pooled MSE (SDXL), and optionally the MSE between
the frozen UNet's outputs under both conditionings on random noisy latents (PEA-style; costs a
UNet pass per step, meant for a GPU).

OUT is the saved tower (``MultilingualTower.save_pretrained``) plus ``preset.yaml``, a model
preset pairing it with the backbone, so ``--model OUT`` (or ``--model OUT/preset.yaml``, or
the file copied into ``$NEOBABEL_MODELS_DIR``) generates with it. Training state lives in
``OUT/checkpoint`` (safetensors, replaced atomically) and a rerun resumes from it; the batch of
step t is a function of (seed, t), so a resumed run computes what a straight run would.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import nn
from torch.nn import functional as F

from neobabel.atomicfiles import atomic_write_json, atomic_write_text
from neobabel.configfile import read_yaml_mapping, validate_spec
from neobabel.devices import torch_device
from neobabel.errors import InputError
from neobabel.jsonl import jsonl_objects
from neobabel.languages import normalize_lang
from neobabel.pipeline import BabelPipeline
from neobabel.progress import progress_bar
from neobabel.modelfolder import PIPELINE_CONFIG
from neobabel.registry import PRESET_FILE, ModelPreset, get_preset, load_preset_at
from neobabel.tower import ADAPTER_WEIGHTS, CONFIG_NAME, ENCODER_DIR, MultilingualTower, TowerConfig

PARALLEL_COLUMNS = ("en", "lang", "text")
RECORD = "distill.json"
EVAL_LOG = "eval_log.jsonl"
TRAIN_LOG = "train_log.jsonl"
CHECKPOINT = "checkpoint"


class DistillConfig(BaseModel):
    """How a tower is distilled (a YAML file via --config; CLI flags override)."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    steps: PositiveInt = 2000
    batch_size: PositiveInt = 32
    lr: float = Field(5e-4, gt=0)
    warmup: NonNegativeInt = 100
    weight_decay: NonNegativeFloat = 0.01
    # Encoder layers trained (the last N); 0: frozen encoder (only the adapter learns); -1: all,
    # embeddings included.
    trainable_layers: int = Field(0, ge=-1)
    adapter: str = "mlp"  # TowerConfig.adapter
    hidden_dim: NonNegativeInt = 0  # adapter MLP width; 0: the backbone's width
    resampler_heads: PositiveInt = 8
    # Student tokenizer length; None: the encoder tokenizer's, at most 77.
    max_length: PositiveInt | None = None
    token_weight: NonNegativeFloat = 1.0  # per-token MSE on prompt_embeds
    pooled_weight: NonNegativeFloat = 1.0  # MSE on pooled embeddings (SDXL-family)
    # MSE between the frozen UNet's outputs under student and teacher conditioning on random
    # noisy latents (PEA-style): one UNet pass more per step, meant for a GPU. 0: off.
    denoise_weight: NonNegativeFloat = 0.0
    include_english: bool = True  # also train on (en -> en) rows: the student must keep English
    eval_fraction: float = Field(0.1, ge=0, lt=1)  # held-out share of English sentences
    eval_every: NonNegativeInt = 200  # 0: only at the end
    checkpoint_every: PositiveInt = 200
    log_every: PositiveInt = 25


# What a resumed run may change; the rest defines the student or its data stream.
RESUMABLE = frozenset({"steps", "lr", "warmup", "eval_every", "checkpoint_every", "log_every"})


def load_distill_config(path: str | Path | None, **overrides) -> DistillConfig:
    data = read_yaml_mapping(path, "distill config") if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_spec(data, DistillConfig, f"distill config {path}" if path else "distill options")


# -- parallel data ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ParallelRow:
    en: str
    lang: str
    text: str


def _check_row(values: dict, where: str) -> ParallelRow:
    missing = [c for c in PARALLEL_COLUMNS if c not in values]
    if missing:
        raise InputError(f"{where}: missing column {missing[0]!r}; a parallel file needs the columns "
                         f"{', '.join(PARALLEL_COLUMNS)} (got {', '.join(map(str, values)) or 'none'})")
    en, text = str(values["en"] or "").strip(), str(values["text"] or "").strip()
    if not en or not text:
        raise InputError(f"{where}: empty {'en' if not en else 'text'}; every row needs an English "
                         "sentence and its translation")
    try:
        lang = normalize_lang(str(values["lang"] or ""))
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    return ParallelRow(en, lang, text)


def read_parallel(path: str | Path) -> list[ParallelRow]:
    """(en, lang, text) rows from a TSV (with a header), a JSONL file, or a `datasets` folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"--data {path} does not exist; give a TSV or JSONL file of (en, lang, text) rows")
    rows: list[ParallelRow] = []
    if path.is_dir():
        try:
            import datasets  # optional: only for folders written by Dataset.save_to_disk
        except ImportError:
            raise InputError(f"--data {path} is a folder: reading a `datasets` folder needs the datasets "
                             "package (pip install datasets), or export it as TSV/JSONL") from None
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:
            raise InputError(f"--data {path} is not a datasets folder ({str(e).splitlines()[0]})") from None
        for i, rec in enumerate(ds):
            rows.append(_check_row(dict(rec), f"{path} row {i + 1}"))
    elif path.suffix.lower() in (".tsv", ".txt"):
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = reader.fieldnames or []
            missing = [c for c in PARALLEL_COLUMNS if c not in header]
            if header and missing:
                raise InputError(f"{path}: missing column {missing[0]!r}; the header line needs the columns "
                                 f"{', '.join(PARALLEL_COLUMNS)} (got {', '.join(header)})")
            for i, rec in enumerate(reader, start=2):
                rows.append(_check_row(rec, f"{path}:{i}"))
    elif path.suffix.lower() in (".jsonl", ".json"):
        fix = 'write {"en": ..., "lang": ..., "text": ...} per line'
        for i, rec in jsonl_objects(path.read_text(encoding="utf-8"), lambda i: f"{path}:{i}", fix):
            rows.append(_check_row(rec, f"{path}:{i}"))
    else:
        raise InputError(f"--data {path}: unknown format {path.suffix or '(no suffix)'}; use .tsv, .jsonl "
                         "or a datasets folder")
    if not rows:
        raise InputError(f"--data {path} holds no rows; it needs (en, lang, text) rows")
    return rows


def split_rows(rows: list[ParallelRow], eval_fraction: float, include_english: bool):
    """(train rows, eval rows): held out by English sentence (all its translations together),
    chosen by a hash of the sentence, so the split does not depend on the file's order."""
    if include_english:
        seen = {(r.en, r.lang) for r in rows}
        rows = rows + [ParallelRow(en, "en", en) for en in dict.fromkeys(r.en for r in rows) if (en, "en") not in seen]
    sentences = sorted(set(r.en for r in rows))
    score = {s: int(hashlib.sha256(s.encode()).hexdigest()[:8], 16) / 16**8 for s in sentences}
    held = {s for s in sentences if score[s] < eval_fraction}
    if eval_fraction > 0 and not held and len(sentences) > 1:
        held = {min(sentences, key=score.get)}  # at least one sentence to evaluate on
    if len(held) == len(sentences):
        held.discard(max(sentences, key=score.get))
    return [r for r in rows if r.en not in held], [r for r in rows if r.en in held]


def data_fingerprint(rows: list[ParallelRow]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.en}\t{r.lang}\t{r.text}\n".encode())
    return h.hexdigest()[:16]


def batch_indices(n: int, step: int, batch_size: int, seed: int) -> list[int]:
    """The rows of batch `step`: epoch-wise permutations of range(n), a function of (seed, step)."""
    out = []
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, i = divmod(pos, n)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[i]))
    return out


# -- teacher ----------------------------------------------------------------------------------

class Teacher:
    """The conditioning a backbone's UNet reads for a text: native encoders or a tower."""

    def __init__(self, pipeline: BabelPipeline):
        self.pipeline = pipeline
        self.family = pipeline.family
        if pipeline.family not in ("sd", "sdxl"):
            raise InputError(f"--backbone {pipeline.name}: a {type(pipeline.pipe).__name__} is not an SD or "
                             "SDXL-family pipeline; distillation needs a UNet conditioned on prompt_embeds")
        if pipeline.tower is None and getattr(pipeline.pipe, "text_encoder", None) is None \
                and getattr(pipeline.pipe, "text_encoder_2", None) is None:
            raise InputError(f"--backbone {pipeline.name} has no text encoder to distill from")

    @torch.no_grad()
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pipeline.tower is not None:
            tokens, pooled = self.pipeline.tower.encode(texts)
        elif self.family == "sdxl":
            tokens, _, pooled, _ = self.pipeline.pipe.encode_prompt(
                list(texts), device=self.pipeline.device, num_images_per_prompt=1, do_classifier_free_guidance=False)
        else:
            tokens, _ = self.pipeline.pipe.encode_prompt(list(texts), self.pipeline.device, 1, False)
            pooled = None
        return tokens.float(), (pooled.float() if pooled is not None else None)


# -- student ----------------------------------------------------------------------------------

def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer layers (BERT/XLM-R `encoder.layer`, T5 `block`, ...)."""
    n = getattr(encoder.config, "num_hidden_layers", None) or getattr(encoder.config, "num_layers", None)
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise InputError(f"could not find the layer stack of {type(encoder).__name__}; use --trainable-layers 0 or -1")


def set_trainable(tower: MultilingualTower, trainable_layers: int) -> list[str]:
    """Freeze the encoder except its last `trainable_layers` layers (-1: all); the names trained."""
    for p in tower.encoder.parameters():
        p.requires_grad_(trainable_layers == -1)
    if trainable_layers > 0:
        layers = encoder_layers(tower.encoder)
        if trainable_layers > len(layers):
            raise InputError(f"--trainable-layers {trainable_layers}: the encoder has {len(layers)} layers")
        for layer in list(layers)[-trainable_layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)
    return [f"encoder.{n}" for n, p in tower.encoder.named_parameters() if p.requires_grad]


def trainable_state(tower: MultilingualTower, names: list[str]) -> dict[str, torch.Tensor]:
    enc = dict(tower.encoder.named_parameters())
    state = {f"adapter.{k}": v for k, v in tower.adapter.state_dict().items()}
    state.update({n: enc[n[len("encoder."):]].data for n in names})
    return state


# -- checkpoints (safetensors, swapped in whole) -----------------------------------------------

def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(v)).detach().reshape(-1).clone()
               for i, st in sd["state"].items() for k, v in st.items()}
    return tensors, sd["param_groups"]


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict] = {}
    shapes = {i: p.shape for i, p in enumerate(p for g in opt.param_groups for p in g["params"])}
    for key, v in tensors.items():
        i, name = key.split(".", 1)
        i = int(i)
        state.setdefault(i, {})[name] = v.reshape(()) if name == "step" else v.reshape(shapes[i])
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(out: Path, step: int, elapsed: float, state: dict, opt, identity: dict) -> None:
    from safetensors.torch import save_file  # heavy: safetensors.torch pulls in torch

    tmp = out / f".{CHECKPOINT}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp / "trainable.safetensors"))
    opt_tensors, groups = _optimizer_tensors(opt)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "elapsed_s": elapsed, "param_groups": groups,
                                                **identity}, indent=1))
    final, old = out / CHECKPOINT, out / f".{CHECKPOINT}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def check_resume(out: Path, identity: dict) -> dict | None:
    """The checkpoint's state, if one matches this run's student and data; None if none."""
    final = out / CHECKPOINT
    if not final.exists():
        # A save killed between its two renames (save_checkpoint) left the previous checkpoint,
        # whole, under its .old name: that one resumes, rather than training from step 0.
        olds = sorted(out.glob(f".{CHECKPOINT}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds and (olds[-1] / "state.json").is_file():
            os.replace(olds[-1], final)
    state_file = final / "state.json"
    if not state_file.is_file():
        return None
    try:
        state = json.loads(state_file.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{state_file} is unreadable; delete {out / CHECKPOINT} to start over") from None
    before, now = state.get("config", {}), identity["config"]
    changed = [k for k in now if k not in RESUMABLE and before.get(k) != now[k]]
    changed += [k for k in ("backbone", "encoder", "data") if state.get(k) != identity[k]]
    if changed:
        raise InputError(f"{out} holds a distillation checkpoint of another run (changed: {', '.join(changed)}); "
                         "restore those settings to resume, or distill into a new --out")
    return state


# -- the loop ---------------------------------------------------------------------------------

@dataclass
class DistillResult:
    out: Path
    steps: int
    seconds: float
    eval: dict  # the last held-out evaluation: per-language cosine to the teacher
    preset: Path


def _learning_rate(cfg: DistillConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    done = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done)))


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


@torch.no_grad()
def evaluate_student(student: MultilingualTower, teacher: Teacher, rows: list[ParallelRow],
                     batch_size: int) -> dict:
    """Mean cosine between student(text) and teacher(en), per language: the whole token matrix
    (prompt_embeds, flattened) and, where there is one, the pooled embedding."""
    per_lang: dict[str, dict[str, list[float]]] = {}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        t_tok, t_pool = teacher.encode([r.en for r in chunk])
        s_tok, s_pool = student.encode([r.text for r in chunk])
        tok = _cosines(s_tok.float(), t_tok.to(s_tok.device)).tolist()
        pool = _cosines(s_pool.float(), t_pool.to(s_pool.device)).tolist() if t_pool is not None else None
        for i, r in enumerate(chunk):
            d = per_lang.setdefault(r.lang, {"tokens": [], "pooled": []})
            d["tokens"].append(tok[i])
            if pool is not None:
                d["pooled"].append(pool[i])
    return {lang: {k: round(float(np.mean(v)), 4) for k, v in d.items() if v} | {"rows": len(d["tokens"])}
            for lang, d in sorted(per_lang.items())}


def _denoise_loss(unet, family: str, s_tok, s_pool, t_tok, t_pool, gen: torch.Generator) -> torch.Tensor:
    """PEA-style: the frozen UNet's output under the student's conditioning vs the teacher's, at
    a random timestep on random latents (the UNet's output varies smoothly in both)."""
    n, dev = s_tok.shape[0], s_tok.device
    size = unet.config.sample_size
    size = size if isinstance(size, int) else size[0]
    x = torch.randn((n, unet.config.in_channels, size, size), generator=gen).to(dev, unet.dtype)
    t = torch.randint(0, 1000, (n,), generator=gen).to(dev)
    kw_s, kw_t = {}, {}
    if family == "sdxl":
        px = size * 8
        ids = torch.tensor([[px, px, 0, 0, px, px]] * n, device=dev, dtype=unet.dtype)
        kw_s = {"added_cond_kwargs": {"text_embeds": s_pool.to(unet.dtype), "time_ids": ids}}
        kw_t = {"added_cond_kwargs": {"text_embeds": t_pool.to(unet.dtype), "time_ids": ids}}
    with torch.no_grad():
        target = unet(x, t, encoder_hidden_states=t_tok.to(unet.dtype), **kw_t).sample.float()
    pred = unet(x, t, encoder_hidden_states=s_tok.to(unet.dtype), **kw_s).sample.float()
    return F.mse_loss(pred, target)


def _backbone_ref(backbone: str) -> dict:
    """The preset's `backbone:` entry for what --backbone named (a folder, or a preset's own)."""
    path = Path(backbone).expanduser()
    preset_file = path if path.is_file() else path / PRESET_FILE
    if preset_file.is_file() and not (path / PIPELINE_CONFIG).is_file():  # a preset by path: its backbone
        return load_preset_at(preset_file).backbone.model_dump(exclude_none=True)
    if path.is_dir():
        return {"path": str(path.resolve())}
    return get_preset(backbone).backbone.model_dump(exclude_none=True)


def _encoder_ref(encoder: str, revision: str | None) -> dict | None:
    return None if Path(encoder).expanduser().is_dir() else {"repo": encoder, "revision": revision}


def write_preset(out: Path, *, backbone: str, teacher: BabelPipeline, encoder_ref: dict | None,
                 description: str) -> Path:
    """OUT/preset.yaml: the backbone + this tower, loadable by --model OUT (relative paths in it are
    relative to the file)."""
    data = {"name": out.name, "description": description, "mode": "tower", "family": teacher.family,
            "backbone": _backbone_ref(backbone), "tower": {"adapter": {"path": "."}},
            "defaults": teacher.defaults.model_dump()}
    if encoder_ref is not None:
        data["tower"]["encoder"] = encoder_ref
    ModelPreset(**data)  # the file we write must load
    path = out / PRESET_FILE
    atomic_write_text(path, "# written by `neobabel distill`; use with --model " + str(out) + "\n"
                      + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def _save_tower(student: MultilingualTower, out: Path, save_encoder: bool) -> None:
    """Save the tower into OUT beside the checkpoint: written into a temporary folder, then each
    part renamed into place, the config last (it marks a complete tower)."""
    tmp = out / f".tower.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    student.save_pretrained(tmp, save_encoder=save_encoder)
    for name in (ENCODER_DIR, ADAPTER_WEIGHTS, CONFIG_NAME):
        if (tmp / name).exists():
            if (out / name).is_dir():
                shutil.rmtree(out / name)
            os.replace(tmp / name, out / name)
    shutil.rmtree(tmp, ignore_errors=True)


def distill(backbone: str, encoder: str, data: str | Path, out: str | Path, cfg: DistillConfig, *,
            encoder_revision: str | None = None, device: str = "cpu", progress: bool = True,
            allow_pickle: bool = False) -> DistillResult:
    """Train a tower for `backbone` from `encoder` on parallel `data`; resumes from OUT/checkpoint."""
    out = Path(out)
    rows = read_parallel(data)
    train_rows, eval_rows = split_rows(rows, cfg.eval_fraction, cfg.include_english)
    if not train_rows:
        raise InputError(f"--data {data}: no rows left for training after holding out {cfg.eval_fraction:.0%}")
    if cfg.adapter not in ("linear", "mlp"):
        raise InputError(f"adapter {cfg.adapter!r} is not supported; use 'linear' or 'mlp'")
    dev = torch_device(device)  # "auto" -> cuda or cpu; unknown or unavailable -> InputError
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    identity = {"config": cfg.model_dump(mode="json"), "backbone": backbone, "encoder": [encoder, encoder_revision],
                "data": data_fingerprint(rows)}
    resume = check_resume(out, identity)  # before anything loads: a refusal costs nothing

    teacher_pipe = BabelPipeline.from_pretrained(backbone, device=device, dtype=torch.float32,
                                                 allow_pickle=allow_pickle)
    teacher = Teacher(teacher_pipe)
    for module in (teacher_pipe.pipe.unet, getattr(teacher_pipe.pipe, "text_encoder", None),
                   getattr(teacher_pipe.pipe, "text_encoder_2", None), teacher_pipe.tower):
        if module is not None:
            module.requires_grad_(False)
    probe_tok, probe_pool = teacher.encode(["a photo"])
    torch.manual_seed(cfg.seed)  # the adapter's initialisation
    probe = MultilingualTower.from_encoder(encoder, TowerConfig(out_dim=probe_tok.shape[-1]), revision=encoder_revision,
                                           allow_pickle=allow_pickle)
    max_length = cfg.max_length or min(int(probe.tokenizer.model_max_length), 77)
    tower_cfg = TowerConfig(adapter=cfg.adapter, out_dim=probe_tok.shape[-1], num_tokens=probe_tok.shape[1],
                            pooled_dim=probe_pool.shape[-1] if probe_pool is not None else 0,
                            max_length=max_length, hidden_dim=cfg.hidden_dim, resampler_heads=cfg.resampler_heads,
                            encoder=probe.config.encoder, encoder_revision=probe.config.encoder_revision)
    torch.manual_seed(cfg.seed)
    student = MultilingualTower(probe.encoder, probe.tokenizer, tower_cfg)
    del probe
    trained_names = set_trainable(student, cfg.trainable_layers)
    # Dropout off: the student matches a deterministic teacher, and a resumed run stays exact.
    student.to(dev).eval()
    params = [p for p in student.adapter.parameters()] + [p for p in student.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    step, elapsed_before = 0, 0.0
    out.mkdir(parents=True, exist_ok=True)
    if resume is not None:
        from safetensors.torch import load_file  # heavy: safetensors.torch pulls in torch

        saved = load_file(str(out / CHECKPOINT / "trainable.safetensors"), device=str(dev))
        student.adapter.load_state_dict({k[len("adapter."):]: v for k, v in saved.items() if k.startswith("adapter.")})
        enc = dict(student.encoder.named_parameters())
        with torch.no_grad():
            for k, v in saved.items():
                if k.startswith("encoder."):
                    enc[k[len("encoder."):]].copy_(v)
        _load_optimizer(opt, load_file(str(out / CHECKPOINT / "optimizer.safetensors")), resume["param_groups"])
        step, elapsed_before = int(resume["step"]), float(resume["elapsed_s"])
    else:
        for name in (TRAIN_LOG, EVAL_LOG):
            (out / name).unlink(missing_ok=True)

    state = trainable_state(student, trained_names)
    unet = teacher_pipe.pipe.unet
    t0 = time.perf_counter()
    last_eval: dict = {}
    loss_shown = [float("nan")]
    losses: list[float] = []

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def run_eval(at: int) -> dict:
        result = evaluate_student(student, teacher, eval_rows, cfg.batch_size) if eval_rows else {}
        with open(out / EVAL_LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": at, "per_lang": result}) + "\n")
        return result

    with progress_bar("distilling", cfg.steps, enabled=progress, unit="step", done=step,
                      detail=lambda: f"loss {loss_shown[0]:.4f}") as advance:
        try:
            while step < cfg.steps:
                batch = [train_rows[i] for i in batch_indices(len(train_rows), step, cfg.batch_size, cfg.seed)]
                t_tok, t_pool = teacher.encode([r.en for r in batch])
                enc = student.tokenize([r.text for r in batch])
                s_tok, s_pool = student(enc["input_ids"].to(dev), enc["attention_mask"].to(dev))
                loss = cfg.token_weight * F.mse_loss(s_tok.float(), t_tok)
                if t_pool is not None and s_pool is not None:
                    loss = loss + cfg.pooled_weight * F.mse_loss(s_pool.float(), t_pool)
                if cfg.denoise_weight:
                    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
                    loss = loss + cfg.denoise_weight * _denoise_loss(unet, teacher.family, s_tok, s_pool, t_tok,
                                                                     t_pool, gen)
                for group in opt.param_groups:
                    group["lr"] = _learning_rate(cfg, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                step += 1
                losses.append(loss.item())
                if step % cfg.log_every == 0 or step == cfg.steps:
                    loss_shown[0] = float(np.mean(losses))
                    with open(out / TRAIN_LOG, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps({"step": step, "loss": loss_shown[0], "lr": opt.param_groups[0]["lr"],
                                             "elapsed_s": round(elapsed(), 1)}) + "\n")
                    losses.clear()
                advance(1)
                if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                    last_eval = run_eval(step)
                if step % cfg.checkpoint_every == 0:
                    save_checkpoint(out, step, elapsed(), state, opt, identity)
        finally:
            save_checkpoint(out, step, elapsed(), state, opt, identity)
    last_eval = run_eval(step)
    student.cpu()
    save_encoder = cfg.trainable_layers != 0 or Path(encoder).expanduser().is_dir()
    _save_tower(student, out, save_encoder)
    enc_ref = None if save_encoder else _encoder_ref(encoder, encoder_revision)
    preset = write_preset(out, backbone=backbone, teacher=teacher_pipe, encoder_ref=enc_ref,
                          description=f"tower distilled from {encoder} onto {backbone}'s text encoder "
                                      "(neobabel distill)")
    seconds = elapsed()
    atomic_write_json(out / RECORD, {"backbone": backbone, "encoder": encoder, "encoder_revision": encoder_revision,
                                     "data": str(data), "data_fingerprint": identity["data"],
                                     "rows": {"train": len(train_rows), "eval": len(eval_rows)},
                                     "steps": step, "seconds": round(seconds, 1), "config": identity["config"],
                                     "trained_encoder_parameters": len(trained_names), "eval": last_eval})
    return DistillResult(out, step, seconds, last_eval, preset)


__all__ = ["DistillConfig", "DistillResult", "ParallelRow", "Teacher", "distill", "evaluate_student",
           "load_distill_config", "read_parallel", "split_rows", "write_preset"]
