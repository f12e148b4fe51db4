"""The starter recipe, in its few-minute version, runs end to end and improves held-out accuracy."""

from __future__ import annotations

import pytest

# Minutes on an idle 2-core machine; far longer when the cores are shared, hence the long timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_short_recipe_improves_held_out_accuracy(tmp_path, monkeypatch):
    from videollm.starter.model import PARTS_FILE, assemble
    from videollm.starter.train import load_starter_recipe, run

    monkeypatch.setenv("VIDEOLLM_CACHE", str(tmp_path / "cache"))
    recipe = load_starter_recipe("train/recipes/starter_short.yaml", [f"output_dir={tmp_path / 'run'}"])
    report = run(recipe, log=lambda s: None)
    curve = report["curve"]
    start, end = curve[0]["accuracy"]["all"], curve[-1]["accuracy"]["all"]
    assert curve[0]["stage"] == "start" and curve[-1]["stage"] == "finetune"
    assert end >= start + 10, [(p["stage"], p["accuracy"]["all"]) for p in curve]
    assert report["chat_after"] and all(reply.strip() for reply in report["chat_after"])
    parts = tmp_path / "run" / "parts"
    assert (parts / PARTS_FILE).is_file() and (parts / "lora" / "adapter_config.json").is_file()
    out = assemble(parts, tmp_path / "assembled", log=lambda s: None)
    assert (out / "config.json").is_file()
