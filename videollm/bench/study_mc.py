"""The study's multiple-choice replies: the option's text first, then its letter.

The world writes a multiple-choice reply as lmms-eval's MVBench answers read, letter first: "(B) up".
To write the letter first a model must already know the answer and find its option in one step;
the study's tiny LM (4 layers, trained for minutes) never learned that from images: after its image
stage it answered colour/shape/size/count questions in the open form (QA static 60.7 %) and barely
above chance in the multiple-choice form (MC static 42.9 %, chance 34.5), and its video cells' MC
replies collapsed onto one or two letters. Written answer first ("up (B)") the letter is a copy of the
one in front of the option just written, which a small transformer learns readily: on the same settings
and 16 held-out clips the image model's MC static rose from 42.9 % to 50.0 % (measured 2026-11-30).
Scoring is unchanged: MVBench's extraction (`videollm.eval.choices`) takes the standalone letter
wherever it stands in the reply.
"""

from __future__ import annotations

import copy
import string

from videollm.data.formats import mc_reply


def reorder_mc(records: list[dict], order: str) -> list[dict]:
    """LLaVA records with every multiple-choice reply (`form` "mc", as the world writes them) in `order`;
    other records are returned as they are."""
    if order == "letter_first":
        return records
    out = []
    for record in records:
        if record.get("form") != "mc":
            out.append(record)
            continue
        record = copy.deepcopy(record)
        reply = record["conversations"][1]
        letter, answer = _split(reply["value"], record.get("id", "?"))
        reply["value"] = mc_reply(letter, answer, order)
        out.append(record)
    return out


def _split(reply: str, where: str) -> tuple[str, str]:
    """('B', 'up') of the world's reply '(B) up'."""
    if len(reply) < 4 or reply[0] != "(" or reply[2:4] != ") " or reply[1] not in string.ascii_uppercase:
        raise ValueError(
            f"{where}: multiple-choice reply {reply!r} is not the world's '(LETTER) answer' form"
        )
    return reply[1], reply[4:]
