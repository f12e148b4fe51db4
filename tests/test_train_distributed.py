"""Multi-process training on CPU with real launchers: disjoint samples with synchronised weights across two
gloo ranks, ZeRO-2/ZeRO-3 runs that save loadable checkpoints, and resuming a run killed mid-way.

Slow tier: each test starts Python processes that import torch, transformers and DeepSpeed. DeepSpeed's
first run JIT-compiles its CPU communication op into `.cache/torch_extensions` (about a minute, once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trainkit import REPO, base_fixture, recipe, subset, world_fixture, write_recipe

pytestmark = pytest.mark.slow


world = world_fixture(num_videos=4)
base = base_fixture()


@pytest.fixture(scope="module")
def data(world, tmp_path_factory) -> list[str]:
    """8 video and 8 image samples: whole megabatches of 2 ranks × batch 2, so no sample repeats in an epoch."""
    folder = tmp_path_factory.mktemp("data")
    src = world / "train" / "instruct.json"
    videos = subset(src, folder / "videos.json", 8, lambda r: "video" in r and r["form"] == "short")
    images = subset(src, folder / "images.json", 8, lambda r: "image" in r and r["form"] == "short")
    return [str(videos), str(images)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
    env["OMP_NUM_THREADS"] = "1"
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    return env


def _videollm_train(recipe_path: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "videollm.cli", "train", str(recipe_path), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _sample_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_gloo_ranks_train_disjoint_samples_with_synchronised_weights(tmp_path, world, base, data):
    out = tmp_path / "run"
    tree = recipe(world, base, out, strategy="full", max_steps=-1, epochs=1, log_samples=True)
    tree["data"]["files"] = [{"path": p} for p in data]
    _videollm_train(write_recipe(tmp_path / "r.yaml", tree), "--nproc", "2")
    logs = [_sample_log(out / f"samples.rank{r}.jsonl") for r in (0, 1)]
    seen = [[i for line in log for i in line["ids"]] for log in logs]
    assert len(seen[0]) == len(seen[1]) == 8  # 16 samples, 4 steps of 2 per rank
    assert not set(seen[0]) & set(seen[1])  # disjoint
    ids = {r["id"] for p in data for r in json.loads(Path(p).read_text())}
    assert set(seen[0]) | set(seen[1]) == ids  # together: the whole epoch, once
    for a, b in zip(*logs, strict=True):
        assert a["step"] == b["step"]
        assert a["checksum"] == pytest.approx(
            b["checksum"], rel=1e-9, abs=1e-9
        )  # the same weights on both ranks
    assert len({round(line["checksum"], 6) for line in logs[0]}) == 4  # ... and they did train
    run = json.loads((out / "videollm_run.json").read_text())
    assert run["global_step"] == 4


@pytest.mark.parametrize("config", ["zero2.json", "zero3.json"])
def test_deepspeed_with_two_processes_saves_a_loadable_checkpoint(tmp_path, world, base, data, config):
    from videollm.model import VideoLLMForConditionalGeneration

    out = tmp_path / "run"
    tree = recipe(
        world,
        base,
        out,
        strategy="full",
        max_steps=2,
        save_steps=2,
        deepspeed=str(REPO / "train/deepspeed" / config),
    )
    tree["data"]["files"] = [{"path": p} for p in data]
    _videollm_train(write_recipe(tmp_path / "r.yaml", tree), "--nproc", "2")
    assert (out / "checkpoint-2" / "global_step2").is_dir()  # DeepSpeed's own optimizer state
    trained = VideoLLMForConditionalGeneration.from_pretrained(out)
    original = VideoLLMForConditionalGeneration.from_pretrained(base)
    before = dict(original.named_parameters())
    changed = [n for n, p in trained.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > len(before) // 2  # a full run changed (nearly) every tensor, and saved them all


KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from videollm.train import trainer

class Kill(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == {step}:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, like an OOM kill or a lost node

init = trainer.VideoLLMTrainer.__init__
def patched(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.add_callback(Kill())
trainer.VideoLLMTrainer.__init__ = patched

from videollm.train.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_run_resumes_where_it_stopped(tmp_path, world, base, data):
    from safetensors.torch import load_file

    def tree(out: Path) -> dict:
        t = recipe(world, base, out, strategy="full", max_steps=6, save_steps=2, log_samples=True, lr=3e-3)
        t["data"]["files"] = [{"path": p} for p in data]
        return t

    reference = tmp_path / "reference"
    _videollm_train(write_recipe(tmp_path / "ref.yaml", tree(reference)))

    out = tmp_path / "killed"
    path = write_recipe(tmp_path / "run.yaml", tree(out))
    script = tmp_path / "killer.py"
    script.write_text(KILLER.replace("{step}", "4"))
    killed = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=600, env=_env()
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (out / "checkpoint-4").is_dir() and not (out / "model.safetensors").exists()

    refused = subprocess.run(
        [sys.executable, "-m", "videollm.cli", "train", str(path)], capture_output=True, text=True, env=_env()
    )
    assert refused.returncode == 2 and "set resume=true" in refused.stderr  # never overwrites by accident
    _videollm_train(path, "resume=true")

    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    ref_steps = {line["step"]: line["ids"] for line in _sample_log(reference / "samples.rank0.jsonl")}
    resumed = _sample_log(out / "samples.rank0.jsonl")
    assert [line["step"] for line in resumed] == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]  # killed after saving step 4, resumed there
    for line in resumed:
        assert line["ids"] == ref_steps[line["step"]]  # the same data position: optimizer, scheduler, sampler
    ours, theirs = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6)
