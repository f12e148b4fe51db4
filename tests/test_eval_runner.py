"""The runner end to end over real HTTP against real `videollm serve` servers (tiny random checkpoints, see
tests/eval_servers.py): endpoints round-robin, per-request frames, errors per item, the judge's failures and
cache, re-scoring of predictions made elsewhere (Video-LLaVA, Video-ChatGPT, lmms-eval formats), and resume
after a real kill (slow tier).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openai import OpenAI

from tests.eval_servers import OFFLINE, Server, tiny_checkpoint, tiny_servers
from tests.trainkit import synth_test_split
from videollm.eval.choices import extract_choice
from videollm.eval.cli import main
from videollm.eval.judge import UNPARSEABLE, cache_key, judge_messages
from videollm.eval.loaders import load_items
from videollm.eval.tasks import all_specs
from videollm.eval.textmatch import exact_match

REPO = Path(__file__).resolve().parents[1]
FRAMES_LIMIT = 8  # the servers' --max-frames


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A small synthetic world made by the real `videollm data synth`; returns its test split."""
    return synth_test_split(tmp_path_factory.mktemp("world"), num_test_videos=3, seed=7)


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> list[Server]:
    """Two tiny servers, serving model name "tiny", reading file:// videos anywhere under the test tmp folder."""
    tmp = tmp_path_factory.mktemp("servers")
    limits = ["--frames", "8", "--max-frames", str(FRAMES_LIMIT)]
    with tiny_servers(
        tiny_checkpoint(tmp / "tiny"), tmp, count=2, media_root=tmp_path_factory.getbasetemp(), extra=limits
    ) as started:
        yield started


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _eval(*argv: str) -> int:
    return main([*argv, "--no-progress"])


def _ask_directly(server: Server, video: Path, prompt: str, frames: int, max_tokens: int) -> str:
    """The request the runner sends for one item, sent by hand with the openai client."""
    client = OpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
    response = client.chat.completions.create(
        model=server.name,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "video_url", "video_url": {"url": video.resolve().as_uri()}},
                    {"type": "text", "text": prompt},
                ],
            }
        ],
        max_tokens=max_tokens,
        temperature=0.0,
        seed=0,
        extra_body={"mm_processor_kwargs": {"num_frames": frames}},
    )
    return (response.choices[0].message.content or "").strip()


