"""Dynamic batching for the transformers engine: concurrent requests share one `generate` call.

Requests are prepared (video decode, chat template, processor) in the caller's worker thread, so
decoding overlaps generation; a single generation thread takes up to `batch_size` compatible
requests that arrived within `wait_s`, left-pads them into one batch and runs `generate` with a
streamer that hands each row's new text to its own asyncio queue. A row stops on EOS, its stop
strings, its own `max_tokens`, or when its client goes away (`cancel`): a stopping criterion marks
just that row done, so a disconnect frees its slot without disturbing the others.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from videollm.video.types import Video


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # vLLM's extension: always generate max_tokens (benchmarks)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def batch_key(self) -> tuple:
        """Requests with equal keys can share a `generate` call (seeded ones never share)."""
        if self.seed is not None:
            return ("seed", id(self))
        key = ("greedy",) if self.greedy else ("sample", self.temperature, self.top_p)
        return (*key, self.ignore_eos)


@dataclass
class Prepared:
    """One request's model inputs (unpadded), ready to batch."""

    inputs: dict[str, Any]
    prompt_tokens: int
    has_images: bool = False


@dataclass
class Event:
    kind: str  # "delta" | "done" | "error"
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_ids: list[int] = field(default_factory=list)
    error: BaseException | None = None


@dataclass
class Job:
    prepared: Prepared
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue
    token_ids: list[int] = field(default_factory=list)
    sent: str = ""
    finished: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat messages → the processor's chat-template messages (media parts become placeholders)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                kind = p.get("type")
                if kind == "video_url":
                    parts.append({"type": "video"})
                elif kind == "image_url":
                    parts.append({"type": "image"})
                elif kind in ("text", "input_text"):
                    parts.append({"type": "text", "text": p["text"]})
            content = parts
        elif content is None:
            content = ""
        out.append({"role": m["role"], "content": content})
    return out


