"""The open-ended QA judge: Video-ChatGPT's GPT-assisted evaluation, against any OpenAI-compatible endpoint.

The prompt is byte for byte the one of Video-ChatGPT
(quantitative_evaluation/evaluate_activitynet_qa.py), which Video-LLaVA
(videollava/eval/video/eval_video_qa.py) and lmms-eval 0.7.3 (tasks/activitynetqa/utils.py
`get_eval`) send unchanged; temperature 0 as lmms-eval sends it. Scoring follows those scripts:
accuracy = yes / (yes + no), average score = mean of the integer scores.

Two things differ on purpose, and both are reported:
- a reply that cannot be parsed, or a request that fails after retries, is a *judge failure*:
  counted separately and left out of accuracy and score (lmms-eval scores it "no", 0, which
  silently deflates results);
- every reply is cached (JSONL keyed by judge model + exact messages), unparseable ones too (the
  judge's answer at temperature 0; re-parsed on reuse, so a more tolerant parser applies to old
  replies), so re-scoring costs nothing and a pinned judge gives the same numbers again. Only
  requests that got no reply (network errors, 4xx/5xx, empty replies) are asked again.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

JUDGE_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for question-answer pairs. "
    "Your task is to compare the predicted answer with the correct answer and determine if they match meaningfully. Here's how you can accomplish the task:"
    "------"
    "##INSTRUCTIONS: "
    "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Evaluate the correctness of the prediction compared to the answer."
)

JUDGE_USER = (
    "Please evaluate the following video-based question-answer pair:\n\n"
    "Question: {question}\n"
    "Correct Answer: {answer}\n"
    "Predicted Answer: {pred}\n\n"
    "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, with 5 indicating the highest meaningful match. "
    "Please generate the response in the form of a Python dictionary string with keys 'pred' and 'score', where value of 'pred' is  a string of 'yes' or 'no' and value of 'score' is in INTEGER, not STRING."
    "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
    "For example, your response should look like this: {{'pred': 'yes', 'score': 4.8}}."
)


def judge_messages(question: str, answer: str, pred: str) -> list[dict[str, str]]:
    """The two chat messages Video-ChatGPT sends for one QA pair."""
    user = JUDGE_USER.format(question=question, answer=answer, pred=pred)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class Verdict:
    pred: str  # "yes" | "no"
    score: int


_PRED = re.compile(r"""['"]?pred['"]?\s*[:=]\s*['"]?\s*(yes|no)\b""", re.IGNORECASE)
_SCORE = re.compile(r"""['"]?score['"]?\s*[:=]\s*['"]?\s*(-?\d+(?:\.\d+)?)""", re.IGNORECASE)


def _yes_no(value: object) -> str | None:
    text = str(value).lower()
    if "yes" in text:  # lmms-eval's order: "yes" first, then "no"
        return "yes"
    if "no" in text:
        return "no"
    return None


def parse_verdict(reply: str) -> Verdict | None:
    """A judge reply → Verdict, or None when it holds no yes/no and integer score.

    Accepts everything lmms-eval's `parse_score` accepts (the first `{...}` evaluated as a Python
    literal; `score` through `int()`, so 4.8 → 4 and "4" → 4; "yes"/"no" found inside `pred`) and
    more: JSON with `true`/`false`, code fences, text around the dict, and `pred: yes, score: 4`
    without braces.
    """
    if not reply or not reply.strip():
        return None
    if "{" in reply:
        body = "{" + reply.split("{", 1)[1].split("}", 1)[0] + "}"
        for parse in (ast.literal_eval, json.loads):
            try:
                d = parse(body)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(d, dict) and "pred" in d and "score" in d:
                pred = _yes_no(d["pred"])
                try:
                    score = int(d["score"]) if not isinstance(d["score"], str) else int(float(d["score"]))
                except (TypeError, ValueError):
                    break
                if pred is not None:
                    return Verdict(pred, score)
                break
    pred_m, score_m = _PRED.search(reply), _SCORE.search(reply)
    if pred_m and score_m:
        return Verdict(pred_m.group(1).lower(), int(float(score_m.group(1))))
    return None


UNPARSEABLE = "unparseable reply"


@dataclass(frozen=True)
class Judgement:
    """One judged item: the verdict, or `error` (a judge failure) with the raw reply kept."""

    key: str
    verdict: Verdict | None
    reply: str
    error: str | None = None
    model: str = ""  # the model name the endpoint reported back

    def to_json(self) -> dict:
        d = asdict(self)
        d["verdict"] = asdict(self.verdict) if self.verdict else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> Judgement:
        v = d.get("verdict")
        return cls(
            d["key"], Verdict(**v) if v else None, d.get("reply", ""), d.get("error"), d.get("model", "")
        )

    @property
    def answered(self) -> bool:
        """The judge replied (parseable or not): worth caching; otherwise the request failed."""
        return bool(self.reply) and self.error in (None, UNPARSEABLE)

    def reparsed(self) -> Judgement:
        """The same reply read by today's parser."""
        verdict = parse_verdict(self.reply)
        return Judgement(self.key, verdict, self.reply, None if verdict else UNPARSEABLE, self.model)


