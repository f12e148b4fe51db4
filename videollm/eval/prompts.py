"""Multiple-choice prompts exactly as lmms-eval 0.7.3 builds them (`doc_to_text` of each task).

Each function cites the lmms-eval function it reproduces; the tests compare against the strings
those functions return for the same record. Open-ended and caption prompts are plain templates
in the task YAML (`prompt`, `pre_prompt`, `post_prompt`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from videollm.eval.items import LETTERS


def mvbench_prompt(question: str, candidates: Sequence[str], post_prompt: str) -> str:
    """lmms_eval/tasks/mvbench/utils.py `mvbench_doc_to_text` (post_prompt "Only give the best option.\\n")."""
    options = "".join(f"({LETTERS[i]}) {c}\n" for i, c in enumerate(candidates))
    return "Question:" + question + "\nOption:\n" + options + post_prompt


VIDEOMME_OPTION_PROMPT = (
    "Select the best answer to the following multiple-choice question based on the video and the "
    "subtitles. Respond with only the letter (A, B, C, or D) of the correct option."
)


def videomme_prompt(question: str, options: Sequence[str], post_prompt: str) -> str:
    """lmms_eval/tasks/videomme/utils.py `videomme_doc_to_text` (options already "A. ..." strings)."""
    body = question + "\n" + "\n".join(options)
    return VIDEOMME_OPTION_PROMPT + "\n" + body + "\n" + post_prompt


def videomme_subtitle_prompt(question: str, options: Sequence[str], subtitle: str | None) -> str:
    """`videomme_doc_to_text_subtitle`: subtitles first; the post prompt is fixed there.

    `subtitle` None means the video has no .srt file ("No subtitles available"); "" means the file
    exists but nothing falls on the sampled frames (lmms-eval then shows nothing).
    """
    subtitles_prompt = "This video's subtitles are listed below: \n"
    body = question + "\n" + "\n".join(options)
    return (
        subtitles_prompt
        + ("No subtitles available" if subtitle is None else subtitle)
        + "\n"
        + VIDEOMME_OPTION_PROMPT
        + "\n"
        + body
        + "\n"
        + "The best answer is:"
    )


def nextqa_mc_prompt(
    question: str, options: Sequence[str], pre_prompt: str = "", post_prompt: str = ""
) -> str:
    """lmms_eval/tasks/nextqa/utils.py `nextqa_doc_to_text_mc` (nextqa_mc_test sets no pre/post prompt)."""
    lines = [question.strip()] + [f"{LETTERS[i]}. {o.strip()}" for i, o in enumerate(options)]
    text = "\n".join(lines)
    return f"{pre_prompt}{text}{post_prompt}"


def egoschema_prompt(question: str, options: Sequence[str], pre_prompt: str, post_prompt: str) -> str:
    """lmms_eval/tasks/egoschema/utils.py `egoschema_doc_to_text` (options are "A. ..." strings)."""
    text = question
    for op in options:
        text += "\n" + op
    return f"{pre_prompt}{text}{post_prompt}"


# --- Video-MME subtitles (lmms_eval/tasks/videomme/utils.py) ---------------------------------

_FONT = re.compile(r'<font color="white" size=".72c">(.*?)</font>')


def _srt_time(value: str) -> float:
    h, m, s_ms = value.split(":")
    s, ms = s_ms.split(",")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    """`load_subtitles`: blocks split on blank lines; (start s, end s, text lines joined by spaces)."""
    subs = {}
    for section in text.split("\n\n"):
        if section.strip():
            lines = section.split("\n")
            if len(lines) >= 3:
                start, end = lines[1].split(" --> ")
                subs[(_srt_time(start), _srt_time(end))] = " ".join(lines[2:])
    return [(s, e, t) for (s, e), t in subs.items()]


def videomme_subtitle(srt_text: str, fps: float, total_frames: int, frame_num: int) -> str:
    """The subtitle lines shown at `frame_num` uniformly sampled frames, as lmms-eval selects them.

    Reproduces `extract_subtitles` + the selection in `videomme_doc_to_text_subtitle`: frame
    boundaries `int(t * fps)`, `np.linspace(0, total - 1, frame_num, dtype=int)`, the `list(set())`
    order, and the `<font ...>` text extraction of Video-MME's .srt files. One deliberate
    difference: a subtitle block without that font tag contributes its plain text (lmms-eval drops
    it; Video-MME's own files always carry the tag, so on them both agree).
    """
    import numpy as np

    if not srt_text:
        return ""
    blocks = [(int(s * fps), int(e * fps), t) for s, e, t in parse_srt(srt_text)]
    if frame_num == -1:
        frame_num = total_frames
    sampled = np.linspace(0, total_frames - 1, frame_num, dtype=int).tolist()
    picked = []
    for frame_idx in sampled:
        for idx, block in enumerate(blocks):
            if block[0] <= frame_idx < block[1]:
                picked.append(idx)
    picked = list(set(picked))
    texts = []
    for idx in picked:
        found = _FONT.findall(blocks[idx][2])
        if found:
            texts.append(found[0])
        elif "<font" not in blocks[idx][2]:
            texts.append(blocks[idx][2])
    return "\n".join(texts)
