"""The study's image-LLM align step: the starter's embedding-space `align`, at patch level.

A tiny LM trained from scratch does not learn, in the small budget's few thousand image samples, to tie a
question's word ("triangle") to the patches that show it (measured: single-frame static QA 39–43 % against
36.5 % chance, while count, which needs no such binding, reached 75–94 %). LLaVA's align stage makes visual
tokens readable as words; with a pretrained tower whose patches already know their object's colour, shape and
size, that can be done directly: fit the projector so that every patch token lands on the sum of the LM's
input embeddings of those three words (background patches: on zero), with no LM pass at all. The image stage
then starts from visual tokens that live where the question's words do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from videollm.data.world import SHAPES, SIZES
from videollm.starter.clips import COLORS, frame_targets

#: the words a patch is described by, in `frame_targets`' order of its first three maps
PATCH_VOCAB = (COLORS, SHAPES, tuple(SIZES))


def word_vectors(model: Any, tokenizer: Any, words: Sequence[str]) -> torch.Tensor:
    """(len(words), text dim): each word's input embedding as it appears mid-sentence (after a space), the
    mean of its tokens' embeddings when the tokenizer splits it (a byte-level one does)."""
    table = model.get_input_embeddings().weight.detach()
    return torch.stack([table[tokenizer.encode(" " + w, add_special_tokens=False)].mean(0) for w in words])


def patch_labels(state: Any, size: int, grid: int) -> torch.Tensor:
    """(3, grid·grid): per patch, the index + 1 of its object's colour, shape and size in `PATCH_VOCAB`
    (0: background)."""
    return torch.from_numpy(frame_targets(state, size, grid).patches[:3].astype(np.int64)).flatten(1)


def patch_targets(labels: torch.Tensor, vocab: Sequence[torch.Tensor]) -> torch.Tensor:
    """(patches, text dim): per patch, the sum of its object's colour, shape and size word vectors
    (`vocab[i]` is `word_vectors` of `PATCH_VOCAB[i]`); zero where no object covers the patch."""
    out = torch.zeros(labels.shape[1], vocab[0].shape[1])
    for field, table in zip(labels, vocab, strict=True):
        shown = field > 0
        out[shown] += table[field[shown] - 1]
    return out


def align_patches(
    model: Any,
    processor: Any,
    world: Path,
    frames: Sequence[int],
    steps: int = 300,
    lr: float = 3e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Fit `model`'s projector (in place) on the `frames` of every training clip of the rendered `world`."""
    from videollm.data.synthetic import load_world, make_item
    from videollm.model.tokens import frame_grid

    manifest = load_world(world)
    grid = frame_grid(model.config.vision_config)
    if grid[0] != grid[1]:
        raise ValueError(f"align_patches needs a square patch grid, the tower has {grid}")
    vocab = [word_vectors(model, processor.tokenizer, words) for words in PATCH_VOCAB]
    feats, labels = [], []
    inner = model.model
    with torch.no_grad():
        for index in range(manifest.splits["train"].num_videos):
            item, pixels = make_item(
                manifest.seed, "train", index, manifest.frames, manifest.size, manifest.fps, manifest.counter
            )
            video = processor(videos=[pixels[list(frames)]])["pixel_values_videos"]
            out = inner._encode_frames(
                video, model.config.vision_feature_layer, model.config.vision_feature_select_strategy
            )
            feats.append(out.pooler_output.flatten(0, 1))
            labels += [patch_labels(item.states[t], manifest.size, grid[0]) for t in frames]
    x, labels = torch.cat(feats), torch.cat(labels, dim=1)
    y = patch_targets(labels, vocab)
    projector = inner.multi_modal_projector
    opt = torch.optim.AdamW(projector.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(2048, len(x)),), generator=gen)
        loss = F.mse_loss(projector(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = projector(x)
        shown = labels[0] > 0
        cos = float(F.cosine_similarity(out[shown], y[shown], dim=-1).mean())
        # can the LM's vocabulary read an object patch's colour back (the colour word it points at most)?
        colour = (out[shown] @ vocab[0].T).argmax(-1)
        colour_acc = 100.0 * float((colour == labels[0][shown] - 1).float().mean())
    result = {
        "mse": float(F.mse_loss(out, y)),
        "cosine": cos,
        "nearest_color_accuracy": colour_acc,
        "tokens": len(x),
        "seconds": time.perf_counter() - start,
    }
    log(
        f"image align (embedding space): {len(x)} patch tokens, cosine {cos:.3f} on object patches, "
        f"nearest colour word {colour_acc:.1f} %, {result['seconds']:.0f} s"
    )
    return result
