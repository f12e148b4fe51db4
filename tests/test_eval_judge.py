"""The open-ended judge: prompt bytes, reply parsing, aggregation, the cache, and runs against a real judge
server (`videollm serve` on a tiny random model: it replies, but never in the judge's format)."""

from __future__ import annotations

import json
import threading

import pytest

from tests.eval_servers import OFFLINE, Server, tiny_checkpoint, tiny_servers
from videollm.eval.judge import (
    UNPARSEABLE,
    Judge,
    JudgeCache,
    Judgement,
    Verdict,
    aggregate,
    cache_key,
    judge_messages,
    normalize_base_url,
    parse_verdict,
)
from videollm.serve import launch

# The strings as they appear in mbzuai-oryx/Video-ChatGPT quantitative_evaluation/evaluate_activitynet_qa.py
# (identical in PKU-YuanGroup/Video-LLaVA videollava/eval/video/eval_video_qa.py and lmms-eval 0.7.3
# lmms_eval/tasks/activitynetqa/utils.py get_eval), copied here so a drift in ours fails the test.
VIDEO_CHATGPT_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for question-answer pairs. "
    "Your task is to compare the predicted answer with the correct answer and determine if they match meaningfully. Here's how you can accomplish the task:"
    "------"
    "##INSTRUCTIONS: "
    "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Evaluate the correctness of the prediction compared to the answer."
)


def video_chatgpt_user(question: str, answer: str, pred: str) -> str:
    return (
        "Please evaluate the following video-based question-answer pair:\n\n"
        f"Question: {question}\n"
        f"Correct Answer: {answer}\n"
        f"Predicted Answer: {pred}\n\n"
        "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, with 5 indicating the highest meaningful match. "
        "Please generate the response in the form of a Python dictionary string with keys 'pred' and 'score', where value of 'pred' is  a string of 'yes' or 'no' and value of 'score' is in INTEGER, not STRING."
        "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
        "For example, your response should look like this: {'pred': 'yes', 'score': 4.8}."
    )


@pytest.mark.parametrize(
    ("question", "answer", "pred"),
    [
        ("what is the man doing?", "cooking", "He is cooking pasta."),
        ("is it {braced}?", "{'pred': 'no'}", "a {weird} 'quote' \"and\" \\ backslash\nnewline"),
        ("", "", ""),
    ],
)
def test_prompt_is_byte_identical_to_video_chatgpt(question, answer, pred):
    messages = judge_messages(question, answer, pred)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"].encode() == VIDEO_CHATGPT_SYSTEM.encode()
    assert messages[1]["content"].encode() == video_chatgpt_user(question, answer, pred).encode()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("{'pred': 'yes', 'score': 4}", Verdict("yes", 4)),
        ("{'pred': 'no', 'score': 0}", Verdict("no", 0)),
        ("{'pred': 'yes', 'score': 4.8}", Verdict("yes", 4)),  # int() as lmms-eval: truncates
        ("{'pred': 'Yes', 'score': '3'}", Verdict("yes", 3)),  # score as STRING anyway
        ('{"pred": "no", "score": 2}', Verdict("no", 2)),  # JSON quotes
        ("```python\n{'pred': 'yes', 'score': 5}\n```", Verdict("yes", 5)),  # code fence
        ("Sure! Here is my evaluation: {'pred': 'no', 'score': 1} Hope it helps.", Verdict("no", 1)),
        ("{'pred': 'yes.', 'score': 5}", Verdict("yes", 5)),
        ("{'score': 2, 'pred': 'no'}", Verdict("no", 2)),
        ("pred: yes, score: 4", Verdict("yes", 4)),  # no braces at all
        ('{"pred": "yes", "score": 5, }', Verdict("yes", 5)),  # trailing comma: literal_eval accepts it
        ("{'pred': 'yes', 'score': 4.8", Verdict("yes", 4)),  # truncated by max_tokens: regex fallback
    ],
)
def test_parse_tolerant_replies(reply, expected):
    assert parse_verdict(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "I cannot evaluate this.",
        "{'pred': 'maybe', 'score': 3}",
        "{'pred': 'yes'}",
        "{'score': 5}",
        "{'pred': 'yes', 'score': 'high'}",
    ],
)
def test_parse_failures_are_none(reply):
    assert parse_verdict(reply) is None


def test_aggregate_counts_failures_apart_and_never_as_no():
    j = [
        Judgement("a", Verdict("yes", 5), "r"),
        Judgement("b", Verdict("no", 1), "r"),
        Judgement("c", Verdict("yes", 3), "r"),
        Judgement("d", None, "garbage", "unparseable reply"),
        None,  # not judged (no prediction)
    ]
    out = aggregate(j)
    assert (
        out["judge_yes"] == 2 and out["judge_no"] == 1 and out["judge_failures"] == 1 and out["judged"] == 3
    )
    assert out["judge_accuracy"] == pytest.approx(100 * 2 / 3)  # yes / (yes + no): Video-ChatGPT
    assert out["judge_score"] == pytest.approx((5 + 1 + 3) / 3)  # failures not scored 0
    assert aggregate([])["judge_accuracy"] is None


def test_base_url_forms():
    for url in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/chat/completions"):
        assert normalize_base_url(url) == "http://h:1/v1"


