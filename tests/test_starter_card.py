"""The starter's model card is generated from its run's report.json and says exactly what was measured.

`REPORT` mirrors what `videollm.starter.train.run` writes (recipe as `asdict(StarterRecipe)`, one
entry per stage run, the held-out curve of `evaluate`, chat replies, total minutes, provenance); the
numbers are chosen to test the card, not measured. The architecture is the real one (built from the
code's configs), and the shipped card is checked against the shipped report.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from videollm.bench.report import starter_section
from videollm.starter import card
from videollm.starter.train import CHAT_PROMPTS, StageSpec, StarterRecipe

ASSETS = Path(card.__file__).parent / "assets"


def _recipe() -> dict:
    recipe = StarterRecipe(
        stages=[
            StageSpec("tower", steps=20, batch_size=128, lr=2e-3, eval_every=10),
            StageSpec("vision", steps=20, batch_size=16, lr=2e-3, eval_every=10),
            StageSpec("align", steps=300, lr=3e-3, clips=256),
            StageSpec("finetune", steps=30, batch_size=8, lr=1e-3, lr_projector=2e-4, eval_every=10),
        ],
        eval_clips=40,
    )
    return json.loads(json.dumps(asdict(recipe)))


def _point(stage: str, step: int, clips: int, minutes: float, static: float, temporal: float) -> dict:
    acc = {
        "all": (static * 60 + temporal * 40) / 100,
        "static": static,
        "static/color": static,
        "temporal": temporal,
        "temporal/direction": temporal,
    }
    n = {"all": 100, "static": 60, "static/color": 60, "temporal": 40, "temporal/direction": 40}
    samples = [
        {
            "q": "What is the color of the small square?",
            "answer": "purple",
            "pred": "purple" if static > 50 else "blue",
        },
        {"q": "Which way does the red circle move?", "answer": "left", "pred": "The red circle | moves"},
    ]
    return {
        "stage": stage,
        "step": step,
        "train_clips": clips,
        "minutes": minutes,
        "accuracy": acc,
        "n": n,
        "samples": samples,
    }


REPORT = {
    "recipe": _recipe(),
    "stages": [
        {
            "name": "tower",
            "minutes": 3.25,
            "frames": 2560,
            "curve": [
                {
                    "step": s,
                    "frames": s * 128,
                    "loss": 2.0 / s,
                    "minutes": s / 6,
                    "accuracy": {"color": 90.0 + s / 2, "shape": 40.0 + s, "size": 80.0},
                }
                for s in (10, 20)
            ],
        },
        {
            "name": "vision",
            "minutes": 4.5,
            "clips": 320,
            "curve": [
                {
                    "step": s,
                    "clips": s * 16,
                    "loss": 3.0 / s,
                    "minutes": s / 4,
                    "accuracy": {"absent": 70.0, "color": 99.0, "motion": 20.0 + s},
                }
                for s in (10, 20)
            ],
        },
        {
            "name": "align",
            "minutes": 1.75,
            "clips": 256,
            "mse": 0.0123,
            "nearest_word_accuracy": 97.25,
            "cosine": 0.91,
            "tokens": 9728,
            "seconds": 61.0,
        },
        {
            "name": "finetune",
            "minutes": 12.0,
            "clips": 240,
            "losses": [{"step": i, "loss": 3.0 - i / 20} for i in range(1, 31)],
        },
    ],
    "curve": [
        _point("start", 0, 0, 9.0, 20.0, 25.0),
        _point("align", 300, 256, 11.0, 40.0, 35.0),
        _point("finetune", 10, 336, 15.0, 80.0, 70.0),
        _point("finetune", 30, 496, 23.0, 95.0, 85.0),
    ],
    "machine": {
        "platform": "Linux-6.1-x86_64-with-glibc2.36",
        "python": "3.11.9",
        "cpu_count": 2,
        "torch": "2.13.0+cpu",
        "device": "cpu",
        "processor": "AMD EPYC 7B13",
        "torch_threads": 2,
        "transformers": "5.19.0",
    },
    "command": [
        "/work/main/videollm/starter/train.py",
        "train/recipes/starter.yaml",
        "stages.3.steps=30",
    ],
    "chat_before": ["The capital of France is Paris.", "1. Drink water.\n2. Sleep.", "The ocean is vast."],
    "chat_after": ["Paris.", "Drink water | sleep.", "The ocean is blue."],
    "minutes": 24.5,
}


@pytest.fixture(scope="module")
def arch() -> card.Architecture:
    return card.architecture(REPORT["recipe"])


def _render(report: dict, arch: card.Architecture, drift: list[str] | None = None) -> str:
    return card.render_card(report, "train/recipes/starter.yaml", arch=arch, drift=drift)


def _table_rows(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(header_start))
    rows = []
    for ln in lines[i + 2 :]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split(" | ")])
    return rows


def test_architecture_counts_the_built_modules(arch):
    """Counts come from modules built with the code's configs: the tower and connector as vision pretraining builds them."""
    from videollm.model.adapters import apply_adapters
    from videollm.model.connectors import ConnectorConfig, build_connector
    from videollm.starter.vision import ADAPTER, CONNECTOR, VISION_CONFIG, build_tower

    parts = {p.name: p for p in arch.parts}
    dim = VISION_CONFIG["hidden_size"]
    connector = build_connector(ConnectorConfig.from_dict(CONNECTOR), dim, dim)
    tower = build_tower()
    apply_adapters(tower, ADAPTER, None)  # the tower as the clip stage and the video model carry it
    assert parts["vision tower"].params == sum(p.numel() for p in tower.parameters())
    assert parts["connector"].params == sum(p.numel() for p in connector.parameters())
    assert 130e6 < parts["language model"].params < 140e6 and not parts["language model"].shipped
    # LoRA of r 8 on SmolLM2's 30 layers × 7 projections (q/k/v/o/gate/up/down), as peft would add it
    assert "210 LM projections" in parts["LoRA"].what and parts["LoRA"].params == 2_442_240
    assert arch.tokens_per_video == arch.connector_tokens + 1 and arch.frame_count_free
    assert any(k.startswith("model.multi_modal_projector.") for k in arch.shapes)


