"""`EvalItem`: one question (or one video to caption) of a benchmark, as every loader returns it.

Loaders turn each benchmark's own files into these; the runner, the scorers and the reports only
ever see `EvalItem`s, so a new benchmark is a new loader and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["open_ended", "multiple_choice", "caption"]

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class EvalItem:
    """One unit of evaluation.

    `prompt` is the exact text sent with the video (the benchmark's prompt template applied);
    `answer` the reference: a short answer (open-ended), the correct option letter (multiple
    choice) or "" for captions, whose references are in `references`. `video` is the resolved file
    (None when it could not be found: `video_error` says where it was looked for). `groups` holds
    the breakdowns a report shows (e.g. {"qtype": "what"}, {"subtask": "action_antonym"}).
    """

    task: str
    id: str
    prompt: str
    answer: str = ""
    question: str = ""
    video: Path | None = None
    video_name: str = ""
    video_error: str | None = None
    options: tuple[str, ...] = ()  # MC option texts, in letter order (no "A." prefix)
    references: tuple[str, ...] = ()  # captions
    start: float | None = None  # segment bounds in seconds (MVBench)
    end: float | None = None
    groups: dict[str, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def letters(self) -> list[str]:
        return list(LETTERS[: len(self.options)])
