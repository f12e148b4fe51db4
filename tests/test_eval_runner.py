"""The runner end to end over real HTTP: endpoints round-robin, errors counted, resume after a real kill,
and re-scoring of predictions made elsewhere (Video-LLaVA, Video-ChatGPT, lmms-eval formats).

The model and judge servers are the stand-ins of tests/eval_servers.py (real FastAPI apps on
127.0.0.1); see its docstring for what each stands in for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.eval_servers import JudgeBehaviour, ModelBehaviour, answer_for, judge_app, serve, video_model_app
from tests.trainkit import synth_test_split
from videollm.eval.cli import main
from videollm.eval.loaders import load_items
from videollm.eval.tasks import all_specs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A small synthetic world made by the real `videollm data synth`; returns its test split."""
    return synth_test_split(tmp_path_factory.mktemp("world"), num_test_videos=3, seed=7)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_endpoint_run_round_robin_report_and_errors(world, tmp_path):
    specs = all_specs()
    qa = load_items(specs["synthetic_qa"], world)
    # one video missing, one not a video: both reported per item, not dropped
    broken = tmp_path / "world"
    import shutil

    shutil.copytree(world, broken, symlinks=False)
    videos = sorted({i.video.relative_to(world) for i in qa})
    (broken / videos[0]).unlink()
    (broken / videos[1]).write_text("this is not an mp4")
    a, b = ModelBehaviour(), ModelBehaviour()
    with serve(video_model_app(a)) as url_a, serve(video_model_app(b)) as url_b:
        out = tmp_path / "out"
        rc = main(
            [
                "--tasks",
                "synthetic_qa,synthetic_mc",
                "--endpoint",
                f"{url_a},{url_b}",
                "--served-model",
                "video-test-model",
                "--data-root",
                str(broken),
                "--frames",
                "4",
                "--concurrency",
                "3",
                "--output",
                str(out),
                "--no-progress",
            ]
        )
    assert rc == 0
    assert sum(a.requests.values()) > 0 and sum(b.requests.values()) > 0  # round-robin over both servers
    assert all(kw == {"num_frames": 4} for kw in a.mm_kwargs + b.mm_kwargs)
    assert set(a.frames_seen + b.frames_seen) == {16}  # the servers decoded the real 16-frame clips

    results = json.loads((out / "results.json").read_text())
    details = results["videollm"]["details"]
    per_video = {v: sum(1 for i in qa if i.video.relative_to(world) == v) for v in videos}
    n_bad = per_video[videos[0]] + per_video[videos[1]]
    for task in ("synthetic_qa", "synthetic_mc"):
        assert details[task]["n"] == len(qa) and details[task]["n_errors"] == n_bad
        assert results["n-samples"][task] == {"original": len(qa), "effective": len(qa)}
    samples = _lines(out / "samples" / "samples_synthetic_qa.jsonl")
    errors = [s["error"] for s in samples if s["error"]]
    assert sum("not found" in e for e in errors) == per_video[videos[0]]
    assert sum("400" in e and "cannot decode" in e for e in errors) == per_video[videos[1]]
    # exact match as computed from what the stand-in answered
    ok = [i for i in qa if i.video.relative_to(world) not in videos[:2]]
    expected = 100 * sum(answer_for(i.prompt) == i.answer for i in ok) / len(qa)
    assert details["synthetic_qa"]["exact_match"] == pytest.approx(expected)
    assert (
        details["synthetic_qa"]["judge"] is None
        and "judge score absent" in details["synthetic_qa"]["judge_note"]
    )
    assert set(details["synthetic_qa"]["by"]["type"]) <= {"static", "temporal"}
    assert results["results"]["synthetic_mc"]["accuracy,none"] == details["synthetic_mc"]["accuracy"]
    prov = results["videollm"]["provenance"]
    assert prov["engine"]["served_model"] == "video-test-model" and prov["sampling"]["frames"] == 4
    assert {"torch", "transformers", "decord"} <= set(prov["versions"]) and prov["date"]
    report = (out / "report.md").read_text()
    assert "judge score absent" in report and "synthetic_mc" in report
    assert (out / "plots" / "accuracy_by_task.png").stat().st_size > 1000
    assert (out / "plots" / "synthetic_mc_by_type.png").exists()