def test_card_met_tables_and_reproduce(arch):
    text = _render(REPORT, arch)
    assert (
        "**Status: targets MET — held-out exact match static 95.0 % of 60 questions (target ≥ 90 %: met)"
        in text
    )
    assert "temporal 85.0 % of 40 questions (target ≥ 80 %: met); after finetune step 30.**" in text
    assert "Missing from this report" not in text
    stages = _table_rows(text, "| stage | trains |")
    assert [r[0] for r in stages] == ["`tower`", "`vision`", "`align`", "`finetune`"]
    assert stages[0][2:] == ["20", "128", "0.002", "2,560 frames", "3.2"]
    assert stages[2][5] == "256 clips (9,728 tokens)" and stages[3][5:] == ["240 clips", "12.0"]
    assert "Minutes: 21.5 in the stages; this invocation as a whole 24.5" in text
    assert (
        "AMD EPYC 7B13, 2 CPUs, device cpu, Python 3.11.9, torch 2.13.0+cpu, transformers 5.19.0, 2 torch threads"
        in text
    )
    by_type = {r[0]: r[1:] for r in _table_rows(text, "| question type |")}
    assert list(by_type) == ["**all**", "**static**", "static/color", "**temporal**", "temporal/direction"]
    assert by_type["**static**"] == ["60", "20.0", "95.0"] and by_type["temporal/direction"] == [
        "40",
        "25.0",
        "85.0",
    ]
    tower = _table_rows(text, "| step | frames |")
    assert tower[-1] == ["20", "2,560", "0.1", "3.3", "100.0", "60.0", "80.0"]
    assert _table_rows(text, "| step | clips |")[0][-3:] == ["70.0", "99.0", "30.0"]
    assert "nearest-word accuracy 97.2 %" in text
    assert _table_rows(text, "| steps | loss |")[0] == ["1–3", "2.9"]
    qa = _table_rows(text, "| after | step |")
    assert [r[0] for r in qa] == ["start", "align", "finetune", "finetune"] and qa[-1][4:] == [
        "91.0",
        "95.0",
        "85.0",
    ]
    chat = _table_rows(text, "| prompt |")
    assert chat[0] == [CHAT_PROMPTS[0], "The capital of France is Paris.", "Paris."]
    assert chat[1][1:] == ["1. Drink water. 2. Sleep.", "Drink water \\| sleep."]
    samples = _table_rows(text, "| question | reference |")
    assert samples[0][2:] == ["blue ✗", "purple ✓"]
    assert "python -m videollm.starter.train train/recipes/starter.yaml stages.3.steps=30   # writes" in text
    assert "cp -r runs/starter/parts/lora videollm/starter/assets/" in text
    # what the README's Results section quotes from the card
    quoted = "\n".join(starter_section(text, "card.md"))
    assert (
        "**Status: targets MET" in quoted and "| finetune | 30 | 496 | 23.0 | 91.0 | 95.0 | 85.0 |" in quoted
    )
    assert (
        "Command (from the card): `python -m videollm.starter.train train/recipes/starter.yaml stages.3.steps=30`"
        in quoted
    )


