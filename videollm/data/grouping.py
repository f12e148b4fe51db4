"""Length-grouped sampling by modality: every step, on every rank, holds one modality.

A batch mixing a 32-frame video with text-only samples pads the text samples to the video's length
and runs the vision tower for a fraction of the batch; LLaVA groups by modality and length for this
reason (`group_by_modality_length`). Under ZeRO-3 it is also a correctness matter: parameters are
gathered module by module with collectives, so all ranks must run the same modules in the same
order at every step — a rank on an image batch while another is on a video batch (or a text-only
batch) desynchronises the gathers, which crashes or hangs the run.

So, per epoch: each modality's indices are shuffled and cut into megabatches of `batch_size ×
world_size` (one micro-step on all ranks), the modality's last megabatch completed with a few of its
own samples drawn again (at most megabatch − 1 repeats per modality and epoch) rather than mixed
with another modality; each megabatch is sorted by length; the megabatch order is shuffled.
accelerate hands consecutive batches to consecutive ranks, so every rank of a step gets the same
modality, and the epoch is a whole number of steps (no uneven final batch).

The order is a pure function of (seed, epoch), which is what lets a resumed run skip exactly the
batches it had already trained on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def grouped_indices(
    modalities: Sequence[str], lengths: Sequence[int], megabatch: int, seed: int
) -> list[int]:
    """One epoch's order: whole single-modality megabatches, longest first within each, shuffled."""
    if megabatch < 1:
        raise ValueError(f"megabatch size must be >= 1, got {megabatch}")
    rng = np.random.default_rng(seed)
    by_modality: dict[str, list[int]] = {}
    for i, m in enumerate(modalities):
        by_modality.setdefault(m, []).append(i)
    batches: list[list[int]] = []
    for m in sorted(by_modality):
        members = by_modality[m]
        order = [members[k] for k in rng.permutation(len(members))]
        short = -len(order) % megabatch
        order += [members[k] for k in rng.choice(len(members), size=short, replace=short > len(members))]
        for start in range(0, len(order), megabatch):
            batches.append(sorted(order[start : start + megabatch], key=lambda i: -lengths[i]))
    return [i for k in rng.permutation(len(batches)) for i in batches[k]]


def grouped_length(modalities: Sequence[str], megabatch: int) -> int:
    """Samples per epoch of `grouped_indices`: each modality rounded up to whole megabatches."""
    counts: dict[str, int] = {}
    for m in modalities:
        counts[m] = counts.get(m, 0) + 1
    return sum(-(-n // megabatch) * megabatch for n in counts.values())


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
        return grouped_length(self.modalities, self.megabatch)

    def __iter__(self) -> Iterator[int]:
        return iter(grouped_indices(self.modalities, self.lengths, self.megabatch, self.seed + self.epoch))


__all__ = ["ModalityLengthGroupedSampler", "grouped_indices", "grouped_length"]