class BatchedGenerator:
    """Owns a model + processor and the thread that runs batched `generate` for asyncio callers."""

    def __init__(self, model: Any, processor: Any, *, batch_size: int = 8, wait_s: float = 0.01):
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.batch_size = max(1, batch_size)
        self.wait_s = wait_s
        self.eos_ids = self._eos_ids()
        self.pad_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        )
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._held: list[Job] = []
        self._thread = threading.Thread(target=self._run, name="videollm-generate", daemon=True)
        self._thread.start()
        self.stats = {"batches": 0, "max_batch": 0, "cancelled": 0}

    def _eos_ids(self) -> list[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return list(eos) if isinstance(eos, list | tuple) else [eos]

    @property
    def context_length(self) -> int | None:
        return getattr(self.processor, "max_position_embeddings", None)

    # -- preparing (in a worker thread of the caller) --

    def prepare(self, messages: list[dict[str, Any]], videos: list[Video], images: list[Any]) -> Prepared:
        """Chat template + processor for one request. Raises ValueError for input the model cannot take."""
        text = self.processor.apply_chat_template(
            chat_messages(messages), add_generation_prompt=True, tokenize=False
        )
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if videos:
            kwargs["videos"] = videos
        if images:
            kwargs["images"] = images
        inputs = dict(self.processor(**kwargs))
        ids = inputs["input_ids"][0]
        return Prepared(inputs=inputs, prompt_tokens=int(ids.shape[0]), has_images=bool(images))

    # -- submitting (on the event loop) --

    async def stream(self, prepared: Prepared, params: SamplingParams) -> AsyncIterator[Event]:
        """Events for one request; closing the iterator early (client gone) cancels its row."""
        job = Job(prepared, params, asyncio.get_running_loop(), asyncio.Queue())
        self._queue.put(job)
        try:
            while True:
                event = await job.events.get()
                yield event
                if event.kind in ("done", "error"):
                    return
        finally:
            job.cancelled.set()

    def close(self) -> None:
        self._queue.put(None)

    # -- the generation thread --

    def _run(self) -> None:
        while True:
            job = self._held.pop(0) if self._held else self._queue.get()
            if job is None:
                return
            if job.cancelled.is_set():
                continue
            batch = [job]
            if not job.prepared.has_images:
                self._fill(batch)
            try:
                self._generate(batch)
            except Exception as e:  # a failed batch fails its requests, never the server
                for j in batch:
                    if not j.finished:
                        j.finished = True
                        j.emit(Event("error", error=e))

    def _fill(self, batch: list[Job]) -> None:
        key = batch[0].params.batch_key()
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                job = (
                    self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                return
            if job is None:
                self._queue.put(None)
                return
            if job.cancelled.is_set():
                continue
            if job.params.batch_key() == key and not job.prepared.has_images:
                batch.append(job)
            else:
                self._held.append(job)

    def _collate(self, batch: list[Job]) -> dict[str, Any]:
        if len(batch) == 1:
            return dict(batch[0].prepared.inputs)
        longest = max(j.prepared.prompt_tokens for j in batch)
        ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        videos, stamps = [], []
        for row, j in enumerate(batch):
            n = j.prepared.prompt_tokens
            ids[row, longest - n :] = j.prepared.inputs["input_ids"][0]
            mask[row, longest - n :] = 1
            pv = j.prepared.inputs.get("pixel_values_videos")
            if pv is not None:
                videos += list(pv)
                if "video_timestamps" in j.prepared.inputs:
                    stamps += list(j.prepared.inputs["video_timestamps"])
        out: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if videos:
            out["pixel_values_videos"] = videos
        if stamps:
            out["video_timestamps"] = stamps
        return out

    def _generate(self, batch: list[Job]) -> None:
        self.stats["batches"] += 1
        self.stats["max_batch"] = max(self.stats["max_batch"], len(batch))
        params = batch[0].params
        inputs = self._collate(batch)
        gen: dict[str, Any] = {
            "max_new_tokens": max(j.params.max_tokens for j in batch),
            "do_sample": not params.greedy,
            "pad_token_id": self.pad_id,
            "eos_token_id": self.eos_ids,
            "streamer": _RowStreamer(self, batch),
            "stopping_criteria": StoppingCriteriaList([_RowsDone(batch)]),
        }
        if params.ignore_eos:
            gen["min_new_tokens"] = gen["max_new_tokens"]
        if not params.greedy:
            gen.update(temperature=params.temperature, top_p=params.top_p)
        else:
            gen.update(temperature=None, top_p=None, top_k=None)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            self.model.generate(**inputs, **gen)
        for j in batch:  # rows generate ended without a stop of their own (cancelled ones)
            if j.cancelled.is_set() and not j.finished:
                self.stats["cancelled"] += 1
            if not j.finished:
                self._finish(j, "length" if len(j.token_ids) >= j.params.max_tokens else "stop")

    # -- per-row bookkeeping, called from the streamer --

    def _push(self, job: Job, token: int) -> None:
        job.token_ids.append(token)
        if token in self.eos_ids and not job.params.ignore_eos:
            return self._finish(job, "stop")
        text = self.tokenizer.decode(job.token_ids, skip_special_tokens=True)
        for s in job.params.stop:
            cut = text.find(s, max(0, len(job.sent) - len(s)))
            if cut >= 0:
                self._send(job, text[:cut])
                return self._finish(job, "stop")
        if len(job.token_ids) >= job.params.max_tokens:
            return self._finish(job, "length")
        if not text.endswith("\ufffd"):  # hold back an incomplete UTF-8 sequence
            held = max((len(s) - 1 for s in job.params.stop), default=0)  # a stop string may be starting
            self._send(job, text[: len(text) - held] if held else text)

    def _send(self, job: Job, text: str) -> None:
        if len(text) > len(job.sent) and text.startswith(job.sent):
            job.emit(Event("delta", text=text[len(job.sent) :]))
            job.sent = text

    def _finish(self, job: Job, reason: str) -> None:
        if job.finished:
            return
        text = self.tokenizer.decode(job.token_ids, skip_special_tokens=True)
        if reason == "stop":
            for s in job.params.stop:
                if s in text:
                    text = text[: text.find(s)]
        self._send(job, text.rstrip("\ufffd"))
        job.finished = True
        job.emit(
            Event(
                "done",
                finish_reason=reason,
                prompt_tokens=job.prepared.prompt_tokens,
                completion_tokens=len(job.token_ids),
                token_ids=list(job.token_ids),
            )
        )


class _RowStreamer(BaseStreamer):
    def __init__(self, owner: BatchedGenerator, batch: list[Job]):
        self.owner = owner
        self.batch = batch
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate first pushes the prompt
            self.prompt_seen = True
            return
        tokens = value.reshape(len(self.batch), -1)[:, -1].tolist()
        for job, token in zip(self.batch, tokens, strict=True):
            if not job.finished and not job.cancelled.is_set():
                self.owner._push(job, int(token))

    def end(self) -> None:
        pass


class _RowsDone(StoppingCriteria):
    def __init__(self, batch: list[Job]):
        self.batch = batch

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        done = [j.finished or j.cancelled.is_set() for j in self.batch]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