def test_status_not_met_names_the_missed_target(arch):
    report = copy.deepcopy(REPORT)
    report["curve"][-1]["accuracy"]["temporal"] = 79.96  # rounds to 80.0: the status must not hide the miss
    text = _render(report, arch)
    assert (
        "**Status: targets NOT MET — held-out exact match static 95.0 % of 60 questions (target ≥ 90 %: met)"
        in text
    )
    assert "temporal 79.96 % of 40 questions (target ≥ 80 %: missed)" in text
    report["curve"] = []
    text = _render(report, arch)
    assert "**Status: NOT MEASURED — the report has no held-out evaluation yet" in text
    assert text.count("No held-out evaluation in this report.") == 2


def test_partial_report_says_what_is_missing(arch):
    """A run that reused tower.pt/vision.pt and is still in finetune: nothing invented for the missing parts."""
    report = copy.deepcopy(REPORT)
    report["stages"] = report["stages"][2:3]  # align only: tower and vision reused, finetune not reached
    report["curve"] = report["curve"][:2]
    for key in ("chat_after", "minutes", "machine", "command"):
        del report[key]
    text = _render(report, arch)
    assert "after align step 300 — the run had not finished when this report was written.**" in text
    assert "targets NOT MET" in text
    missing = text.split("**Missing from this report:**")[1].split("##")[0]
    assert (
        "stage `tower`: not trained in this run: `runs/starter/tower.pt` from an earlier run was reused"
        in missing
    )
    assert "stage `vision`: not trained in this run: `runs/starter/vision.pt`" in missing
    assert "stage `finetune`: the run had not reached it when the report was written" in missing
    assert "chat replies after training: not recorded (the run had not finished)" in missing
    assert "total minutes" in missing and "training machine: not recorded" in missing
    stages = {r[0]: r for r in _table_rows(text, "| stage | trains |")}
    assert stages["`tower`"][5:] == ["—", "— (reused)"] and stages["`finetune`"][6] == "— (not reached)"
    assert "Minutes: 1.8 in the stages; this invocation as a whole had not finished" in text
    assert "Training machine (recorded by the run): not recorded in the report." in text
    assert "Not in this report: not trained in this run" in text  # the tower / vision curves
    assert (
        "### Stage `finetune`: training loss" in text
        and "Not in this report: the run had not reached it" in text
    )
    assert _table_rows(text, "| prompt |")[0][2] == "—"
    assert "python -m videollm.starter.train train/recipes/starter.yaml   # writes" in text
    assert "The run's command line (`sys.argv`): not recorded in the report." in text
    report["recipe"]["vision_checkpoint"] = "runs/old/vision.pt"
    assert "stage `vision`: loaded from `runs/old/vision.pt` (`vision_checkpoint`)" in _render(report, arch)