def cache_key(model: str, messages: Sequence[dict], temperature: float) -> str:
    blob = json.dumps(
        {"model": model, "messages": list(messages), "temperature": temperature}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class JudgeCache:
    """Append-only JSONL of judgements; every reply is reused, failed requests are asked again."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self.entries: dict[str, Judgement] = {}
        if self.path and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    j = Judgement.from_json(json.loads(line))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line torn by a kill: ignore it, the item is judged again
                if j.answered:
                    self.entries[j.key] = j

    def get(self, key: str) -> Judgement | None:
        j = self.entries.get(key)
        return j.reparsed() if j is not None else None

    def put(self, j: Judgement) -> None:
        with self._lock:
            if j.answered:
                self.entries[j.key] = j
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(j.to_json(), ensure_ascii=False) + "\n")


class Judge:
    """Judges QA pairs through an OpenAI-compatible chat endpoint, with retries, backoff and a cache.

    `endpoint` is a base URL (`http://host:port/v1`); `model` the judge model name. The model name
    the server reports in its replies is recorded too (`served_models`), for the provenance.
    """

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key: str | None = None,
        cache: str | Path | None = None,
        max_tokens: int = 64,
        retries: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 60.0,
        concurrency: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from openai import OpenAI

        self.endpoint = normalize_base_url(endpoint)
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = 0.0
        self.retries = max(1, retries)
        self.backoff_s = backoff_s
        self.concurrency = max(1, concurrency)
        self._sleep = sleep
        self.client = OpenAI(
            base_url=self.endpoint, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=0
        )
        self.cache = JudgeCache(cache)
        self.served_models: set[str] = set()

    def describe(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "model": self.model,
            "served_models": sorted(self.served_models),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "prompt": "Video-ChatGPT quantitative_evaluation/evaluate_activitynet_qa.py (= lmms-eval activitynetqa get_eval)",
        }

    def judge_one(self, question: str, answer: str, pred: str) -> Judgement:
        messages = judge_messages(question, answer, pred)
        key = cache_key(self.model, messages, self.temperature)
        cached = self.cache.get(key)
        if cached is not None:
            if cached.model:
                self.served_models.add(cached.model)
            return cached
        reply, error, served = "", None, ""
        for attempt in range(self.retries):
            try:
                response = self.client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                )
                reply = (response.choices[0].message.content or "").strip()
                served = response.model or ""
                if reply:
                    error = None
                    break
                error = "empty reply"
            except Exception as e:  # network errors, 4xx/5xx: retried, then a counted failure
                error = f"{type(e).__name__}: {e}"
            if attempt < self.retries - 1:
                self._sleep(self.backoff_s * (2**attempt))
        verdict = parse_verdict(reply) if error is None else None
        if error is None and verdict is None:
            error = UNPARSEABLE
        if served:
            self.served_models.add(served)
        judgement = Judgement(key, verdict, reply, error, served)
        self.cache.put(judgement)
        return judgement

    def judge_many(
        self, triples: Sequence[tuple[str, str, str]], progress: Callable[[], None] | None = None
    ) -> list[Judgement]:
        """Judge (question, answer, pred) triples, `concurrency` requests in flight."""

        def run(t: tuple[str, str, str]) -> Judgement:
            j = self.judge_one(*t)
            if progress:
                progress()
            return j

        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(run, triples))


def normalize_base_url(url: str) -> str:
    """`http://h:p`, `http://h:p/v1` or `.../v1/chat/completions` → `http://h:p/v1`."""
    url = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    if not url.endswith("/v1"):
        url += "/v1"
    return url


def aggregate(judgements: Sequence[Judgement | None]) -> dict:
    """Video-ChatGPT's accuracy and average score over the judged items; failures counted apart.

    `None` entries are items that were not judged (no prediction: a missing video).
    """
    done = [j for j in judgements if j is not None]
    ok = [j.verdict for j in done if j.verdict is not None]
    yes = sum(v.pred == "yes" for v in ok)
    no = sum(v.pred == "no" for v in ok)
    return {
        "judge_accuracy": 100.0 * yes / (yes + no) if yes + no else None,
        "judge_score": sum(v.score for v in ok) / len(ok) if ok else None,
        "judge_yes": yes,
        "judge_no": no,
        "judge_failures": len(done) - len(ok),
        "judged": len(ok),
    }
