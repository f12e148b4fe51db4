"""Recipes: the shipped ones load; overrides are typed; bad fields get errors that name them and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from trainkit import REPO

from videollm.train import cli
from videollm.train.distributed import training_mode
from videollm.train.recipe import Recipe, RecipeError, load_recipe
from videollm.train.strategies import group_learning_rates

RECIPES = sorted((REPO / "train" / "recipes").glob("*.yaml"))
DEEPSPEED = sorted((REPO / "train" / "deepspeed").glob("*.json"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_load(path: Path):
    # Three kinds live in train/recipes/: one-run recipes, staged starter recipes, the study grid.
    if path.name == "study.yaml":
        from videollm.bench.study import grid, load_study

        assert grid(load_study(path)) and grid(load_study(path, budget="full"))
        return
    from videollm.starter.train import is_starter_recipe, load_starter_recipe

    if is_starter_recipe(path):
        assert load_starter_recipe(path)
        return
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe) and recipe.data.files
    if recipe.deepspeed:
        assert Path(recipe.deepspeed).is_file()


def test_shipped_deepspeed_configs_are_the_llava_style_auto_configs():
    stages = {}
    for path in DEEPSPEED:
        config = json.loads(path.read_text())
        zero = config["zero_optimization"]
        stages[path.name] = zero["stage"]
        for key in ("train_micro_batch_size_per_gpu", "train_batch_size", "gradient_accumulation_steps"):
            assert config[key] == "auto", (path.name, key)
        assert config["bf16"]["enabled"] == "auto" and zero["reduce_bucket_size"] == "auto"
    assert stages == {"zero2.json": 2, "zero3.json": 3, "zero3_offload.json": 3}
    offload = json.loads((REPO / "train/deepspeed/zero3_offload.json").read_text())["zero_optimization"]
    assert offload["offload_optimizer"]["device"] == offload["offload_param"]["device"] == "cpu"


def _recipe_file(tmp_path: Path, **fields) -> Path:
    tree = {"model": {"base": "some/model"}, "data": {"files": ["data.json"]}, **fields}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_overrides_are_typed_and_nested(tmp_path):
    path = _recipe_file(tmp_path)
    recipe = load_recipe(
        path,
        ["lr=1e-4", "lora.r=4", "data.files.0.weight=2", "frames.num_frames=3", "resume=true", "lr_vision=0"],
    )
    assert recipe.lr == 1e-4 and recipe.lora.r == 4 and recipe.data.files[0].weight == 2.0
    assert recipe.frames.num_frames == 3 and recipe.resume is True
    assert group_learning_rates(recipe) == {"vision": 0.0, "projector": 1e-4, "lm": 1e-4}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=fast", "field 'lr': expected a number, got 'fast'"),
        ("batch_size=2.5", "field 'batch_size': expected an integer, got 2.5"),
        ("strategy=lorra", "'lorra' is not one of"),
        ("lora.alhpa=4", "unknown field 'lora.alhpa'; did you mean 'alpha'?"),
        ("learning_rate=1", "unknown field 'learning_rate'"),
        ("data.files.5.weight=1", "data.files.5 is not a section"),
        ("lr", "is not key=value"),
        ("deepspeed=missing.json", "deepspeed config missing.json not found"),
        ("distill.weight=0.5", "distill is an add-on to modified-feature strategies"),
    ],
)
def test_bad_overrides_name_the_field(tmp_path, override, message):
    with pytest.raises(RecipeError) as info:
        load_recipe(_recipe_file(tmp_path), [override])
    assert message in str(info.value)
    assert str(tmp_path / "r.yaml") in str(info.value)


def test_model_source_must_be_exactly_one(tmp_path):
    with pytest.raises(RecipeError, match=r"exactly one of model\.base"):
        load_recipe(_recipe_file(tmp_path), ["model.tiny={}"])


def test_cli_reports_recipe_errors_before_launching(tmp_path, capsys):
    path = _recipe_file(tmp_path)
    assert cli.main([str(path), "lora.rank=4", "--nproc", "2"]) == 2
    err = capsys.readouterr().err
    assert "videollm train: error:" in err and "lora.rank" in err


def test_launcher_command_relaunches_under_torchrun_or_deepspeed(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    args = cli.build_parser().parse_intermixed_args(
        ["r.yaml", "lr=1", "--nproc", "2", "--master-port", "29999"]
    )
    command = cli.launcher_command(args)
    assert command[1:3] == ["-m", "torch.distributed.run"]
    assert command[-4:] == ["-m", "videollm.train.cli", "r.yaml", "lr=1"]
    args = cli.build_parser().parse_intermixed_args(["r.yaml", "--hostfile", "hosts"])
    assert cli.launcher_command(args)[1:5] == ["-m", "deepspeed.launcher.runner", "--hostfile", "hosts"]
    assert cli.launcher_command(cli.build_parser().parse_intermixed_args(["r.yaml"])) is None
    monkeypatch.setenv("WORLD_SIZE", "2")  # already under a launcher: train here
    assert cli.launcher_command(args) is None
    # deepspeed's launcher passes --local_rank; it is accepted
    assert cli.build_parser().parse_intermixed_args(["r.yaml", "--local_rank=1"]).local_rank == 1


def test_precision_follows_the_device():
    cpu = training_mode("auto", cuda=False)
    assert (cpu.use_cpu, cpu.bf16, cpu.fp16) == (True, False, False)
    assert training_mode("bf16", cuda=False).bf16  # CPU autocast, allowed because use_cpu is set
    with pytest.raises(RecipeError, match="fp16 mixed precision needs a GPU"):
        training_mode("fp16", cuda=False)
