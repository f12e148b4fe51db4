"""Length-grouped sampling by modality: every batch holds one modality and similar lengths.

A batch mixing a 32-frame video with text-only samples pads the text samples to the video's length
and runs the vision tower for a fraction of the batch; LLaVA groups by modality and length for this
reason (`group_by_modality_length`). Here, per epoch: each modality's indices are shuffled, cut into
megabatches of `batch_size × world_size` (one optimizer micro-step across all ranks) and sorted by
length inside each megabatch; the leftovers of all modalities form mixed megabatches; the
megabatch order is shuffled. accelerate hands consecutive batches to consecutive ranks, so all ranks
of one step get the same modality.

The order is a pure function of (seed, epoch), which is what lets a resumed run skip exactly the
batches it had already trained on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def grouped_indices(
    modalities: Sequence[str], lengths: Sequence[int], megabatch: int, seed: int
) -> list[int]:
    """One epoch's order: single-modality megabatches, longest first within each, in shuffled order."""
    if megabatch < 1:
        raise ValueError(f"megabatch size must be >= 1, got {megabatch}")
    rng = np.random.default_rng(seed)
    by_modality: dict[str, list[int]] = {}
    for i, m in enumerate(modalities):
        by_modality.setdefault(m, []).append(i)
    batches: list[list[int]] = []
    leftovers: list[int] = []
    for m in sorted(by_modality):
        order = [by_modality[m][k] for k in rng.permutation(len(by_modality[m]))]
        full = len(order) - len(order) % megabatch
        for start in range(0, full, megabatch):
            chunk = order[start : start + megabatch]
            batches.append(sorted(chunk, key=lambda i: -lengths[i]))
        leftovers += order[full:]
    leftovers = [leftovers[k] for k in rng.permutation(len(leftovers))]
    tail = [leftovers[s : s + megabatch] for s in range(0, len(leftovers), megabatch)]
    # A short final chunk must stay last: a partial megabatch in the middle would shift every later
    # batch by a few samples and break the one-modality-per-step alignment across ranks.
    full_tail = [b for b in tail if len(b) == megabatch]
    batches += full_tail
    order = [batches[k] for k in rng.permutation(len(batches))]
    if len(full_tail) < len(tail):
        order.append(tail[-1])
    return [i for b in order for i in b]


class ModalityLengthGroupedSampler:
    """A torch Sampler over `grouped_indices`; `set_epoch` (called by the Trainer) reshuffles."""

    def __init__(
        self,
        modalities: Sequence[str],
        lengths: Sequence[int],
        batch_size: int,
        world_size: int = 1,
        seed: int = 0,
    ):
        if len(modalities) != len(lengths):
            raise ValueError(f"{len(modalities)} modalities but {len(lengths)} lengths")
        self.modalities = list(modalities)
        self.lengths = list(lengths)
        self.megabatch = batch_size * world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.modalities)

    def __iter__(self) -> Iterator[int]:
        return iter(grouped_indices(self.modalities, self.lengths, self.megabatch, self.seed + self.epoch))


__all__ = ["ModalityLengthGroupedSampler", "grouped_indices"]
