"""Each transfer strategy trains exactly the parameters it names: real Trainer runs on the synthetic world,
parameter checksums compared before and after. Plus the distillation add-on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainkit import recipe, render_world, save_tiny_base

from videollm.train.recipe import recipe_from_dict
from videollm.train.strategies import param_group
from videollm.train.trainer import train


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return render_world(tmp_path_factory.mktemp("world"), num_videos=3)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return save_tiny_base(tmp_path_factory.mktemp("base"))


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _run(world: Path, base: Path, out: Path, **fields):
    tree = recipe(world, base, out, **{"frames.num_frames": 2, "max_steps": 3, **fields})
    return train(recipe_from_dict(tree))


def _changed(before: dict, after: dict) -> set[str]:
    return {n for n, p in after.items() if n in before and not torch.equal(before[n], p)}


def _load(path: Path):
    from videollm.model import VideoLLMForConditionalGeneration

    return VideoLLMForConditionalGeneration.from_pretrained(path, dtype=torch.float32)


@pytest.mark.parametrize(
    ("strategy", "extra", "trained_groups"),
    [
        ("frozen", {}, {"projector"}),
        ("full", {}, {"vision", "projector", "lm"}),
        ("full", {"lr_vision": 0.0}, {"projector", "lm"}),
    ],
)
def test_whole_model_strategies_train_exactly_their_groups(
    tmp_path, world, base, strategy, extra, trained_groups
):
    before = _weights(_load(base))
    result = _run(world, base, tmp_path / "run", strategy=strategy, **extra)
    after = _weights(_load(tmp_path / "run"))
    assert set(after) == set(before)
    changed = _changed(before, after)
    assert {param_group(n) for n in changed} == trained_groups
    for group in ("vision", "projector", "lm"):
        trainable, total = result.trainable[group]
        assert trainable == (total if group in trained_groups else 0), (group, result.trainable)
    # Every trainable tensor that got a gradient moved; the frozen ones are bit-identical.
    assert all(torch.equal(before[n], after[n]) for n in before if param_group(n) not in trained_groups)


@pytest.mark.parametrize(("strategy", "module"), [("adapter", "st_adapter"), ("prompt", "visual_prompt")])
def test_adapter_and_prompt_train_only_the_new_modules_and_projector(tmp_path, world, base, strategy, module):
    before = _weights(_load(base))
    result = _run(world, base, tmp_path / "run", strategy=strategy)
    trained = _load(tmp_path / "run")
    assert (
        getattr(trained.config, strategy) is not None
    )  # the config says so: the model rebuilds them on load
    after = _weights(trained)
    new = {n for n in after if n not in before}
    assert new and all(f".{module}." in n for n in new)
    changed = _changed(before, after)
    assert changed and {param_group(n) for n in changed} == {"projector"}
    assert not any("vision_tower" in n for n in changed)  # the tower's own weights are untouched
    if strategy == "adapter":  # ST-Adapter's up-projection starts at zero: it learned
        # (in the blocks the features come from: CLIP's features are the penultimate layer's, so the
        # last block's adapter gets no gradient)
        ups = {n: p for n, p in after.items() if n.endswith("st_adapter.up.weight")}
        first = next(p for n, p in ups.items() if ".layers.0." in n)
        assert first.abs().sum() > 0
    assert result.trainable["vision"][0] == 0 and result.trainable["lm"][0] == 0


def test_lora_trains_adapters_on_the_lm_and_the_projector_only(tmp_path, world, base):
    from peft import PeftModel

    before = _weights(_load(base))
    result = _run(world, base, tmp_path / "run", strategy="lora", **{"lora.r": 4})
    model = PeftModel.from_pretrained(_load(base), tmp_path / "run")
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(".language_model." in n for n in lora)  # the vision tower has none
    assert any(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n)  # B starts at zero: it learned
    for name, p in model.named_parameters():
        original = name.removeprefix("base_model.model.").replace(".base_layer", "")
        if "lora_" in name or "modules_to_save" in name or ".original_module." in name:
            continue
        assert torch.equal(before[original], p), name  # every base weight unchanged
    saved = {n for n, p in model.named_parameters() if ".modules_to_save." in n}
    assert saved and {param_group(n) for n in saved} == {"projector"}
    trained_projector = [
        p for n, p in model.named_parameters() if "modules_to_save" in n and "linear_1.weight" in n
    ]
    original = before["model.multi_modal_projector.linear_1.weight"]
    assert not torch.equal(trained_projector[0], original)
    assert result.trainable["vision"][0] == 0


def test_lora_regex_can_reach_the_vision_tower_when_asked(tmp_path, world, base):
    regex = r".*(vision_tower|language_model).*\.(q_proj|v_proj)"
    result = _run(
        world, base, tmp_path / "run", strategy="lora", **{"lora.target_modules": regex, "max_steps": 1}
    )
    assert result.trainable["vision"][0] > 0 and result.trainable["lm"][0] > 0


def test_distill_adds_its_loss_and_keeps_the_teacher_frozen(tmp_path, world, base):
    result = _run(
        world,
        base,
        tmp_path / "run",
        strategy="adapter",
        distill={"weight": 1.0, "target": "vision"},
        max_steps=4,
    )
    distill = [h["distill_loss"] for h in result.log_history if "distill_loss" in h]
    assert len(distill) == 4
    assert distill[0] == 0.0  # zero-initialised adapters: the student starts as the image model
    assert distill[-1] > 0.0  # then drifts, and pays for it


def test_distill_on_the_lm_uses_the_lora_free_model_as_teacher(tmp_path, world, base):
    result = _run(
        world,
        base,
        tmp_path / "run",
        strategy="lora",
        distill={"weight": 1.0, "target": "lm", "apply_to": "all"},
        max_steps=3,
    )
    distill = [h["distill_loss"] for h in result.log_history if "distill_loss" in h]
    assert len(distill) == 3 and distill[0] < 1e-6 < distill[-1]


def test_vision_distill_needs_a_strategy_that_changes_the_vision_tower(tmp_path, world, base):
    from videollm.train.recipe import RecipeError

    with pytest.raises(RecipeError, match="nothing in the vision tower trains"):
        _run(world, base, tmp_path / "run", strategy="lora", distill={"weight": 1.0, "target": "vision"})
