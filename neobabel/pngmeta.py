"""PNG files with text chunks: everything an image's manifest row needs, plus the ``parameters``
text other Stable Diffusion tools show (A1111 / ComfyUI image-info views).

Nothing that varies between runs of one spec (no timing), so identical specs give byte-identical files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, PngImagePlugin

from neobabel import __version__
from neobabel.rundir import WorkUnit


def png_bytes(image: Image.Image, metadata: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in metadata.items():
        # iTXt (UTF-8): prompts are in any script.
        info.add_itxt(k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_png_metadata(path: Path) -> dict[str, str]:
    with Image.open(path) as im:
        im.load()  # verifies the whole stream, so a truncated file is caught here
        return {k: v for k, v in im.text.items()}


def _infotext_value(value) -> str:
    """A value as A1111's infotext quotes it: JSON-quoted when a comma, colon or newline would split it."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def sd_parameters_text(prompt: str, seed: int, model: str, params: dict) -> str:
    """The ``parameters`` chunk in A1111's layout: the prompt, an optional `Negative prompt:` line,
    then `Steps: 20, Sampler: ddim, CFG scale: 4.0, Seed: 3, Size: 32x32, Model: world`."""
    lines = [prompt]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    fields = {"Steps": params.get("steps"), "Sampler": params.get("scheduler") or "default",
              "CFG scale": params.get("guidance"), "Seed": seed,
              "Size": f"{params.get('width')}x{params.get('height')}", "Model": model}
    lines.append(", ".join(f"{k}: {_infotext_value(v)}" for k, v in fields.items() if v is not None))
    return "\n".join(lines)


def png_metadata(key: str, unit: WorkUnit, identity: dict, params: dict) -> dict:
    """A PNG's text chunks: everything its manifest row needs, nothing that varies between runs
    of one spec (no timing), so identical specs give byte-identical files."""
    meta = {"key": key, "prompt": unit.text, "lang": unit.lang, "seed": str(unit.seed),
            "prompt_id": unit.prompt_id, "model": identity["model"], "revision": identity["revision"],
            "params": params}
    meta.update({k: v for k, v in (("subject", unit.subject), ("formulation", unit.formulation),
                                   ("translation", unit.translation)) if v is not None})
    meta["software"] = f"neobabel {__version__}"
    meta["parameters"] = sd_parameters_text(unit.text, unit.seed, identity["model"], params)
    return meta
