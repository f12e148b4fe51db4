"""Samples → model inputs: chat template, placeholder expansion, assistant-only labels, padding.

`encode` renders a sample's messages with the processor's chat template, lets the processor expand
each `<video>`/`<image>` placeholder to the number of tokens the model makes of it, and labels only
the assistant turns (everything else is IGNORE_INDEX). Assistant replies are found by rendering
growing prefixes of the conversation (prompt with `add_generation_prompt=True` vs. prompt plus the
reply), so any prefix-stable chat template works, `{% generation %}` markers or not, and the
end-of-turn token is supervised, which is what teaches the model to stop. The reply tokens are then
located in the expanded sequence by anchoring on the placeholder runs, and checked token for token,
so labels cannot silently drift whatever the processor inserts after a video (time instructions).

A sequence longer than `max_length` *after* expansion is never truncated (cutting through a video
leaves the model with fewer placeholder tokens than features, or a reply without its question):
`SupervisedDataset` skips it, warns with its file and record, counts it, and serves the next sample
in its place, so every rank still gets the same number of batches. Uneven batch counts across
ranks are what hangs multi-GPU LLaVA runs when samples are dropped.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from videollm.data.llava import Sample

IGNORE_INDEX = -100
logger = logging.getLogger(__name__)
# Keys of a processor's output that describe the text, not the media.
TEXT_KEYS = ("input_ids", "attention_mask", "offset_mapping", "text_replacement_offsets", "mm_token_type_ids")


class SequenceTooLong(ValueError):
    """A sample whose tokens, placeholders expanded, exceed max_length."""

    def __init__(self, where: str, length: int, max_length: int, media_tokens: int):
        self.where, self.length, self.max_length, self.media_tokens = where, length, max_length, media_tokens
        super().__init__(
            f"{where}: {length} tokens after placeholder expansion ({media_tokens} of them media tokens) > "
            f"max_length {max_length}; raise max_length, sample fewer frames, or use a pooling connector"
        )


def render(processor: Any, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    return processor.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


def assistant_spans(processor: Any, messages: Sequence[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant reply (end-of-turn included)."""
    text = render(processor, messages)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(processor, messages[:k], add_generation_prompt=True) if k else ""
        upto = render(processor, messages[: k + 1])
        if not (text.startswith(upto) and upto.startswith(prompt)):
            raise ValueError(
                "the chat template is not prefix-stable (rendering the first turns of a conversation does not "
                "give a prefix of the whole), so assistant turns cannot be located for label masking; use a "
                "template that renders each turn independently (ChatML, Llama-3, ...)"
            )
        spans.append((len(prompt), len(upto)))
    return text, spans


def _media_inputs(processor: Any, sample: Sample) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if sample.videos:
        # videollm's processor takes `Video`s (their timestamps feed time instructions and temporal
        # connectors); stock processors take the frame arrays.
        wants_video = hasattr(processor, "video_num_tokens")
        kwargs["videos"] = [v if wants_video else v.frames for v in sample.videos]
    if sample.images:
        kwargs["images"] = list(sample.images)
    return kwargs


def placeholder_ids(processor: Any) -> set[int]:
    tokenizer = processor.tokenizer
    ids = set()
    for name in ("image", "video"):
        token_id = getattr(processor, f"{name}_token_id", None)
        if token_id is None and getattr(processor, f"{name}_token", None) is not None:
            token_id = tokenizer.convert_tokens_to_ids(getattr(processor, f"{name}_token"))
        if token_id is not None and token_id != tokenizer.unk_token_id:
            ids.add(int(token_id))
    return ids


def place_spans(
    unexpanded: Sequence[int],
    expanded: Sequence[int],
    spans: Sequence[tuple[int, int]],
    placeholders: set[int],
) -> list[tuple[int, int]]:
    """Token spans of the unexpanded sequence moved to where they sit in the expanded one.

    Each placeholder token becomes a run of placeholder tokens (a processor may add text *after* a run,
    e.g. a time instruction, never before it), so a span is anchored to the start of the next run, or
    to the end of the sequence when no placeholder follows it.
    """
    marks = [i for i, t in enumerate(unexpanded) if t in placeholders]
    runs = [
        j
        for j, t in enumerate(expanded)
        if t in placeholders and (j == 0 or expanded[j - 1] not in placeholders)
    ]
    if len(runs) != len(marks):
        raise ValueError(
            f"{len(marks)} placeholders became {len(runs)} runs of placeholder tokens; placeholders must be "
            "separated by text (chat templates put a newline after each media part)"
        )
    placed = []
    for start, end in spans:
        k = bisect.bisect_right(marks, start)
        shift = runs[k] - marks[k] if k < len(marks) else len(expanded) - len(unexpanded)
        if list(expanded[start + shift : end + shift]) != list(unexpanded[start:end]):
            raise ValueError("assistant tokens could not be located after placeholder expansion")
        placed.append((start + shift, end + shift))
    return placed


