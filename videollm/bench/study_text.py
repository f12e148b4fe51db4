"""The study's text stage: what a pretrained LLM brings to an image-LLM, learned from text alone.

The survey's image-LLMs start from a language model that already reads questions and picks an
option's letter; the study's tiny LM starts from nothing, and learning the multiple-choice pointer
(find the option that says what you know, answer with its letter) at the same time as seeing
proved too much for it: after its image stage it answered colour/shape/size questions in the open
form (62.5 % exact match) and at or below chance in the multiple-choice form. So, before the image
stage, the LM learns the world's questions from text: each training question (video and image)
with its answer sentence as the context, in the short-answer and multiple-choice forms the later
stages use, the options shuffled anew per copy. Seeing (image stage) and time (video stage) stay
the later stages' work: here the answer is written in the prompt.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np

from videollm.data.formats import SHORT_ANSWER_PROMPT, mc_prompt, mc_reply

QUESTION_FILES = ("qa.jsonl", "image_qa.jsonl")  # a world split's video and image questions


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _sample(sample_id: str, prompt: str, reply: str, record: dict) -> dict:
    return {
        "id": sample_id,
        "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": reply}],
        "type": record["type"],
        "qtype": record["qtype"],
    }


def text_samples(split: Path, copies: int = 4, seed: int = 0, mc_order: str = "letter_first") -> list[dict]:
    """Text-only LLaVA records of every question of the world split `split`: the answer sentence
    as context, then the question in its short-answer form once and in its multiple-choice form
    `copies` times, each copy with the options in a new order (so the letter must be looked up), the
    reply in `mc_order` (`study_mc`)."""
    if copies < 1:
        raise ValueError(f"copies must be ≥ 1, got {copies}")
    rng = np.random.default_rng(seed)
    samples = []
    for name in QUESTION_FILES:
        path = split / name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: the world split has no {name}; render it with `videollm data synth`"
            )
        for record in _read_jsonl(path):
            context = record["answer_sentence"]
            question = record["question"]
            samples.append(
                _sample(
                    f"{record['id']}_text_short",
                    f"{context}\n{question}\n{SHORT_ANSWER_PROMPT}",
                    record["answer"],
                    record,
                )
            )
            for k in range(copies):
                options = list(record["candidates"])
                if k:  # the first copy keeps the world's own order
                    options = [options[i] for i in rng.permutation(len(options))]
                letter = string.ascii_uppercase[options.index(record["answer"])]
                samples.append(
                    _sample(
                        f"{record['id']}_text_mc{k}",
                        f"{context}\n{mc_prompt(question, options)}",
                        mc_reply(letter, record["answer"], mc_order),
                        record,
                    )
                )
    return samples