def test_endpoint_run_round_robin_report_and_errors(world, servers, tmp_path):
    specs = all_specs()
    qa = load_items(specs["synthetic_qa"], world)
    # one video missing (the loader reports it), one not a video (the server refuses it): reported per item
    broken = tmp_path / "world"
    shutil.copytree(world, broken)
    videos = sorted({i.video.relative_to(world) for i in qa})
    (broken / videos[0]).unlink()
    (broken / videos[1]).write_text("this is not an mp4")
    per_video = {v: sum(1 for i in qa if i.video.relative_to(world) == v) for v in videos}
    a, b = servers
    before = [s.chat_requests() for s in servers]
    out = tmp_path / "out"
    argv = ["--endpoint", f"{a.url},{b.url}", "--served-model", "tiny", "--concurrency", "3"]
    rc = _eval(
        "--tasks", "synthetic_qa,synthetic_mc", *argv, "--data-root", str(broken), "--frames", "4",
        "--output", str(out),
    )  # fmt: skip
    assert rc == 0
    # every item with a video file was asked exactly once (a 4xx is not retried), alternately of the two
    sent = [s.chat_requests() - n for s, n in zip(servers, before, strict=True)]
    assert sum(sent) == 2 * (len(qa) - per_video[videos[0]])
    assert abs(sent[0] - sent[1]) <= 1

    results = json.loads((out / "results.json").read_text())
    details = results["videollm"]["details"]
    n_bad = per_video[videos[0]] + per_video[videos[1]]
    for task in ("synthetic_qa", "synthetic_mc"):
        assert details[task]["n"] == len(qa) and details[task]["n_errors"] == n_bad
        assert results["n-samples"][task] == {"original": len(qa), "effective": len(qa)}
    samples = _lines(out / "samples" / "samples_synthetic_qa.jsonl")
    errors = [s["error"] for s in samples if s["error"]]
    assert sum("not found" in e for e in errors) == per_video[videos[0]]
    assert sum("415" in e and "not a video file" in e for e in errors) == per_video[videos[1]]

    # the predictions are the server's replies: the same request sent by hand gets the same text
    preds = {r["id"]: r["prediction"] for r in _lines(out / "predictions" / "synthetic_qa.jsonl")}
    good = [i for i in qa if i.video.relative_to(world) not in videos[:2]]
    assert all(preds[i.id] is not None for i in good)
    assert (
        _ask_directly(a, broken / good[0].video.relative_to(world), good[0].prompt, 4, 16)
        == preds[good[0].id]
    )
    # exact match and its per-type breakdown, recomputed from those replies (errors count as wrong)
    good_ids = {i.id for i in good}
    em = {i.id: exact_match(preds[i.id], i.answer) if i.id in good_ids else 0.0 for i in qa}
    assert details["synthetic_qa"]["exact_match"] == pytest.approx(100 * sum(em.values()) / len(qa))
    for kind, row in details["synthetic_qa"]["by"]["type"].items():
        ids = [i.id for i in qa if i.groups["type"] == kind]
        assert row["n"] == len(ids) and row["exact_match"] == pytest.approx(
            100 * sum(em[x] for x in ids) / len(ids)
        )
    assert set(details["synthetic_qa"]["by"]["type"]) == {"static", "temporal"}
    assert details["synthetic_qa"]["judge"] is None
    assert "judge score absent" in details["synthetic_qa"]["judge_note"]

    # multiple choice: MVBench's rule over the replies; accuracy over the non-empty ones
    mc = load_items(specs["synthetic_mc"], broken)
    mc_preds = {r["id"]: r["prediction"] for r in _lines(out / "predictions" / "synthetic_mc.jsonl")}
    letters = {
        i.id: extract_choice("mvbench", mc_preds[i.id], i.options) for i in mc if mc_preds[i.id] is not None
    }
    answered = [x for x in letters if mc_preds[x] != ""]
    correct = sum(c.letter == i.answer for i in mc if (c := letters.get(i.id)) and c.letter)
    d = details["synthetic_mc"]
    assert d["accuracy"] == pytest.approx(100 * correct / len(answered))
    assert d["n_unextractable"] == sum(not c.extracted for c in letters.values())
    assert results["results"]["synthetic_mc"]["accuracy,none"] == d["accuracy"]

    prov = results["videollm"]["provenance"]
    assert prov["engine"]["served_model"] == "tiny" and prov["engine"]["reported_models"] == ["tiny"]
    assert [m["id"] for m in prov["engine"]["models"]] == ["tiny"]  # what the server says it serves
    assert prov["sampling"]["frames"] == 4 and prov["decoder"]["backend"] == "server-side"
    assert {"torch", "transformers", "decord"} <= set(prov["versions"]) and prov["date"]
    report = (out / "report.md").read_text()
    assert "judge score absent" in report and "| synthetic_mc |" in report
    assert f"synthetic_qa: {n_bad} item(s) had no prediction" in report
    assert (out / "plots" / "accuracy_by_task.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "plots" / "synthetic_mc_by_type.png").exists()

    # the frame setting travels with each request: one over the servers' limit is refused, per item
    over = tmp_path / "over"
    rc = _eval(
        "--tasks", "synthetic_mc", *argv, "--data-root", str(world), "--frames", str(FRAMES_LIMIT + 1),
        "--limit", "2", "--output", str(over),
    )  # fmt: skip
    assert rc == 0
    errors = [s["error"] for s in _lines(over / "samples" / "samples_synthetic_mc.jsonl")]
    assert len(errors) == 2
    assert all(f"413: {FRAMES_LIMIT + 1} frames requested, over this server's limit" in e for e in errors)


def test_judge_failures_are_counted_and_cached_so_rescoring_is_free(world, servers, tmp_path):
    """The tiny model is a real judge that ignores the reply format: every reply is a judge failure, never a
    "no, 0"; the replies are cached, so re-scoring in the same folder asks the judge nothing."""
    model, judge = servers
    out = tmp_path / "out"
    asked = judge.chat_requests()
    rc = _eval(
        "--tasks", "synthetic_qa", "--endpoint", model.url, "--served-model", "tiny", "--data-root", str(world),
        "--limit", "6", "--judge-endpoint", judge.url, "--judge-model", "tiny", "--judge-retries", "1",
        "--judge-concurrency", "1", "--output", str(out),
    )  # fmt: skip
    assert rc == 0
    assert judge.chat_requests() - asked == 6
    d = json.loads((out / "results.json").read_text())["videollm"]["details"]["synthetic_qa"]
    assert (d["n"], d["n_errors"], d["judged"], d["judge_failures"]) == (6, 0, 0, 6)
    assert (d["judge_yes"], d["judge_no"], d["judge_accuracy"], d["judge_score"]) == (0, 0, None, None)
    assert d["judge"]["model"] == "tiny" and d["judge"]["served_models"] == ["tiny"]
    samples = _lines(out / "samples" / "samples_synthetic_qa.jsonl")
    assert all(s["judge"]["error"] == UNPARSEABLE and s["judge"]["reply"] for s in samples)
    assert all(s["judge"]["pred"] is None and s["judge"]["score"] is None for s in samples)
    report = (out / "report.md").read_text()
    assert "| synthetic_qa | exact_match |" in report and "6 judge failures" in report

    asked = judge.chat_requests()
    rc = main(
        [
            "score", "--task", "synthetic_qa", "--annotations", str(world),
            "--predictions", str(out / "predictions" / "synthetic_qa.jsonl"),
            "--judge-endpoint", judge.url, "--judge-model", "tiny", "--output", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    assert judge.chat_requests() == asked  # every reply came from judge_cache.jsonl
    again = json.loads((out / "results.json").read_text())["videollm"]["details"]["synthetic_qa"]
    assert (again["judged"], again["judge_failures"]) == (0, 6)
    rescored = _lines(out / "samples" / "samples_synthetic_qa.jsonl")
    assert [s["judge"] for s in rescored if "judge" in s] == [s["judge"] for s in samples]


def test_rescore_predictions_from_other_tools_with_a_judge(servers, tmp_path):
    """Video-LLaVA merge.jsonl, Video-ChatGPT json and lmms-eval sample logs re-judged by a pinned judge."""
    judge = servers[1]
    root = tmp_path / "MSVD_Zero_Shot_QA"
    root.mkdir()
    qs = [
        {"video_name": "clip1", "question_id": f"v_clip1_{k}", "question": q}
        for k, q in enumerate(["what is the man doing?", "what color is the car?", "who is singing?"])
    ]
    ans = [
        {"answer": a, "question_id": q["question_id"]}
        for q, a in zip(qs, ["cooking", "red", "a woman"], strict=True)
    ]
    (root / "test_q.json").write_text(json.dumps(qs))
    (root / "test_a.json").write_text(json.dumps(ans))
    preds = ["cooking", "blue", "a man"]
    merge = tmp_path / "merge.jsonl"
    merge.write_text(
        "".join(
            json.dumps({"id": q["question_id"], "question": q["question"], "answer": a["answer"], "pred": p})
            + "\n"
            for q, a, p in zip(qs, ans, preds, strict=True)
        )
    )
    vcg = tmp_path / "video_chatgpt.json"
    vcg.write_text(
        json.dumps(
            [
                {"video_name": "clip1", "Q": q["question"], "A": a["answer"], "pred": p}
                for q, a, p in zip(qs, ans, preds, strict=True)
            ]
        )
    )
    lmms = tmp_path / "20250101_samples_msvd_qa.jsonl"
    lmms.write_text(
        "".join(
            json.dumps({"doc_id": k, "target": a["answer"], "filtered_resps": [p], "input": q["question"]})
            + "\n"
            for k, (q, a, p) in enumerate(zip(qs, ans, preds, strict=True))
        )
    )
    # the judge is asked about exactly these (question, answer, prediction) triples, whatever the format
    expected_keys = {
        cache_key("tiny", judge_messages(q["question"], a["answer"], p), 0.0)
        for q, a, p in zip(qs, ans, preds, strict=True)
    }

    def score(path: Path, out: Path) -> int:
        return main(
            [
                "score", "--task", "msvd_qa", "--annotations", str(root / "test_q.json"),
                "--predictions", str(path), "--judge-endpoint", judge.url, "--judge-model", "tiny",
                "--judge-retries", "1", "--judge-concurrency", "1", "--output", str(out),
            ]
        )  # fmt: skip

    replies = []
    for path in (merge, vcg, lmms):
        out = tmp_path / f"scored_{path.stem}"
        asked = judge.chat_requests()
        assert score(path, out) == 0, path
        assert judge.chat_requests() - asked == 3, path
        assert {r["key"] for r in _lines(out / "judge_cache.jsonl")} == expected_keys, path
        d = json.loads((out / "results.json").read_text())["videollm"]["details"]["msvd_qa"]
        assert (d["judge_yes"], d["judge_no"], d["judge_failures"]) == (0, 0, 3), path
        assert d["judge_accuracy"] is None and d["judge_score"] is None, path
        assert d["exact_match"] == pytest.approx(100 / 3) and d["n_errors"] == 0, path
        assert d["judge"]["model"] == "tiny" and d["judge"]["served_models"] == ["tiny"], path
        samples = _lines(out / "samples" / "samples_msvd_qa.jsonl")
        replies.append([s["judge"]["reply"] for s in samples])
    assert replies[0] == replies[1] == replies[2]  # temperature 0: the same triples, the same replies
    # the judge cache of an output folder means re-scoring there asks nothing new
    asked = judge.chat_requests()
    assert score(merge, tmp_path / "scored_merge") == 0
    assert judge.chat_requests() == asked


def test_cli_errors_name_the_fix(tmp_path, capsys):
    assert main(["--tasks", "synthetic_qa"]) == 2  # no model given is fine (the starter); no data is not
    assert "synthetic_qa: no --data-root given" in capsys.readouterr().err
    assert (
        main(["--tasks", "synthetic_qa", "--data-root", str(tmp_path), "--endpoint", "http://127.0.0.1:1/v1"])
        == 2
    )
    assert "--served-model" in capsys.readouterr().err
    assert main(["--tasks", "bogus", "--endpoint", "http://x/v1", "--served-model", "m"]) == 2
    assert "unknown task 'bogus'" in capsys.readouterr().err
    assert main(["--list"]) == 0 and "mvbench" in capsys.readouterr().out


# ----- resume after a kill (slow: three runs of the CLI in child processes) -----------------------


def _run_cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "videollm.cli", "eval", *args],
        cwd=REPO,
        env={**os.environ, **OFFLINE, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_resume_after_kill_reruns_nothing_and_duplicates_nothing(world, tmp_path):
    n = len(load_items(all_specs()["synthetic_mc"], world))
    # A real server made slow by a real option: each request waits 300 ms for a batch to fill (none does:
    # one request in flight), so the run is still going when it is killed.
    with tiny_servers(
        tiny_checkpoint(tmp_path / "tiny"), tmp_path, media_root=world, extra=["--batch-wait-ms", "300"]
    ) as (server,):
        common = ["--tasks", "synthetic_mc", "--endpoint", server.url, "--served-model", "tiny"]
        common += ["--data-root", str(world), "--concurrency", "1", "--no-progress"]
        out = tmp_path / "killed"
        proc = _run_cli([*common, "--output", str(out)])
        cache = out / "predictions" / "synthetic_mc.jsonl"
        deadline = time.monotonic() + 300
        while not (cache.exists() and len(_lines(cache)) >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the evaluation made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = {r["id"] for r in _lines(cache)}
        asked_before = server.chat_requests()
        assert 3 <= len(done_before) < n

        resumed = _run_cli([*common, "--output", str(out), "--resume"])
        assert resumed.wait(timeout=300) == 0, resumed.communicate()
        asked_after = server.chat_requests() - asked_before
        # only what was not done is asked again (the request in flight at the kill may be logged late)
        assert n - len(done_before) <= asked_after <= n - len(done_before) + 1

        asked_before = server.chat_requests()
        straight = _run_cli([*common, "--output", str(tmp_path / "straight")])
        assert straight.wait(timeout=300) == 0, straight.communicate()
        assert server.chat_requests() - asked_before == n

    lines = _lines(cache)
    assert len({r["key"] for r in lines}) == len(lines) == n  # no duplicates, nothing missing
    assert all(r["error"] is None for r in lines)
    by_id = {r["id"]: r["prediction"] for r in lines}
    ref = {
        r["id"]: r["prediction"] for r in _lines(tmp_path / "straight" / "predictions" / "synthetic_mc.jsonl")
    }
    assert by_id == ref
    a = json.loads((out / "results.json").read_text())["videollm"]["details"]["synthetic_mc"]
    b = json.loads((tmp_path / "straight" / "results.json").read_text())["videollm"]["details"][
        "synthetic_mc"
    ]
    assert a["accuracy"] == b["accuracy"] and a["n"] == b["n"] == n
