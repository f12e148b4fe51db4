"""Conversations about synthetic clips, in the forms the starter is later asked: the open question
with a sentence reply, the short-answer form of `videollm eval`'s synthetic_qa task, the multiple-
choice form of synthetic_mc, and captions. The prompt strings are the ones `videollm data synth`
writes (`videollm.data.formats`), so training and evaluation use the same wording.
"""

from __future__ import annotations

import numpy as np

from videollm.data.formats import SHORT_ANSWER_PROMPT, VIDEO_CAPTION_PROMPTS, mc_answer, mc_prompt
from videollm.data.questions import QA
from videollm.data.synthetic import VideoItem

FORMS = ("open", "short", "mc")


def turn(qa: QA, form: str) -> tuple[str, str]:
    """(prompt, reply) of one question in one form."""
    if form == "open":
        return qa.question, qa.sentence
    if form == "short":
        return f"{qa.question}\n{SHORT_ANSWER_PROMPT}", qa.answer
    if form == "mc":
        return mc_prompt(qa.question, qa.candidates), mc_answer(qa)
    raise ValueError(f"unknown form {form!r}: use one of {FORMS}")


def messages(turns: list[tuple[str, str]]) -> list[dict]:
    """Chat messages with the video in the first user turn (transformers' content-part format)."""
    out = []
    for k, (prompt, reply) in enumerate(turns):
        parts = ([{"type": "video"}] if k == 0 else []) + [{"type": "text", "text": prompt}]
        out += [
            {"role": "user", "content": parts},
            {"role": "assistant", "content": [{"type": "text", "text": reply}]},
        ]
    return out


def clip_conversation(
    item: VideoItem,
    rng: np.random.Generator,
    max_turns: int = 4,
    form_weights: tuple[float, ...] = (0.4, 0.45, 0.15),
    p_caption: float = 0.2,
) -> list[dict]:
    """A multi-turn conversation about one clip: some of its questions in random forms, maybe a caption.

    Several questions share one video's tokens, so each forward pass supervises several answers.
    """
    turns: list[tuple[str, str]] = []
    order = rng.permutation(len(item.questions))[: int(rng.integers(1, max_turns + 1))]
    for i in order:
        form = FORMS[int(rng.choice(len(FORMS), p=np.asarray(form_weights) / sum(form_weights)))]
        turns.append(turn(item.questions[int(i)], form))
    if not turns or rng.random() < p_caption:
        prompt = VIDEO_CAPTION_PROMPTS[int(rng.integers(len(VIDEO_CAPTION_PROMPTS)))]
        caption = item.captions[int(rng.integers(len(item.captions)))]
        turns.insert(int(rng.integers(len(turns) + 1)), (prompt, caption))
    return messages(turns)
