"""The starter's align stage, in embedding space: the projector learns to put each description token
where the LM keeps the word it stands for.

LLaVA's align stage teaches a fresh projector to speak the LM's input language by captioning through
the frozen LM. Our connector already *writes* words (its tokens were pretrained to classify
`clips.WORDS`), so the same alignment can be reached directly and far more cheaply: regress the
projector's output for each token onto the LM's input embedding of that token's word (no LM forward
pass at all). The newline after the video starts as the LM's own "\\n" embedding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from videollm.starter.clips import IGNORE, WORDS, Clip
from videollm.starter.vision import VisionPretrainer, clip_batch


def word_embeddings(model: Any, tokenizer: Any) -> torch.Tensor:
    """(len(WORDS), text dim): the LM's input embedding of each word (its last token after a space)."""
    ids = [tokenizer.encode(" " + w, add_special_tokens=False)[-1] for w in WORDS]
    return model.get_input_embeddings().weight[ids].detach().clone()


def fit_projector(
    model: Any,
    tokenizer: Any,
    vision: VisionPretrainer,
    clips: list[Clip],
    steps: int = 300,
    lr: float = 3e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Fit `model`'s projector so that projected description tokens land on their words' embeddings."""
    rng = np.random.default_rng(seed)
    targets = word_embeddings(model, tokenizer)
    with torch.no_grad():
        feats, labels = [], []
        for i in range(0, len(clips), 16):
            batch = clips[i : i + 16]
            pixels, lab = clip_batch(batch, rng)
            feats.append(vision.slot_tokens(pixels))
            labels.append(lab)
            # the same clips without codec noise, as a second view
            pixels, lab = clip_batch(batch, None)
            feats.append(vision.slot_tokens(pixels))
            labels.append(lab)
        x = torch.cat(feats).flatten(0, 1)
        y = torch.cat(labels).flatten()
        keep = y != IGNORE
        x, y = x[keep], y[keep]
    projector = model.model.multi_modal_projector
    opt = torch.optim.AdamW(projector.parameters(), lr=lr, weight_decay=0.0)
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(
            0, len(x), (min(2048, len(x)),), generator=torch.Generator().manual_seed(seed + step)
        )
        out = projector(x[idx])
        loss = F.mse_loss(out, targets[y[idx]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = projector(x)
        nearest = torch.cdist(out, targets).argmin(-1)
        word_acc = 100.0 * float((nearest == y).float().mean())
        cos = float(F.cosine_similarity(out, targets[y], dim=-1).mean())
        newline = tokenizer.encode("\n", add_special_tokens=False)[-1]
        model.model.image_newline.copy_(model.get_input_embeddings().weight[newline])
    result = {
        "mse": loss.item(),
        "nearest_word_accuracy": word_acc,
        "cosine": cos,
        "tokens": len(x),
        "seconds": time.perf_counter() - start,
    }
    log(f"align (embedding space): {len(x)} tokens, nearest-word accuracy {word_acc:.1f} %, cosine {cos:.3f}")
    return result
