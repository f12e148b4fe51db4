"""Multiple-choice answer extraction: lmms-eval 0.7.3's rule for each task, reproduced exactly.

The rules differ per task, and published numbers depend on them, so each is a faithful port:

- `mvbench`: lmms_eval/tasks/mvbench/utils.py `mcq_acc.process` (VQA-style punctuation
  handling, then a standalone letter A-E); accuracy over non-empty predictions, as
  `mvbench_aggregate_results` counts them.
- `videomme`: lmms_eval/tasks/_task_utils/mcq_extract.py `extract_mcq_answer` with choices A-D
  (format-priority ranking, last occurrence wins).
- `nextqa`: lmms_eval/tasks/nextqa/utils.py `parse_multi_choice_response` (MMMU's parser; the
  last candidate wins).
- `egoschema`: lmms_eval/tasks/egoschema/utils.py `parse_multi_choice_response` (a variant: all
  three patterns collected, the first occurrence wins).

Where lmms-eval falls back to `random.choice` (nextqa, egoschema: nothing found in the reply) we do
too, but seeded per item so a re-score gives the same number, and the result is flagged
`extracted=False` so reports count the replies with no extractable answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from videollm.eval.items import LETTERS


@dataclass(frozen=True)
class Choice:
    """The letter taken from a reply; `extracted` False when the reply held none (a seeded guess or "")."""

    letter: str
    extracted: bool


# --- mvbench ----------------------------------------------------------------------------------

_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
_PUNCT = [
    ";",
    r"/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_OPTION = re.compile(r"^([A-E])\.\s*(.+)$", re.IGNORECASE)
_LETTER = re.compile(r"\b([A-E])\b", re.IGNORECASE)


def _process_punctuation(in_text: str) -> str:
    out_text = in_text
    for p in _PUNCT:
        if (p + " " in in_text or " " + p in in_text) or (re.search(_COMMA_STRIP, in_text) is not None):
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    # lmms-eval passes re.UNICODE as `count` here (= 32 replacements); kept for identical results.
    return _PERIOD_STRIP.sub("", out_text, re.UNICODE)


def mvbench_process(answer: str) -> str:
    """`mcq_acc.process`: an uppercase letter A-E when one is found, else the normalised text."""
    match = _OPTION.match(answer.strip())
    if match:
        return match.group(1).upper()
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    answer = _process_punctuation(answer)
    answer = answer.strip("'").strip('"').strip(")").strip("(").strip().lower()
    letter = _LETTER.search(answer)
    if letter:
        return letter.group(1).upper()
    return answer


# --- videomme (shared mcq_extract) ---------------------------------------------------------------

_ANSWER_PHRASES = [
    "the answer is",
    "answer is",
    "the correct answer is",
    "correct answer is",
    "the best answer is",
    "best answer is",
    "the correct option is",
    "correct option is",
    "the best option is",
    "best option is",
    "the choice is",
    "choice is",
    "the correct choice is",
    "correct choice is",
    "i choose",
    "i select",
    "i pick",
    "my answer is",
    "my choice is",
    "옵션",
    "정답은",
    "답은",
    "답:",
    "答案是",
    "答案为",
    "选",
    "答えは",
]
_FORMAT_PRIORITY = {
    "start": 10,
    "end": 9,
    "phrase": 7,
    "parentheses": 6,
    "period": 5,
    "colon": 4,
    "right_paren": 3,
    "space": 2,
    "fallback": 0,
}


def extract_mcq_answer(response: str, choices: Sequence[str] | None = None) -> str:
    """lmms-eval's `extract_mcq_answer`: the best-ranked letter, or "" when there is none."""
    if not response or not response.strip():
        return ""
    all_choices = list(choices or ["A", "B", "C", "D", "E", "F", "G", "H"])
    text = response.strip()
    for char in [",", ".", "!", "?", ";", ":", "'", '"']:
        text = text.strip(char)
    text = " " + text + " "
    candidates: list[tuple[str, int, str]] = []
    for fmt, pattern in (
        ("parentheses", "({})"),
        ("period", "{}."),
        ("colon", "{}:"),
        ("right_paren", "{})"),
        ("space", "{} "),
    ):
        for ch in all_choices:
            if pattern.format(ch) in text:
                candidates.append((ch, text.rfind(pattern.format(ch)), fmt))
    text_lower = text.lower()
    for phrase in _ANSWER_PHRASES:
        idx = text_lower.find(phrase)
        if idx != -1:
            after = idx + len(phrase)
            for ch in all_choices:
                ch_pos = text.find(ch, after)
                if ch_pos != -1:
                    candidates.append((ch, ch_pos, "phrase"))
    stripped = text.strip()
    for ch in all_choices:
        if stripped.startswith(ch) and (len(stripped) == 1 or not stripped[1].isalpha()):
            candidates.append((ch, 0, "start"))
    for ch in all_choices:
        if stripped.endswith(ch) and (len(stripped) == 1 or not stripped[-2].isalpha()):
            candidates.append((ch, len(text) - 1, "end"))
    if not candidates:
        for ch in all_choices:
            if ch in text:
                candidates.append((ch, text.rfind(ch), "fallback"))
    if not candidates:
        return ""
    candidates.sort(key=lambda x: (_FORMAT_PRIORITY.get(x[2], 0), x[1]), reverse=True)
    return candidates[0][0]


