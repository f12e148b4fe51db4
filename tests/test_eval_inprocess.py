"""In-process evaluation with the transformers engine on a tiny random VideoLLM (real model, real videos)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from trainkit import save_tiny_base, synth_test_split

from videollm.eval.cli import main
from videollm.eval.loaders import load_items
from videollm.eval.tasks import all_specs
from videollm.inference.engine import Engine, GenerationRequest, TransformersEngine
from videollm.video import DEFAULT_BACKEND, FrameSampler


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return synth_test_split(tmp_path_factory.mktemp("world"), num_test_videos=2, seed=5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_base(tmp_path_factory.mktemp("tiny"))


def test_engine_batches_like_single_requests(checkpoint, world):
    engine = TransformersEngine.from_pretrained(checkpoint, batch_size=3)
    assert isinstance(engine, Engine)
    items = load_items(all_specs()["synthetic_qa"], world)[:3]
    reqs = [GenerationRequest(i.prompt, i.video, FrameSampler.uniform(4), max_new_tokens=6) for i in items]
    batched = engine.generate(reqs)
    single = [engine.generate([r])[0] for r in reqs]
    assert batched == single and all(isinstance(t, str) for t in batched)
    info = engine.describe()
    assert info["connector"]["type"] == "spatial_pool" and len(info["checkpoint"]["sha256"]) == 64


def test_synthetic_tasks_in_process_with_a_broken_video(checkpoint, world, tmp_path):
    data = tmp_path / "world"
    shutil.copytree(world, data)
    qa = load_items(all_specs()["synthetic_qa"], data)
    bad_video = qa[0].video
    bad_video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)  # an mp4 header and nothing else
    n_bad = sum(i.video == bad_video for i in qa)
    out = tmp_path / "out"
    rc = main(
        [
            "--tasks",
            "synthetic_qa,synthetic_mc",
            "--model",
            str(checkpoint),
            "--data-root",
            str(data),
            "--frames",
            "4",
            "--batch-size",
            "4",
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    for task in ("synthetic_qa", "synthetic_mc"):
        d = results["videollm"]["details"][task]
        assert (
            d["n"] == len(qa) and d["n_errors"] == n_bad
        )  # the bad clip fails alone, its batch-mates do not
    samples = [
        json.loads(x) for x in (out / "samples" / "samples_synthetic_mc.jsonl").read_text().splitlines()
    ]
    assert all(("VideoError" in s["error"]) == (s["video"] == str(bad_video)) for s in samples if s["error"])
    assert sum(s["filtered_resps"] is not None for s in samples) == len(qa) - n_bad
    prov = results["videollm"]["provenance"]
    assert prov["engine"]["engine"] == "transformers" and prov["engine"]["checkpoint"]["sha256"]
    assert prov["decoder"]["backend"] == DEFAULT_BACKEND and prov["sampling"] == {
        "frames": 4,
        "fps": None,
        "max_frames": None,
        "sampler": "uniform",
        "mode": "exact",
        "decoder_backend": DEFAULT_BACKEND,
    }
    # a second run with --resume generates nothing new: every prediction (and the undecodable clip's
    # errors: a corrupt file fails the same way again) comes from the cache
    before = (out / "predictions" / "synthetic_qa.jsonl").read_text()
    args = ["--tasks", "synthetic_qa", "--model", str(checkpoint), "--data-root", str(data), "--frames", "4"]
    assert main([*args, "--output", str(out), "--resume", "--no-progress"]) == 0
    assert (out / "predictions" / "synthetic_qa.jsonl").read_text() == before


@pytest.mark.slow
def test_full_synthetic_suite_in_process(checkpoint, world, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "--tasks",
                "synthetic",
                "--model",
                str(checkpoint),
                "--data-root",
                str(world),
                "--frames",
                "4",
                "--output",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"synthetic_qa", "synthetic_mc", "synthetic_caption"}
    cap = results["videollm"]["details"]["synthetic_caption"]
    assert {"Bleu_4", "METEOR", "ROUGE_L", "CIDEr"} <= set(cap) and "SPICE" in cap["not_computed"]
    assert (out / "report.md").read_text().count("SPICE") >= 1


def test_no_model_evaluates_the_offline_default(checkpoint, world, tmp_path, monkeypatch, capsys):
    """`videollm eval` without --model or --endpoint scores the offline default, as serve and chat use
    it: $VIDEOLLM_MODEL when set (here the tiny checkpoint), else the starter (tests/test_starter_model.py)."""
    monkeypatch.setenv("VIDEOLLM_MODEL", str(checkpoint))
    out = tmp_path / "out"
    argv = ["--tasks", "synthetic_qa", "--data-root", str(world), "--limit", "2", "--frames", "4"]
    assert main([*argv, "--output", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["model"] == str(checkpoint)
    assert results["videollm"]["details"]["synthetic_qa"]["n"] == 2
    monkeypatch.chdir(tmp_path)  # the default output folder is named after the model
    assert main([*argv, "--no-progress"]) == 0
    assert (tmp_path / "eval_results" / checkpoint.name / "results.json").is_file()
