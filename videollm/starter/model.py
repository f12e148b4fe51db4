"""The starter model's architecture and its assembly from the shipped parts.

Architecture: the pretrained vision tower of `starter.vision` (SigLIP-type, 64 px frames, 8 px
patches, an ST-Adapter across frames before every block: the `adapter` strategy's modules, which the
vLLM plugin runs too) + its resampler connector (one token per described field — six per palette
colour, then the counts at the start and the end and their change — and a learned temporal embedding:
39 tokens + 1 newline per video, whatever the frame count) + a 2-layer MLP projector +
SmolLM2-135M-Instruct, joined by `videollm.model.from_image_llm`'s (vision encoder, causal LM) form.
The package ships only the trained parts: tower (with adapters), connector, projector and newline
(`assets/parts.safetensors`) and the LM's LoRA (`assets/lora/`, peft format); `starter_dir()`
assembles the full checkpoint once, LoRA merged, in the cache.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from videollm.paths import cache_dir
from videollm.starter.lm import converted_lm_dir
from videollm.starter.vision import ADAPTER, CONNECTOR, build_tower

ASSETS = Path(__file__).parent / "assets"
PARTS_FILE = "parts.safetensors"
LORA_DIR = "lora"
NUM_FRAMES = 8
# Parts of the video model that the starter trains and ships (state-dict prefixes of the full model).
SHIPPED_PREFIXES = (
    "model.vision_tower.",
    "model.connector.",
    "model.multi_modal_projector.",
    "model.image_newline",
)
STARTER_NAME = "videollm-starter"
DONE = "videollm_assembled.json"


def build_starter(
    lm_dir: str | Path | None = None,
    vision_state: dict[str, torch.Tensor] | None = None,
    log: Callable[[str], None] = print,
):
    """(model, processor): the starter architecture with SmolLM2's weights, a fresh projector and, when given,
    the pretrained tower + connector (`vision_state`, keys `vision_tower.*` / `connector.*`)."""
    from transformers.utils import logging as hf_logging

    from videollm.model import from_image_llm

    lm_dir = Path(lm_dir) if lm_dir is not None else converted_lm_dir(log)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        build_tower().save_pretrained(tmp)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        # Expected here, so not worth a warning: the tower has no image processor (SigLIP's 0.5 mean/std are
        # what it was trained with) and SmolLM2's template has no video parts (videollm's ChatML is used).
        builders_log = logging.getLogger("videollm.model.builders")
        level = builders_log.level
        builders_log.setLevel(logging.ERROR)
        try:
            model, processor = from_image_llm(
                (tmp, str(lm_dir)),
                connector=CONNECTOR,
                adapter=ADAPTER,
                num_frames=NUM_FRAMES,
                dtype=torch.float32,
            )
        finally:
            hf_logging.set_verbosity(verbosity)
            builders_log.setLevel(level)
    _init_new_token_rows(model, processor)
    if vision_state is not None:
        state = {
            f"model.{k}": v for k, v in vision_state.items() if k.startswith(("vision_tower.", "connector."))
        }
        missing = [
            k
            for k in model.state_dict()
            if k.startswith(("model.vision_tower.", "model.connector.")) and k not in state
        ]
        if missing:
            raise ValueError(
                f"the pretrained vision state lacks {missing[:5]}; it does not match the starter architecture"
            )
        model.load_state_dict(state, strict=False)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model, processor


def _init_new_token_rows(model: Any, processor: Any) -> None:
    """`<image>`/`<video>` rows of the (tied) embedding set to the mean row: deterministic, so assembly
    reproduces training without shipping them (transformers' resize samples them at random)."""
    emb = model.get_input_embeddings().weight
    ids = [processor.image_token_id, processor.video_token_id]
    with torch.no_grad():
        old = emb[: min(ids)]
        emb[ids] = old.mean(0, keepdim=True).to(emb.dtype)


def shipped_state(model: Any) -> dict[str, torch.Tensor]:
    """The non-LM trained weights of a (peft-wrapped or plain) starter model, by full-model key."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {
        k: v.detach().clone().contiguous()
        for k, v in inner.state_dict().items()
        if k.startswith(SHIPPED_PREFIXES)
    }


def save_parts(model: Any, out: str | Path) -> None:
    """Write the shipped parts: `parts.safetensors` (tower, connector, projector, newline) and `lora/` (peft)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(shipped_state(model), out / PARTS_FILE, metadata={"format": "pt", "model": STARTER_NAME})
    if hasattr(model, "peft_config"):
        model.save_pretrained(out / LORA_DIR)


def assemble(
    parts: str | Path, out: str | Path, lm_dir: str | Path | None = None, log: Callable[[str], None] = print
) -> Path:
    """Full HF checkpoint (model + processor, LoRA merged) from shipped parts, in the layout vLLM loads."""
    from safetensors.torch import load_file

    parts, out = Path(parts), Path(out)
    if not (parts / PARTS_FILE).is_file():
        raise FileNotFoundError(f"{parts / PARTS_FILE} missing: the starter's trained parts are not there")
    model, processor = build_starter(lm_dir, log=log)
    state = load_file(str(parts / PARTS_FILE))
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ValueError(
            f"{parts / PARTS_FILE}: keys the starter does not have: {result.unexpected_keys[:5]}"
        )
    missing = [k for k in result.missing_keys if k.startswith(SHIPPED_PREFIXES)]
    if missing:
        raise ValueError(f"{parts / PARTS_FILE}: missing trained parts {missing[:5]}")
    if (parts / LORA_DIR).is_dir():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, parts / LORA_DIR).merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / DONE).write_text(json.dumps({"parts": str(parts), "name": STARTER_NAME}) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def starter_dir(log: Callable[[str], None] = print) -> Path:
    """The assembled starter checkpoint in the cache; assembled from the package's assets on first use."""
    parts_hash = _assets_fingerprint()
    out = cache_dir("starter") / f"{STARTER_NAME}-{parts_hash}"
    if (out / DONE).is_file():
        return out
    start = time.perf_counter()
    log(f"assembling the starter model (SmolLM2-135M-Instruct + shipped vision/projector/LoRA) in {out} ...")
    assemble(ASSETS, out, log=log)
    log(f"starter model ready in {time.perf_counter() - start:.0f} s: {out}")
    return out


def _assets_fingerprint() -> str:
    """A short hash of the shipped parts, so new assets assemble a new cache folder."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted(p for p in ASSETS.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json")):
        h.update(path.relative_to(ASSETS).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # stderr: commands may print results on stdout


def default_model() -> str:
    """What commands use when no --model is given: the assembled starter's folder (assembled on first use)."""
    return str(starter_dir(log=_progress))