# --- nextqa / egoschema (MMMU-style parsers) ----------------------------------------------------


def _strip_response(response: str) -> str:
    for char in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(char)
    return " " + response + " "


def _letters_or_answers(
    letters: list[str], response: str, index2ans: dict[str, str]
) -> tuple[list[str], bool]:
    """(candidates, whether they are letters): the letters found, else both parsers' last resort before
    guessing, the options whose answer text a long (> 5 words) reply contains."""
    if letters:
        return letters, True
    if len(response.split()) <= 5:
        return [], False
    return [index for index, ans in index2ans.items() if ans.lower() in response.lower()], False


def nextqa_parse(response: str, index2ans: dict[str, str], rng: random.Random) -> Choice:
    """nextqa's `parse_multi_choice_response` (random fallback seeded by the caller)."""
    all_choices = list(index2ans)
    response = _strip_response(response)
    ans_with_brack = False
    candidates = []
    for choice in all_choices:
        if f"({choice})" in response:
            candidates.append(choice)
            ans_with_brack = True
    if not candidates:
        candidates = [c for c in all_choices if f"{c} " in response]
    if not candidates:
        candidates = [c for c in all_choices if f"{c}." in response]
    candidates, index_ans = _letters_or_answers(candidates, response, index2ans)
    if not candidates:
        return Choice(rng.choice(all_choices), extracted=False)
    if len(candidates) == 1:
        return Choice(candidates[0], True)
    if index_ans:
        pattern = "({})" if ans_with_brack else " {} "
        starts = [response.rfind(pattern.format(c)) for c in candidates]
    else:
        starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    return Choice(candidates[int(np.argmax(starts))], True)


def egoschema_parse(response: str, index2ans: dict[str, str], rng: random.Random) -> Choice:
    """egoschema's `parse_multi_choice_response`: every pattern collected, the earliest wins."""
    all_choices = list(index2ans)
    response = _strip_response(response)
    candidates = [f"({c})" for c in all_choices if f"({c})" in response]
    candidates += [f"{c} " for c in all_choices if f"{c} " in response]
    candidates += [f"{c}." for c in all_choices if f"{c}." in response]
    candidates, index_ans = _letters_or_answers(candidates, response, index2ans)
    if not candidates:
        return Choice(rng.choice(all_choices), extracted=False)
    if len(candidates) == 1:
        picked = candidates[0]
    else:
        if index_ans:
            starts = [response.rfind(c) for c in candidates]
        else:
            starts = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
        picked = candidates[int(np.argmin(starts))]
    return Choice(picked.replace("(", "").replace(")", "").replace(".", "").strip(), True)


# --- dispatch -------------------------------------------------------------------------------------

RULES = ("mvbench", "videomme", "nextqa", "egoschema")


def extract_choice(rule: str, response: str, options: Sequence[str], *, seed_key: str = "") -> Choice:
    """The option letter a reply gives under a task's rule. `options` are the option texts shown.

    `seed_key` seeds the random fallback of nextqa/egoschema (use run seed + item id).
    """
    letters = list(LETTERS[: len(options)])
    if rule == "mvbench":
        got = mvbench_process(response)
        return Choice(got, True) if len(got) == 1 and got in "ABCDE" else Choice("", False)
    if rule == "videomme":
        got = extract_mcq_answer(response, choices=["A", "B", "C", "D"])
        return Choice(got, bool(got))
    rng = random.Random(f"{seed_key}")
    if rule == "nextqa":
        return nextqa_parse(response, dict(zip(letters, [o.strip() for o in options], strict=True)), rng)
    if rule == "egoschema":
        # lmms-eval matches the option strings as shown ("A. ..."), see get_multi_choice_info
        shown = [f"{letter}. {o}" for letter, o in zip(letters, options, strict=True)]
        return egoschema_parse(response, dict(zip(letters, [s.strip() for s in shown], strict=True)), rng)
    raise ValueError(f"unknown answer-extraction rule {rule!r}; known: {RULES}")
