"""Each transfer strategy trains exactly the parameters it names: real Trainer runs on the synthetic world,
parameter checksums compared before and after. Plus the distillation add-on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trainkit import base_fixture, load_model, run_diff, short_run, weights, world_fixture

from videollm.train.strategies import param_group

world = world_fixture(num_videos=3)
base = base_fixture()


def _distill_losses(world: Path, base: Path, out: Path, **fields) -> list[float]:
    """The distillation loss each step of a short run logged."""
    result = short_run(world, base, out, **fields)
    return [h["distill_loss"] for h in result.log_history if "distill_loss" in h]


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
    run = run_diff(world, base, tmp_path / "run", strategy=strategy, **extra)
    before, after = run.before, run.after
    assert set(after) == set(before)
    assert {param_group(n) for n in run.changed} == trained_groups
    for group in ("vision", "projector", "lm"):
        trainable, total = run.result.trainable[group]
        assert trainable == (total if group in trained_groups else 0), (group, run.result.trainable)
    # Every trainable tensor that got a gradient moved; the frozen ones are bit-identical.
    assert all(torch.equal(before[n], after[n]) for n in before if param_group(n) not in trained_groups)


@pytest.mark.parametrize(("strategy", "module"), [("adapter", "st_adapter"), ("prompt", "visual_prompt")])
def test_adapter_and_prompt_train_only_the_new_modules_and_projector(tmp_path, world, base, strategy, module):
    run = run_diff(world, base, tmp_path / "run", strategy=strategy)
    assert (
        getattr(run.model.config, strategy) is not None
    )  # the config says so: the model rebuilds them on load
    assert run.added and all(f".{module}." in n for n in run.added)
    assert run.changed and {param_group(n) for n in run.changed} == {"projector"}
    assert not any("vision_tower" in n for n in run.changed)  # the tower's own weights are untouched
    if strategy == "adapter":  # ST-Adapter's up-projection starts at zero: it learned
        # (in the blocks the features come from: CLIP's features are the penultimate layer's, so the
        # last block's adapter gets no gradient)
        ups = {n: p for n, p in run.after.items() if n.endswith("st_adapter.up.weight")}
        first = next(p for n, p in ups.items() if ".layers.0." in n)
        assert first.abs().sum() > 0
    assert run.result.trainable["vision"][0] == 0 and run.result.trainable["lm"][0] == 0


def test_lora_trains_adapters_on_the_lm_and_the_projector_only(tmp_path, world, base):
    from peft import PeftModel

    before = weights(load_model(base))
    result = short_run(world, base, tmp_path / "run", strategy="lora", **{"lora.r": 4})
    model = PeftModel.from_pretrained(load_model(base), tmp_path / "run")
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
    result = short_run(
        world, base, tmp_path / "run", strategy="lora", **{"lora.target_modules": regex, "max_steps": 1}
    )
    assert result.trainable["vision"][0] > 0 and result.trainable["lm"][0] > 0


def test_distill_adds_its_loss_and_keeps_the_teacher_frozen(tmp_path, world, base):
    teacher = {"weight": 1.0, "target": "vision"}
    distill = _distill_losses(world, base, tmp_path / "run", strategy="adapter", distill=teacher, max_steps=4)
    assert len(distill) == 4
    assert distill[0] == 0.0  # zero-initialised adapters: the student starts as the image model
    assert distill[-1] > 0.0  # then drifts, and pays for it


def test_distill_on_the_lm_uses_the_lora_free_model_as_teacher(tmp_path, world, base):
    teacher = {"weight": 1.0, "target": "lm", "apply_to": "all"}
    distill = _distill_losses(world, base, tmp_path / "run", strategy="lora", distill=teacher, max_steps=3)
    assert len(distill) == 3 and distill[0] < 1e-6 < distill[-1]


def test_vision_distill_needs_a_strategy_that_changes_the_vision_tower(tmp_path, world, base):
    from videollm.train.recipe import RecipeError

    with pytest.raises(RecipeError, match="nothing in the vision tower trains"):
        short_run(world, base, tmp_path / "run", strategy="lora", distill={"weight": 1.0, "target": "vision"})


@pytest.mark.parametrize("strategy", ["frozen", "adapter", "side"])
def test_text_only_samples_with_a_visual_path_strategy_are_refused_up_front(tmp_path, world, base, strategy):
    import json

    from videollm.train.recipe import RecipeError

    text = tmp_path / "text.json"
    turns = [
        {"from": "human", "value": "The circle is red.\nWhat color is the circle?"},
        {"from": "gpt", "value": "red"},
    ]
    text.write_text(json.dumps([{"id": f"t{i}", "conversations": turns} for i in range(3)]))
    files = [{"path": str(world / "train" / "instruct.json"), "weight": 0.1}, {"path": str(text)}]
    with pytest.raises(
        RecipeError, match=rf"strategy '{strategy}' trains only modules on the visual path, so the 3 "
    ):
        short_run(world, base, tmp_path / "run", strategy=strategy, **{"data.files": files})
    assert not (tmp_path / "run" / "config.json").exists()
