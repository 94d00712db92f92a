"""Tiny random VQA and image-embedding models for the m-DPG / consistency tests, saved with
save_pretrained (tokenizers built offline from a local vocabulary) so that the tests load them
back through the real loading code."""

from __future__ import annotations

from pathlib import Path

import torch

BLIP_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "yes", "no", "is", "are", "there", "a",
              "the", "red", "blue", "circle", "square", "two", "left", "of", "?"]


def build_tiny_blip_vqa(path: str | Path, seed: int = 0) -> Path:
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    path = Path(path)
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(BLIP_WORDS)})
    tok.add_special_tokens({"bos_token": "[DEC]"})
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok)
    config = BlipConfig(
        text_config=dict(vocab_size=len(BLIP_WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=37, max_position_embeddings=64, bos_token_id=5, sep_token_id=3,
                         pad_token_id=0),
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                           image_size=32, patch_size=8, initializer_range=0.5),  # BLIP's 1e-10 ignores the image
        projection_dim=16)
    torch.manual_seed(seed)
    BlipForQuestionAnswering(config).eval().save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_paligemma(path: str | Path, seed: int = 0) -> Path:
    from transformers import GemmaTokenizer, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    path = Path(path)
    words = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "\n", "▁", "?"] + list("abcdefghijklmnopqrstuvwxyz")
    tok = GemmaTokenizer(vocab={w: i for i, w in enumerate(words)}, merges=[])
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16  # (32 / 8) ** 2 patches
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    config = PaliGemmaConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                           image_size=32, patch_size=8, projection_dim=32),
        text_config=dict(model_type="gemma", vocab_size=len(processor.tokenizer), hidden_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                         intermediate_size=37),
        image_token_id=processor.image_token_id, projection_dim=32)
    torch.manual_seed(seed)
    PaliGemmaForConditionalGeneration(config).eval().save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_clip(path: str | Path, seed: int = 0) -> Path:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from neobabel.testing import _clip_text_config, build_clip_tokenizer

    path = Path(path)
    tok = build_clip_tokenizer(path / "_tok")
    config = CLIPConfig(text_config=_clip_text_config(hidden_act="gelu", projection_dim=16).to_dict(),
                        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=37, image_size=32, patch_size=8),
                        projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(path)
    CLIPProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=tok).save_pretrained(path)
    return path


def build_tiny_dinov2(path: str | Path, seed: int = 0) -> Path:
    from transformers import Dinov2Config, Dinov2Model
    from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil

    path = Path(path)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                          image_size=32, patch_size=8)
    torch.manual_seed(seed)
    Dinov2Model(config).eval().save_pretrained(path)
    BitImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path
