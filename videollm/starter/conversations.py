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
# Text-only prompts whose replies by the LM itself (before any LoRA) are replayed during finetuning, as
# LLaVA mixes text-only conversations into its instruction data: the LM keeps its own voice off-topic.
# Disjoint from the prompts that check that ability (`starter.train.CHAT_PROMPTS`).
REPLAY_PROMPTS = (
    "What is the capital of Italy?",
    "Name three colours of the rainbow.",
    "Give me two tips for sleeping well.",
    "Write a short sentence about the mountains.",
    "What is 12 plus 7?",
    "Explain in one sentence what a cloud is.",
    "What is the largest planet in the solar system?",
    "Suggest a name for a friendly cat.",
    "Write one sentence about the moon.",
    "How many days are there in a week?",
    "What do bees make?",
    "Give me a tip for learning a new language.",
    "Describe a sunny day in one sentence.",
    "What is the boiling point of water in Celsius?",
    "Name a famous painter.",
    "Write a short sentence about autumn leaves.",
    "What is the opposite of hot?",
    "Why do people drink coffee in the morning?",
    "Write a friendly greeting for a new colleague.",
    "What is the chemical symbol for gold?",
    "Give me three ideas for a weekend activity.",
    "What language is spoken in Brazil?",
    "Write one sentence about a forest.",
    "How do plants get energy?",
)


def text_conversation(prompt: str, reply: str) -> list[dict]:
    """A text-only exchange (no video part)."""
    return [
        {"role": "user", "content": [{"type": "text", "text": prompt}]},
        {"role": "assistant", "content": [{"type": "text", "text": reply}]},
    ]


def whole_sentences(reply: str) -> str:
    """A generated reply cut after its last full sentence, so replayed replies end as a reply would."""
    end = max(reply.rfind(c) for c in ".!?")
    return reply[: end + 1] if end > 0 else reply


def turn(qa: QA, form: str, mc_order: str = "letter_first") -> tuple[str, str]:
    """(prompt, reply) of one question in one form (a multiple-choice reply in `mc_order`: formats.mc_reply)."""
    if form == "open":
        return qa.question, qa.sentence
    if form == "short":
        return f"{qa.question}\n{SHORT_ANSWER_PROMPT}", qa.answer
    if form == "mc":
        return mc_prompt(qa.question, qa.candidates), mc_answer(qa, mc_order)
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
    mc_order: str = "letter_first",
) -> list[dict]:
    """A multi-turn conversation about one clip: some of its questions in random forms, maybe a caption.

    Several questions share one video's tokens, so each forward pass supervises several answers.
    """
    turns: list[tuple[str, str]] = []
    order = rng.permutation(len(item.questions))[: int(rng.integers(1, max_turns + 1))]
    for i in order:
        form = FORMS[int(rng.choice(len(FORMS), p=np.asarray(form_weights) / sum(form_weights)))]
        turns.append(turn(item.questions[int(i)], form, mc_order))
    if not turns or rng.random() < p_caption:
        prompt = VIDEO_CAPTION_PROMPTS[int(rng.integers(len(VIDEO_CAPTION_PROMPTS)))]
        caption = item.captions[int(rng.integers(len(item.captions)))]
        turns.insert(int(rng.integers(len(turns) + 1)), (prompt, caption))
    return messages(turns)