def encode(processor: Any, sample: Sample, max_length: int | None = None) -> dict[str, Any]:
    """One sample → 1-D `input_ids`/`labels` plus the processor's media inputs."""
    text, char_spans = assistant_spans(processor, sample.messages)
    tokenizer = processor.tokenizer
    # The template wrote the BOS token itself if it starts with it (transformers' apply_chat_template rule).
    add_special = not (tokenizer.bos_token is not None and text.startswith(tokenizer.bos_token))
    plain = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    offsets = plain["offset_mapping"]
    token_spans = []
    for start, end in char_spans:
        hit = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
        if hit:
            token_spans.append((hit[0], hit[-1] + 1))
    out = processor(
        text=[text], return_tensors="pt", add_special_tokens=add_special, **_media_inputs(processor, sample)
    )
    input_ids = out["input_ids"][0]
    if max_length is not None and len(input_ids) > max_length:
        marks = placeholder_ids(processor)
        media_tokens = sum(int(t) in marks for t in input_ids.tolist())
        raise SequenceTooLong(sample.where, len(input_ids), max_length, media_tokens)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    try:
        placed = place_spans(plain["input_ids"], input_ids.tolist(), token_spans, placeholder_ids(processor))
    except ValueError as e:
        raise ValueError(f"{sample.where}: {e}") from None
    for start, end in placed:
        labels[start:end] = input_ids[start:end]
    media = {k: v for k, v in out.items() if k not in TEXT_KEYS and v is not None}
    return {"input_ids": input_ids, "labels": labels, **media}


class SupervisedDataset(torch.utils.data.Dataset):
    """`dataset[i]` encoded for training; over-long samples are skipped, reported and replaced.

    The replacement is the next sample of the same modality (so modality-grouped batches stay pure,
    which ZeRO-3 needs). Each item carries `id` and `skipped` (where-strings of samples skipped to
    produce it), which the collator batches and the trainer counts; they never reach the model.
    """

    def __init__(self, dataset: Any, processor: Any, max_length: int | None):
        self.dataset = dataset
        self.processor = processor
        self.max_length = max_length
        self.modalities = list(dataset.modalities)
        self._too_long: set[int] = set()  # per worker process: known skips are not decoded again

    def __len__(self) -> int:
        return len(self.dataset)

    def _candidates(self, i: int) -> Iterator[int]:
        """`i`, then the samples after it (wrapping) of its modality: lazily, as nearly every call
        takes the first (a list of all of them cost O(dataset) per sample: measured 2× slower steps
        on a 130k-sample mixture)."""
        n = len(self.modalities)
        return (j for j in ((i + k) % n for k in range(n)) if self.modalities[j] == self.modalities[i])

    def __getitem__(self, i: int) -> dict[str, Any]:
        skipped: list[str] = []
        for j in self._candidates(i):
            if j in self._too_long:
                skipped.append(self.dataset.record(j).where)
                continue
            sample = self.dataset[j]
            try:
                item = encode(self.processor, sample, self.max_length)
            except SequenceTooLong as e:
                logger.warning("skipped: %s", e)
                self._too_long.add(j)
                skipped.append(sample.where)
                continue
            return {**item, "id": sample.id, "skipped": skipped}
        raise ValueError(
            f"every {self.modalities[i]} sample is longer than max_length={self.max_length} after placeholder "
            "expansion; raise max_length or sample fewer frames"
        )


PER_VIDEO_KEYS = ("pixel_values_videos", "video_timestamps")


def _pad_to(t: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    if tuple(t.shape) == tuple(shape):
        return t
    out = t.new_zeros(shape)
    out[tuple(slice(0, s) for s in t.shape)] = t
    return out


def merge_media(key: str, values: list[Any]) -> Any:
    """Per-sample media inputs → one batch input.

    Per-video inputs are stacked when all videos have the same frame count and left a list of
    per-video tensors otherwise (what VideoLLM's forward accepts); per-image inputs are concatenated,
    padding anyres patch counts with zeros as the image processor itself does within a batch.
    """
    if key in PER_VIDEO_KEYS or any(isinstance(v, list | tuple) for v in values):
        items = [t for v in values for t in (v if isinstance(v, list | tuple) else v.unbind(0))]
        return torch.stack(items) if len({tuple(t.shape) for t in items}) == 1 else items
    shapes = {tuple(t.shape[1:]) for t in values}
    if len(shapes) > 1:
        dims = [max(s[d] for s in shapes) for d in range(len(next(iter(shapes))))]
        values = [_pad_to(t, [t.shape[0], *dims]) for t in values]
    return torch.cat(values, dim=0)


class Collator:
    """Right-pads `input_ids`/`labels`, builds `attention_mask`, concatenates media across samples."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        length = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), length), dtype=torch.long)
        for b, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[b, :n] = f["input_ids"]
            labels[b, :n] = f["labels"]
            attention_mask[b, :n] = 1
        batch: dict[str, Any] = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        reserved = {*batch, "id", "skipped"}
        media_keys = sorted({k for f in features for k in f} - reserved)
        for key in media_keys:
            batch[key] = merge_media(key, [f[key] for f in features if key in f])
        batch["ids"] = [f.get("id") for f in features]
        batch["skipped"] = [w for f in features for w in f.get("skipped", ())]
        return batch


__all__ = ["IGNORE_INDEX", "Collator", "SequenceTooLong", "SupervisedDataset", "assistant_spans", "encode"]