@pytest.fixture(scope="module")
def judge_server(tmp_path_factory) -> Server:
    tmp = tmp_path_factory.mktemp("judge")
    with tiny_servers(tiny_checkpoint(tmp / "tiny"), tmp, name="judge-tiny") as (server,):
        yield server


TRIPLES = [
    ("what color is the ball?", "red", "red"),
    ("what color is the ball?", "red", "blue"),
    ("what is moving?", "a red circle", "the circle"),
]


def test_replies_out_of_format_are_failures_and_cached(judge_server, tmp_path):
    """A real judge that does not answer in the format: each reply is a judge failure (never "no", 0), kept
    with its text; a second judge on the same cache asks nothing, and at temperature 0 asking again (no cache)
    gets the same replies, which is why unparseable replies are cached like verdicts."""
    asked = judge_server.chat_requests()
    judge = Judge(
        judge_server.url,
        "judge-tiny",
        cache=tmp_path / "judge.jsonl",
        retries=1,
        concurrency=1,
        max_tokens=16,
    )
    first = judge.judge_many(TRIPLES)
    assert judge_server.chat_requests() - asked == 3
    for j, triple in zip(first, TRIPLES, strict=True):
        assert j.verdict is None and j.error == UNPARSEABLE and j.reply.strip()
        assert j.key == cache_key("judge-tiny", judge_messages(*triple), 0.0) and j.model == "judge-tiny"
    assert len({j.reply for j in first}) == 3  # the replies depend on what the judge was sent
    assert judge.describe()["served_models"] == ["judge-tiny"] and judge.describe()["temperature"] == 0
    assert aggregate(first) == {
        "judge_accuracy": None,
        "judge_score": None,
        "judge_yes": 0,
        "judge_no": 0,
        "judge_failures": 3,
        "judged": 0,
    }

    again = Judge(judge_server.url, "judge-tiny", cache=tmp_path / "judge.jsonl", retries=1)
    assert again.judge_many(TRIPLES) == first
    assert judge_server.chat_requests() - asked == 3
    assert again.describe()["served_models"] == ["judge-tiny"]

    fresh = Judge(judge_server.url, "judge-tiny", retries=1, concurrency=1, max_tokens=16).judge_many(TRIPLES)
    assert [j.reply for j in fresh] == [j.reply for j in first]
    assert judge_server.chat_requests() - asked == 6


def test_a_wrong_judge_model_name_is_a_counted_failure_not_cached(judge_server, tmp_path):
    judge = Judge(judge_server.url, "gpt-9", cache=tmp_path / "judge.jsonl", retries=2, backoff_s=0.0)
    (j,) = judge.judge_many(TRIPLES[:1])
    assert j.verdict is None and "404" in j.error and "gpt-9" in j.error
    assert aggregate([j])["judge_failures"] == 1
    assert len((tmp_path / "judge.jsonl").read_text().splitlines()) == 1  # logged ...
    assert JudgeCache(tmp_path / "judge.jsonl").entries == {}  # ... but asked again next time


def test_cached_replies_are_read_by_the_current_parser(tmp_path):
    """A reply an older, stricter parser could not read is stored as a failure; reused, it is parsed again."""
    messages = judge_messages("q", "a", "a")
    key = cache_key("j", messages, 0.0)
    old = Judgement(key, None, "Sure! {'pred': 'yes', 'score': 4}", UNPARSEABLE, "j")
    (tmp_path / "judge.jsonl").write_text(json.dumps(old.to_json()) + "\n")
    cached = JudgeCache(tmp_path / "judge.jsonl").get(key)
    assert cached == Judgement(key, Verdict("yes", 4), old.reply, None, "j")


def test_unreachable_judge_is_a_counted_failure(tmp_path):
    judge = Judge(f"http://127.0.0.1:{launch.free_port()}/v1", "j", retries=2, backoff_s=0.0, timeout_s=2)
    (j,) = judge.judge_many([("q", "a", "a")])
    assert j.verdict is None and "Connection" in j.error
    assert aggregate([j])["judge_failures"] == 1


@pytest.mark.slow
def test_judge_retries_with_backoff_until_the_server_is_up(tmp_path):
    """Connection refused while the judge server starts: retried with backoff, then answered."""
    port = launch.free_port()
    judge = Judge(f"http://127.0.0.1:{port}/v1", "judge-tiny", retries=12, backoff_s=0.25, timeout_s=120)
    got: list[Judgement] = []
    asking = threading.Thread(target=lambda: got.append(judge.judge_one(*TRIPLES[0])))
    asking.start()
    model, log = tiny_checkpoint(tmp_path / "tiny"), tmp_path / "judge.log"
    argv = ["--engine", "transformers", "--model", str(model), "--served-model-name", "judge-tiny"]
    proc = launch.start_server(argv, port, log, env=OFFLINE)
    try:
        launch.wait_ready(proc, port, log, timeout=300)
        asking.join(timeout=600)
        requests = Server(f"http://127.0.0.1:{port}/v1", "judge-tiny", log).chat_requests()
    finally:
        launch.stop_server(proc)
    (j,) = got
    assert j.error == UNPARSEABLE and j.reply and j.model == "judge-tiny"
    assert requests == 1  # the tries before it never reached a server
