"""Multi-turn video samples for the study's video stage: one video, several of its questions.

On CPU the vision tower's pass over a clip's frames is most of a training step (measured: 8 frames ×
64 patches, batch 4: ~150 ms, the 4-layer LM a small part of it), and the world renders each
question of a clip as its own sample, three times (open, short-answer and multiple-choice forms).
Packing a clip's questions into one conversation, as LLaVA's instruction data does, pays for the
tower once per clip instead of once per question: the same supervision in a third of the passes, or
many more questions in a cell's fixed step budget. Each question appears once per conversation
(its forms rotate across the three conversations of a clip), so no turn's answer is another turn's
question; captions stay single-turn (a caption would answer the questions after it).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

FORMS = ("open", "short", "mc")  # the world's forms of one question (videollm.data.formats._qa_samples)


def _question_id(record: dict) -> str:
    return record["id"].rsplit("_", 1)[0]


def pack_turns(
    questions: list[dict], captions: list[dict], max_turns: int, captions_per_video: int, seed: int
) -> list[dict]:
    """LLaVA records: per video, three conversations of its questions (every question once each, in
    a shuffled order and a rotating form, at most `max_turns` a conversation), and
    `captions_per_video` of its single-turn caption samples."""
    if max_turns < 1 or captions_per_video < 0:
        raise ValueError(
            f"max_turns must be >= 1 and captions_per_video >= 0, got {max_turns}, {captions_per_video}"
        )
    rng = np.random.default_rng(seed)
    by_video: dict[str, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in questions:
        by_video[r["video"]][_question_id(r)][r["form"]] = r
    caption_by_video: dict[str, list[dict]] = defaultdict(list)
    for r in captions:
        caption_by_video[r["video"]].append(r)
    out = []
    for video, asked in by_video.items():
        qids = list(asked)
        for round_ in range(len(FORMS)):
            chosen = []
            for k, qid in enumerate(qids):
                forms = asked[qid]
                form = FORMS[(k + round_) % len(FORMS)]
                chosen.append(forms[form])
            order = rng.permutation(len(chosen))
            for start in range(0, len(order), max_turns):
                part = [chosen[i] for i in order[start : start + max_turns]]
                turns = []
                for i, record in enumerate(part):
                    human, reply = record["conversations"][:2]
                    prompt = human["value"] if i == 0 else human["value"].replace("<video>\n", "", 1)
                    turns += [{"from": "human", "value": prompt}, dict(reply)]
                out.append(
                    {
                        "id": f"{part[0]['id']}_r{round_}_{start // max_turns}",
                        "video": video,
                        "conversations": turns,
                    }
                )
        picked = caption_by_video.get(video, [])
        for i in rng.permutation(len(picked))[:captions_per_video]:
            out.append(picked[i])
    return out
