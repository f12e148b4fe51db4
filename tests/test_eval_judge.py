"""The open-ended judge: prompt bytes, reply parsing, aggregation, and a run against a real local server."""

from __future__ import annotations

import pytest

from tests.eval_servers import JudgeBehaviour, judge_app, serve
from videollm.eval.judge import (
    Judge,
    JudgeCache,
    Judgement,
    Verdict,
    aggregate,
    judge_messages,
    normalize_base_url,
    parse_verdict,
)

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


def test_judge_against_local_server_retries_caches_and_counts_failures(tmp_path):
    behaviour = JudgeBehaviour(fail_first=2, garbage_for=("GARBAGE",))
    with serve(judge_app(behaviour)) as url:
        judge = Judge(
            url, "judge-test-1", cache=tmp_path / "judge.jsonl", retries=4, backoff_s=0.01, concurrency=3
        )
        triples = [
            ("what color is the ball?", "red", "red"),
            ("what color is the ball?", "red", "blue"),
            ("what is moving?", "a red circle", "the circle"),
            ("what is moving?", "a red circle", "GARBAGE"),
        ]
        first = judge.judge_many(triples)
        assert [j.verdict for j in first] == [Verdict("yes", 5), Verdict("no", 1), Verdict("yes", 3), None]
        assert first[3].error == "unparseable reply" and first[3].reply.startswith("I am not able")
        assert len(behaviour.requests) == 2 + 4  # two 500s retried
        assert all(r["temperature"] == 0 for r in behaviour.requests)
        assert all(r["model"] == "judge-test-1" for r in behaviour.requests)
        assert judge.describe()["served_models"] == ["judge-test-1"]

        # a second judge on the same cache re-asks only the failure
        again = Judge(url, "judge-test-1", cache=tmp_path / "judge.jsonl", retries=1, backoff_s=0.01)
        second = again.judge_many(triples)
        assert [j.verdict for j in second] == [j.verdict for j in first]
        assert len(behaviour.requests) == 6 + 1
    assert len(JudgeCache(tmp_path / "judge.jsonl").entries) == 3


def test_unreachable_judge_is_a_counted_failure(tmp_path):
    from tests.eval_servers import free_port

    judge = Judge(f"http://127.0.0.1:{free_port()}/v1", "j", retries=2, backoff_s=0.0, timeout_s=2)
    (j,) = judge.judge_many([("q", "a", "a")])
    assert j.verdict is None and "Connection" in j.error
    assert aggregate([j])["judge_failures"] == 1
