"""Offline fixtures for the classifiers: real architectures, random weights, local files only.

- :func:`build_deepface_gender_weights` writes a state dict of deepface's own PyTorch gender
  network (``deepface.models.demography.pytorch.Gender.GenderModel``, VGG-Face trunk, 134M
  parameters, 0.5 GB) where deepface looks for it, so ``DeepFace.analyze(..., actions=["gender"],
  detector_backend="opencv")`` and our ``deepface`` backend run without a download.
- :func:`build_clip_model` saves a tiny random ``CLIPModel`` with a local CLIP BPE tokenizer and
  a PIL image processor config, loadable by ``CLIPModel/CLIPProcessor.from_pretrained(folder)``.

Weights are random: the scores mean nothing about anyone's perceived gender; tests use them to
exercise code paths (shapes, batching, statuses), never to judge accuracy.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from neobabel.testing import build_clip_tokenizer


def build_deepface_gender_weights(home: str | os.PathLike, seed: int = 0, female_bias: float = 0.0,
                                  spread: float = 3.0) -> Path:
    """Save random weights of deepface's gender network at
    ``home/.deepface/weights/gender_model_weights.pth`` (the file deepface 0.0.103 loads with
    ``torch.load(weights_only=True)`` + ``load_state_dict``) and return its path.

    With PyTorch's default init the trunk's activations vanish and every input scores the same
    (p ~ 0.4988). To make outputs depend on the face, convolutions get He (Kaiming) normal init
    with zero biases, and the classifier scores one zero-mean random direction of the fc7
    features: logits (Woman, Man) = (+spread, -spread) * w.x + (female_bias, 0). ``female_bias``
    shifts every image towards "Woman" (> 0) or "Man" (< 0), so tests can check which output
    index is which.
    """
    os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", "pytorch")
    from deepface.models.demography.DemographyUtils import GENDER_LABELS  # heavy; after the engine is set above
    from deepface.models.demography.pytorch import Gender  # heavy: as above

    gen = torch.Generator().manual_seed(seed)
    model = Gender.base_model()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module is not model.predictions:
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                module.bias.zero_()
        w = torch.randn(model.predictions.in_channels, generator=gen)
        w = (w - w.mean()) / w.norm() * spread
        woman, man = GENDER_LABELS.index("Woman"), GENDER_LABELS.index("Man")
        model.predictions.weight.zero_()
        model.predictions.weight[woman, :, 0, 0] = w
        model.predictions.weight[man, :, 0, 0] = -w
        model.predictions.bias.zero_()
        model.predictions.bias[woman] = float(female_bias)
    path = Path(home) / ".deepface" / "weights" / "gender_model_weights.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pth.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return path


def build_clip_model(path: str | os.PathLike, seed: int = 0, image_size: int = 32, hidden_size: int = 32,
                     projection_dim: int = 16, logit_scale: float = 2.6592) -> Path:
    """Save a tiny random transformers ``CLIPModel`` + CLIP tokenizer + PIL image processor.

    ``logit_scale`` is the log of CLIP's temperature (2.6592 = log(1/0.07), CLIP's init).
    """
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel  # heavy: only for CLIP tests

    path = Path(path)
    tok = build_clip_tokenizer(path)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=tok.model_max_length,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        ),
        vision_config=dict(
            image_size=image_size, patch_size=max(2, image_size // 4), hidden_size=hidden_size,
            intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        ),
        projection_dim=projection_dim,
        logit_scale_init_value=logit_scale,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(path)
    CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(path)
    return path