def _run_cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "videollm.cli", "eval", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_resume_after_kill_reruns_nothing_and_duplicates_nothing(world, tmp_path):
    specs = all_specs()
    n = len(load_items(specs["synthetic_mc"], world))
    behaviour = ModelBehaviour(delay_s=0.25)
    with serve(video_model_app(behaviour)) as url:
        common = [
            "--tasks",
            "synthetic_mc",
            "--endpoint",
            url,
            "--served-model",
            "m",
            "--data-root",
            str(world),
            "--concurrency",
            "1",
            "--no-progress",
        ]
        out = tmp_path / "killed"
        proc = _run_cli([*common, "--output", str(out)])
        cache = out / "predictions" / "synthetic_mc.jsonl"
        deadline = time.time() + 120
        while not (cache.exists() and len(_lines(cache)) >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the evaluation made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = {r["id"] for r in _lines(cache)}
        asked_before = sum(behaviour.requests.values())
        assert 3 <= len(done_before) < n

        resumed = _run_cli([*common, "--output", str(out), "--resume"])
        assert resumed.wait(timeout=300) == 0, resumed.communicate()
        asked_after = sum(behaviour.requests.values()) - asked_before
        # only what was not done is asked again (plus at most the one request in flight at the kill)
        assert n - len(done_before) <= asked_after <= n - len(done_before) + 1

        straight = _run_cli([*common, "--output", str(tmp_path / "straight")])
        assert straight.wait(timeout=300) == 0, straight.communicate()

    lines = _lines(cache)
    assert len({r["key"] for r in lines}) == len(lines) == n  # no duplicates, nothing missing
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


def test_rescore_predictions_from_other_tools_with_a_judge(tmp_path):
    """Video-LLaVA merge.jsonl, Video-ChatGPT json and lmms-eval sample logs re-judged by a pinned judge."""
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
    preds = ["cooking", "blue", "GARBAGE"]  # yes, no, judge failure
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
    behaviour = JudgeBehaviour(model="pinned-judge-v1", garbage_for=("GARBAGE",))
    with serve(judge_app(behaviour)) as url:
        for path in (merge, vcg, lmms):
            out = tmp_path / f"scored_{path.stem}"
            rc = main(
                [
                    "score",
                    "--task",
                    "msvd_qa",
                    "--annotations",
                    str(root / "test_q.json"),
                    "--predictions",
                    str(path),
                    "--judge-endpoint",
                    url,
                    "--judge-model",
                    "pinned-judge-v1",
                    "--output",
                    str(out),
                ]
            )
            assert rc == 0, path
            d = json.loads((out / "results.json").read_text())["videollm"]["details"]["msvd_qa"]
            assert (d["judge_yes"], d["judge_no"], d["judge_failures"]) == (1, 1, 1), path
            assert d["judge_accuracy"] == pytest.approx(50.0) and d["judge_score"] == pytest.approx(3.0)
            assert d["exact_match"] == pytest.approx(100 / 3) and d["n_errors"] == 0
            assert d["judge"]["model"] == "pinned-judge-v1" and d["judge"]["served_models"] == [
                "pinned-judge-v1"
            ]
        # the judge cache of each output folder means re-scoring there asks nothing new
        before = len(behaviour.requests)
        assert (
            main(
                [
                    "score",
                    "--task",
                    "msvd_qa",
                    "--annotations",
                    str(root / "test_q.json"),
                    "--predictions",
                    str(merge),
                    "--judge-endpoint",
                    url,
                    "--judge-model",
                    "pinned-judge-v1",
                    "--judge-retries",
                    "1",
                    "--output",
                    str(tmp_path / "scored_merge"),
                ]
            )
            == 0
        )
        assert len(behaviour.requests) - before == 1  # only the unparseable one is asked again


def test_cli_errors_name_the_fix(tmp_path, capsys):
    assert main(["--tasks", "synthetic_qa"]) == 2
    assert "--model PATH" in capsys.readouterr().err
    assert main(["--tasks", "synthetic_qa", "--endpoint", "http://127.0.0.1:1/v1"]) == 2
    assert "--served-model" in capsys.readouterr().err
    assert main(["--tasks", "bogus", "--endpoint", "http://x/v1", "--served-model", "m"]) == 2
    assert "unknown task 'bogus'" in capsys.readouterr().err
    assert main(["--list"]) == 0 and "mvbench" in capsys.readouterr().out