def test_recipe_drift_and_command_parsing(tmp_path):
    recipe = tmp_path / "train/recipes/starter.yaml"
    recipe.parent.mkdir(parents=True)
    stages = "\n".join(
        f"  - {{name: {s['name']}, steps: {s['steps']}, batch_size: {s['batch_size']}, lr: {s['lr']}, "
        f"lr_projector: {s['lr_projector']}, clips: {s['clips']}, eval_every: {s['eval_every']}}}"
        for s in REPORT["recipe"]["stages"]
    ).replace("lr_projector: None", "lr_projector: null")
    recipe.write_text(f"name: starter\nstages:\n{stages}\neval_clips: 40\n")
    assert card.recipe_drift(REPORT, tmp_path) == []
    recipe.write_text(recipe.read_text().replace("eval_clips: 40", "eval_clips: 60"))
    assert card.recipe_drift(REPORT, tmp_path) == ["`eval_clips`: run 40, file now 60"]
    gone = card.recipe_drift({**REPORT, "command": ["x/videollm", "train", "nope.yaml"]}, tmp_path)
    assert len(gone) == 1 and "nope.yaml not found" in gone[0]
    assert card.run_args(["/v/bin/videollm", "train", "r.yaml", "a=1"]) == ("r.yaml", ["a=1"])
    assert card.run_args(["pytest", "-x"]) is None and card.run_args(None) is None


def test_drift_is_shown_with_the_reproduce_command(arch):
    text = _render(REPORT, arch, drift=["`eval_clips`: run 40, file now 60"])
    assert "**Note:** `train/recipes/starter.yaml` has changed since this run" in text
    assert "- `eval_clips`: run 40, file now 60" in text


def test_command_writes_the_card_and_copies_the_report(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert card.main([str(run)]) == 2
    assert "report.json not found" in capsys.readouterr().err
    (run / "report.json").write_text("{}")
    assert card.main([str(run)]) == 2
    assert "field 'recipe' missing" in capsys.readouterr().err
    (run / "report.json").write_text(json.dumps(REPORT))
    out = tmp_path / "assets" / "MODEL_CARD.md"
    assert card.main([str(run), "--out", str(out)]) == 0
    assert json.loads((out.parent / "report.json").read_text()) == REPORT
    assert out.read_text() == card.card_for(REPORT)
    assert card.main([str(run), "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("MET", "met"))
    assert card.main([str(run), "--out", str(out), "--check"]) == 1


def test_run_parts_must_match_the_built_architecture(tmp_path, arch):
    import torch
    from safetensors.torch import save_file

    parts = tmp_path / "parts.safetensors"
    save_file({k: torch.zeros(shape) for k, shape in arch.shapes.items()}, parts)
    card.check_parts(parts, arch)
    key = next(k for k in arch.shapes if k.startswith("model.multi_modal_projector."))
    shapes = {**arch.shapes, key: (3, *arch.shapes[key][1:])}
    save_file({k: torch.zeros(shape) for k, shape in shapes.items()}, parts)
    with pytest.raises(
        card.CardError, match=r"does not match the architecture the code builds now .*multi_modal_projector"
    ):
        card.check_parts(parts, arch)


def test_run_records_its_machine(monkeypatch):
    """The shared run record (`videollm.bench.provenance`), with the command as the argv list the card
    reads the recipe and overrides back from."""
    train = str(card.REPO / "videollm" / "starter" / "train.py")
    monkeypatch.setattr("sys.argv", [train, "train/recipes/starter.yaml", "stages.3.steps=30"])
    record = card.provenance()
    assert set(record) == {"machine", "date", "command", "load_average"}
    assert record["machine"]["cpu_count"] >= 1 and record["machine"]["torch_threads"] >= 1
    assert (
        record["machine"]["transformers"] and record["machine"]["processor"] and "vllm" in record["machine"]
    )
    assert record["command"] == [
        "videollm/starter/train.py",
        "train/recipes/starter.yaml",
        "stages.3.steps=30",
    ]
    assert card.run_args(record["command"]) == ("train/recipes/starter.yaml", ["stages.3.steps=30"])
    assert record["date"].endswith("+00:00") and len(record["load_average"]) == 3


@pytest.mark.skipif(
    not (ASSETS / "report.json").is_file(), reason="assets/report.json ships when the run ends"
)
def test_shipped_card_is_rendered_from_the_shipped_report():
    report = json.loads((ASSETS / "report.json").read_text(encoding="utf-8"))
    assert (ASSETS / "MODEL_CARD.md").read_text(encoding="utf-8") == card.card_for(report), (
        "MODEL_CARD.md differs from its report: python -m videollm.starter.card runs/starter "
        "--out videollm/starter/assets/MODEL_CARD.md"
    )
