"""Caption supervision: pretrain the world model's tower to say what a caption asks for.

A tower trained from scratch only through the diffusion loss learns slowly which words matter:
v2 used its captions for colour and size but not for shape (benchmarks/RESULTS.md §6b). Real
text-to-image models start from a pretrained text encoder. The world's analogue is cheap,
because every training caption comes with its specification: before diffusion training, the
tower is trained for a few hundred caption-only steps to predict from its (mask-averaged) output
what the caption names — task, each object's shape and named colour, count, relation,
occupation, formulation. The same words in 13 languages then map to the same content before the
UNet ever sees them. The heads are thrown away; only the tower's weights carry over.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from neobabel.world.bias import FORMULATION_ORDER
from neobabel.world.data import WorldSampler
from neobabel.world.spec import COLORS, MAX_COUNT, OCCUPATIONS, RELATIONS, SHAPES, TASKS

# head -> its classes; the last class of each ("-") means "the caption names none"
HEADS: dict[str, tuple[str, ...]] = {
    "task": (*TASKS, "portrait"),
    "shape_1": (*SHAPES, "-"),
    "color_1": (*COLORS, "-"),
    "shape_2": (*SHAPES, "-"),
    "color_2": (*COLORS, "-"),
    "count": tuple(str(n) for n in range(1, MAX_COUNT + 1)) + ("-",),
    "relation": (*RELATIONS, "-"),
    "occupation": (*OCCUPATIONS, "-"),
    "formulation": (*FORMULATION_ORDER, "-"),
}


def caption_labels(spec, meta: dict) -> dict[str, int]:
    """Class index per head for one training caption (what its text names, not the image)."""
    labels = {h: len(c) - 1 for h, c in HEADS.items()}
    if spec.kind == "portrait":
        labels["task"] = HEADS["task"].index("portrait")
        labels["occupation"] = OCCUPATIONS.index(meta["occupation"])
        labels["formulation"] = FORMULATION_ORDER.index(meta["formulation"])
        return labels
    labels["task"] = TASKS.index(spec.task)
    labels["count"] = HEADS["count"].index(str(spec.count))
    # counting scenes hold identical objects: the caption names one shape, once
    named = spec.objects[:1] if spec.task == "counting" else spec.objects
    for i, obj in enumerate(named, start=1):
        labels[f"shape_{i}"] = SHAPES.index(obj.shape)
        if meta["colors_named"]:
            labels[f"color_{i}"] = COLORS.index(obj.color)
    if spec.relation is not None:
        labels["relation"] = RELATIONS.index(spec.relation)
    return labels


def caption_batch(sampler: WorldSampler, step: int, n: int) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Captions and labels of pretraining step `step`: a function of (seed, step), no rendering."""
    rng = np.random.default_rng([sampler.seed, 2**40 + step])  # apart from the image batches
    texts, rows = [], []
    for _ in range(n):
        spec, text, meta = sampler.draw(rng)
        texts.append(text)
        rows.append(caption_labels(spec, meta))
    return texts, {h: torch.tensor([r[h] for r in rows]) for h in HEADS}


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1)


class CaptionHeads(torch.nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.heads = torch.nn.ModuleDict({h: torch.nn.Linear(dim, len(c)) for h, c in HEADS.items()})

    def forward(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        return {h: head(pooled) for h, head in self.heads.items()}


def pretrain_tower(tower, sampler: WorldSampler, steps: int, batch_size: int, lr: float, seed: int,
                   device: torch.device, log=None) -> CaptionHeads:
    """Train `tower` in place on caption supervision; returns the trained heads (for probing);
    `log(step, loss, accuracy_per_head)` is called every 50 steps and at the end."""
    torch.manual_seed(seed)
    heads = CaptionHeads(tower.config.out_dim).to(device)
    params = list(tower.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    for step in range(steps):
        texts, labels = caption_batch(sampler, step, batch_size)
        batch = tower.tokenize(texts)
        mask = batch["attention_mask"].to(device)
        tokens, _ = tower(batch["input_ids"].to(device), mask)
        logits = heads(masked_mean(tokens.float(), mask))
        loss = sum(F.cross_entropy(logits[h], labels[h].to(device)) for h in HEADS)
        for group in opt.param_groups:  # linear warmup over the first 10%, then constant
            group["lr"] = lr * min(1.0, (step + 1) / max(1, steps // 10))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if log is not None and ((step + 1) % 50 == 0 or step + 1 == steps):
            log(step + 1, loss.item(), {h: (logits[h].argmax(-1).cpu() == labels[h]).float().mean().item()
                                        for h in HEADS})
    return heads


__all__ = ["HEADS", "caption_labels", "caption_batch", "masked_mean", "CaptionHeads", "pretrain_tower"]
