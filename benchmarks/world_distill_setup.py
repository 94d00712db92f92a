"""Inputs of the world distillation demonstration (RESULTS §16): parallel captions and a
randomly initialised XLM-R-style encoder that uses the world's tokenizer.

  OUT/parallel.tsv     (en, lang, text) for SCENES scenes in the 12 other languages
  OUT/encoder-multi/   4 layers, width 192: the multilingual student, trained from scratch on the
                       parallel captions (no multilingual pretraining to lean on)

The backbone is the English-only world model, trained separately:
  neobabel world train --config configs/world/train-en.yaml --out runs/world-en

  python benchmarks/world_distill_setup.py --out runs/world-distill --scenes 1500
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

from neobabel.builtins import world_weights_path
from neobabel.world.parallel import parallel_captions


def random_encoder(out: Path, tokenizer, hidden: int, layers: int, seed: int) -> None:
    torch.manual_seed(seed)
    max_length = tokenizer.model_max_length
    model = XLMRobertaModel(XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=2 * hidden, max_position_embeddings=max_length + 2, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0), add_pooling_layer=False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/world-distill"))
    ap.add_argument("--scenes", type=int, default=1500)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = list(parallel_captions(args.scenes, seed=0))
    (args.out / "parallel.tsv").write_text("en\tlang\ttext\n" + "".join(f"{e}\t{l}\t{t}\n" for e, l, t in rows),
                                           encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(world_weights_path() / "tower" / "encoder")
    random_encoder(args.out / "encoder-multi", tokenizer, hidden=192, layers=4, seed=2)
    print(f"{len(rows)} parallel rows in {args.out}")


if __name__ == "__main__":
    main()
