"""LoRA and QLoRA: merge equivalence, export with greedy parity, and the bitsandbytes 4-bit CPU trap."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainkit import base_fixture, recipe, world_fixture

from videollm.data.collate import Collator, SupervisedDataset
from videollm.train import export
from videollm.train.loading import load_base
from videollm.train.recipe import recipe_from_dict
from videollm.train.strategies import apply_strategy
from videollm.train.trainer import load_datasets, train

world = world_fixture(num_videos=3)
base = base_fixture()


def _setup(world: Path, base: Path, tmp_path: Path, strategy: str):
    r = recipe_from_dict(
        recipe(
            world, base, tmp_path / "run", strategy=strategy, **{"lora.dropout": 0.0, "frames.num_frames": 2}
        )
    )
    b = load_base(r)
    model = apply_strategy(b.model, r)
    train_raw, _ = load_datasets(r)
    data = SupervisedDataset(train_raw, b.processor, r.max_length)
    video = data.modalities.index("video")
    batch = Collator(b.processor.tokenizer.pad_token_id)([data[video], data[video + 1]])
    del batch["ids"], batch["skipped"]
    return model, batch


def _randomise_lora(model: torch.nn.Module) -> None:
    """What training does to a fresh adapter (B starts at zero, which would make any merge trivially exact)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)


def test_merged_lora_computes_what_the_adapters_computed(tmp_path, world, base):
    model, batch = _setup(world, base, tmp_path, "lora")
    _randomise_lora(model)
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits
        merged = model.merge_and_unload()
        after = merged(**batch).logits
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert before.abs().max() > 0
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_export_merges_a_lora_run_with_greedy_parity(tmp_path, world, base, capsys):
    train(recipe_from_dict(recipe(world, base, tmp_path / "run", strategy="lora", max_steps=3)))
    out = tmp_path / "export"
    assert export.main([str(tmp_path / "run"), "--out", str(out)]) == 2
    assert "pass --merge-lora" in capsys.readouterr().err
    assert export.main([str(tmp_path / "run"), "--merge-lora", "--out", str(out)]) == 0
    assert "verified: greedy parity (fp32) on a sample video, 16 tokens" in capsys.readouterr().out
    from videollm.model import VideoLLMForConditionalGeneration

    model = VideoLLMForConditionalGeneration.from_pretrained(out)
    assert not any("lora" in n for n, _ in model.named_parameters())
    # A checkpoint folder of the run exports too.
    report = export.export(tmp_path / "run" / "checkpoint-3", tmp_path / "export3", merge_lora=True)
    assert report.merged and report.parity and len(report.reference) == 16


@pytest.mark.filterwarnings("ignore:bitsandbytes.*gemv_4bit")  # the negative control backprops through it
def test_qlora_gradients_survive_an_eval_pass(tmp_path, world, base):
    """bitsandbytes 0.50 repacks 4-bit weights on the first no-grad eval forward on CPU; after that the
    gradients through them are wrong. With videollm's fix an eval pass changes nothing about training."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import has_avx512bf16

    def grads_around_an_eval_pass(fix: bool):
        model, batch = _setup(world, base, tmp_path, "qlora")
        layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert layers and all(".language_model." in n for n, m in model.named_modules() if m in layers)
        if not fix:
            for layer in layers:
                layer.support_avx512bf16_for_cpu = True
        _randomise_lora(model)

        def grads():
            model.train()
            model.zero_grad()
            loss = model(**batch).loss
            loss.backward()
            return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

        first = grads()
        model.eval()
        with torch.no_grad():
            model(**batch)
        return first, grads()

    (loss0, g0), (loss1, g1) = grads_around_an_eval_pass(fix=True)
    assert loss0 == loss1 and g0.keys() == g1.keys() and len(g0) > 0
    assert all(torch.equal(g0[n], g1[n]) for n in g0)
    assert all(g.abs().sum() > 0 for n, g in g1.items() if "lora_A" in n)
    if has_avx512bf16():  # the trap is real on this CPU: without the fix the eval pass corrupts training
        (_, g0), (_, g1) = grads_around_an_eval_pass(fix=False)
        assert not all(torch.allclose(g0[n], g1[n]) for n in g0)


def test_qlora_run_with_evaluation_keeps_learning(tmp_path, world, base):
    tree = recipe(
        world,
        base,
        tmp_path / "run",
        strategy="qlora",
        max_steps=4,
        eval_steps=2,
        save_steps=2,
        **{"data.eval_files": [{"path": str(world / "test" / "instruct.json"), "weight": 0.05}]},
    )
    result = train(recipe_from_dict(tree))
    evals = [h for h in result.log_history if "eval_loss" in h]
    assert len(evals) == 2
    from safetensors.torch import load_file

    after_first_eval = load_file(tmp_path / "run" / "checkpoint-2" / "adapter_model.safetensors")
    final = load_file(tmp_path / "run" / "adapter_model.safetensors")
    moved = [k for k in final if "lora_" in k and not torch.equal(final[k], after_first_eval[k])]
    assert moved  # the adapters kept changing after evaluation passes
