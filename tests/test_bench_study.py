"""The transfer-strategy study (`videollm bench study`): grid, verdicts, and a micro grid end to end.

The micro grid runs the real path: `render_world` clips, the image stage and a cell's video stage
through `videollm.train`, evaluation through `videollm.eval`'s runner on decoded mp4 files, the
report with matplotlib; then a resumed run that adds the baseline without redoing the first cell.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from safetensors.torch import load_file

from videollm.bench import study_report
from videollm.bench.provenance import command_args
from videollm.bench.study import (
    StudyError,
    connector_tokens,
    grid,
    image_frames,
    image_init,
    load_study,
    main,
    patch_grid,
    tower_state,
)
from videollm.cli import main as cli_main

CONFIG = Path(__file__).resolve().parents[1] / "train" / "recipes" / "study.yaml"
MICRO = [
    "world.num_videos=4",
    "world.num_test_videos=2",
    "text_stage.max_steps=2",
    "text_stage.batch_size=2",
    "image_stage.max_steps=2",
    "image_stage.batch_size=2",
    "video_stage.max_steps=2",
    "video_stage.batch_size=2",
    "eval.limit=4",
    "serving.enabled=false",
]


def test_shipped_grid_covers_the_issue():
    cfg = load_study(CONFIG, "small")
    cells = grid(cfg)
    names = [c.name for c in cells]
    assert len(names) == len(set(names))
    sweep = [c for c in cells if c.sweep == "connector"]
    families = {c.connector for c in sweep}
    assert families == {
        "frames",
        "spatial_pool",
        "spatiotemporal_pool",
        "pool3d",
        "slowfast",
        "resampler",
        "token_merge",
    }
    assert all({"hi", "lo"} <= {c.variant for c in sweep if c.connector == f} for f in families)
    strategies = {cfg.strategies[c.strategy]["strategy"] for c in cells if c.sweep != "baseline"}
    assert strategies == {"frozen", "adapter", "side", "lora", "full"}
    assert {cfg.strategies[k].get("adapter", {}).get("type") for k in ("adapter_st", "adapter_mamba")} == {
        "st_adapter",
        "mamba",
    }
    assert [c.frames for c in cells if c.sweep == "baseline"] == [1]
    # the models see through the starter's pretrained tower: 8×8 patches per 64-px frame
    assert cfg.tower == "starter" and patch_grid(cfg) == (8, 8)
    # the two budgets of each connector really are two token counts, hi above lo
    for f in families:
        hi, lo = (
            connector_tokens(cfg, c)
            for v in ("hi", "lo")
            for c in sweep
            if (c.connector, c.variant) == (f, v)
        )
        assert hi > lo, f
    tokens = {c.name: connector_tokens(cfg, c) for c in cells}
    assert tokens["image__single_frame__baseline"] == 64  # the image model's `frames` connector, one frame
    assert tokens["lora__pool3d__hi"] == tokens["lora__pool3d__fewframes"] == 128  # the equal-budget trade
    full = load_study(CONFIG, "full")
    assert (
        full.video_stage["max_steps"] > cfg.video_stage["max_steps"] and [c.name for c in grid(full)] == names
    )


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "study.yaml"
    text = CONFIG.read_text().replace("type: token_merge, budget: 32", "type: token_merge, budget: 0")
    bad.write_text(text)
    with pytest.raises(StudyError, match=r"connectors\.token_merge\.lo: connector\.budget=0"):
        load_study(bad)
    with pytest.raises(StudyError, match="budget 'huge' is not defined; budgets there: small, full"):
        load_study(CONFIG, "huge")
    with pytest.raises(StudyError, match=r"connector_sweep\.strategy 'nope'"):
        load_study(CONFIG, "small", ["connector_sweep.strategy=nope"])
    with pytest.raises(StudyError, match="unknown field 'eval_stage'"):
        load_study(CONFIG, "small", ["eval_stage.limit=3"])
    assert main(["--config", str(CONFIG), "--cells", "nothing_matches", "--out", str(tmp_path / "w")]) == 2


def test_image_frames_and_tower_errors(tmp_path):
    assert image_frames(16, None) == [8]  # the world's own image: the middle frame
    assert image_frames(16, 2) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert image_frames(16, 3) == [2, 5, 8, 11, 14]  # always through the middle frame
    assert image_frames(16, 1) == list(range(16))

    with pytest.raises(StudyError, match=r"tower: '/nope.pt' is neither 'starter'"):
        load_study(CONFIG, "small", ["tower=/nope.pt"])
    with pytest.raises(StudyError, match=r"model\.tiny\.vision_config: the tower's architecture comes from"):
        load_study(CONFIG, "small", ["model.tiny.vision_config.hidden_size=64"])
    with pytest.raises(StudyError, match="image_frame_stride must be >= 1"):
        load_study(CONFIG, "small", ["image_frame_stride=0"])

    import torch
    from safetensors.torch import save_file

    # a VisionPretrainer-style file (vision_tower.*) and a videollm one (model.vision_tower.*) both load
    weight = torch.zeros(128, 3, 8, 8)
    torch.save(
        {
            "vision_tower.embeddings.patch_embedding.weight": weight,
            "vision_tower.encoder.layers.0.st_adapter.up.weight": weight,  # the starter's video weights: left out
            "head.weight": weight,
        },
        tmp_path / "t.pt",
    )
    assert set(tower_state(tmp_path / "t.pt")) == {"embeddings.patch_embedding.weight"}
    save_file({"model.connector.x": torch.zeros(1)}, tmp_path / "none.safetensors")
    with pytest.raises(StudyError, match="holds no vision-tower weights"):
        tower_state(tmp_path / "none.safetensors")
    # a tower of another architecture (an older starter's hidden size) is refused, naming the fix
    save_file(
        {"model.vision_tower.embeddings.patch_embedding.weight": torch.zeros(64, 3, 8, 8)},
        tmp_path / "old.safetensors",
    )
    cfg = load_study(CONFIG, "small", [f"tower={tmp_path / 'old.safetensors'}", "model.tiny.tokenizer=null"])
    with pytest.raises(
        StudyError, match=r"does not fit the starter's tower architecture.*\(64, 3, 8, 8\) in the file"
    ):
        image_init(cfg, tmp_path / "init", print)
    assert not (tmp_path / "init").exists()


def _cell(
    name: str, sweep: str, strategy: str, connector: str, variant: str, mc: tuple[float, float], **kw
) -> dict:
    static, temporal = mc
    return {
        "cell": name,
        "sweep": sweep,
        "strategy": strategy,
        "connector": connector,
        "variant": variant,
        "visual_tokens": kw.get("tokens", 32),
        "connector_config": kw.get("config", {}),
        "mc": {"all": (static + temporal) / 2, "static": static, "temporal": temporal},
    }


def test_findings_follow_the_numbers():
    cells = [
        _cell("b", "baseline", "image", "single_frame", "baseline", (80, 27)),
        _cell("f", "connector", "lora", "frames", "hi", (85, 50), tokens=128),
        _cell("s", "connector", "lora", "spatial_pool", "hi", (84, 48)),
        _cell("st", "connector", "lora", "spatiotemporal_pool", "hi", (80, 70), tokens=24),
        _cell("sf", "connector", "lora", "slowfast", "hi", (82, 66), tokens=56),
        _cell("p", "connector", "lora", "pool3d", "hi", (80, 60), config={"t": 8}),
        _cell("pl", "connector", "lora", "pool3d", "lo", (80, 62), config={"t": 4}),
        _cell("side", "strategy", "side", "spatial_pool", "hi", (70, 40)),
        _cell("ad", "strategy", "adapter_st", "spatial_pool", "hi", (75, 50)),
    ]
    study = {"cells": {c["cell"]: c for c in cells}, "chance": {"mc": {"temporal": 25.0, "static": 35.0}}}
    verdicts = {f["id"]: f for f in study_report.findings(study)}
    assert verdicts["image_model_sees"]["holds"] is True  # static 80 vs chance 35
    assert verdicts["baseline_near_chance"]["holds"] is True
    assert verdicts["temporal_connector_beats_baseline"]["holds"] is True  # 70 vs 27
    assert "spatiotemporal_pool__hi" not in verdicts["temporal_connector_beats_baseline"]["evidence"]
    assert "st 70.0 %" in verdicts["temporal_connector_beats_baseline"]["evidence"]
    assert verdicts["adapter_beats_side"]["holds"] is True
    assert verdicts["adapter_beats_frozen"]["holds"] is None  # no frozen cell: not measured, not guessed
    assert verdicts["disentangled_helps_temporal"]["holds"] is True
    assert verdicts["half_resolution_cheap"]["holds"] is True
    assert verdicts["temporal_pooling_hurts"]["holds"] is False  # t=4 scored higher here: reported as such
    assert verdicts["more_frames_fewer_tokens"]["holds"] is None
    # a baseline that answers nothing (0 %) is not "near chance"
    study["cells"]["b"]["mc"]["temporal"] = 0.0
    assert {f["id"]: f["holds"] for f in study_report.findings(study)}["baseline_near_chance"] is False
    assert "within_noise" not in verdicts["temporal_pooling_hurts"]  # no question counts: no noise claimed
    # an image model at chance on static questions is called out: the other findings rest on it
    study["cells"]["b"]["mc"]["static"] = 38.0
    assert {f["id"]: f["holds"] for f in study_report.findings(study)}["image_model_sees"] is False


def test_findings_say_when_a_gap_is_within_noise():
    cells = [
        _cell("b", "baseline", "image", "single_frame", "baseline", (80, 27)),
        _cell("st", "connector", "lora", "spatiotemporal_pool", "hi", (80, 70), tokens=24),
        _cell("p", "connector", "lora", "pool3d", "hi", (80, 60), config={"t": 8}),
        _cell("pl", "connector", "lora", "pool3d", "lo", (80, 62), config={"t": 4}),
    ]
    for c in cells:  # the small budget's test split: 56 static and 42 temporal questions
        c["mc"] |= {"n": 98, "n_static": 56, "n_temporal": 42}
        c |= {"frames": 8, "trainable_params": 1000, "train_time_s": 10.0}
    study = {"cells": {c["cell"]: c for c in cells}, "chance": {"mc": {"temporal": 25.0}}}
    verdicts = {f["id"]: f for f in study_report.findings(study)}
    beats = verdicts["temporal_connector_beats_baseline"]
    # 70 vs 27 on 42 questions each: s.e. of the gap = hypot(7.07, 6.85) = 9.8 points
    assert beats["gap"] == pytest.approx(43.0) and beats["noise"] == pytest.approx(9.85, abs=0.05)
    assert beats["within_noise"] is False and "(gap +43.0 ± 9.8 points, 1 s.e.)" in beats["evidence"]
    pooling = verdicts["temporal_pooling_hurts"]
    assert pooling["holds"] is False and pooling["within_noise"] is True  # 60 vs 62: decides nothing
    text = study_report.markdown(
        {**study, "findings": list(verdicts.values()), "planned": list(study["cells"])}
    )
    assert "temporal pooling hurts temporal questions (PLLaVA)**: does not hold (within noise)." in text


@pytest.mark.slow
def test_micro_grid_end_to_end_and_resume(tmp_path, capsys):
    work, results = tmp_path / "work", tmp_path / "results"
    common = ["--config", str(CONFIG), "--out", str(work), "--results", str(results), *MICRO]
    first = "lora__spatial_pool__hi"  # the connector sweep's strategy: LoRA, merged for eval and serving
    assert cli_main(["bench", "study", "--cells", f"^{first}$", *common]) == 0

    done = work / "cells" / first / "result.json"
    record = json.loads(done.read_text())
    assert record["strategy_fields"]["strategy"] == "lora" and record["train_steps"] == 2
    assert record["model_dir"].endswith("merged") and (Path(record["model_dir"]) / "config.json").is_file()
    assert record["visual_tokens"] == 8 * 4 * 4 + 1  # spatial_pool stride 2 on the 8×8 grid, + the newline
    assert 0 < record["trainable_params"] < record["total_params"]
    assert record["train_time_s"] > 0 and record["peak_memory_mb"] is not None
    for task in ("qa", "mc"):
        assert {"all", "static", "temporal"} <= set(record[task]) and record[task]["n"] == 4
        assert record[task]["n_errors"] == 0
    assert record["cider"] is not None and record["serving"] == {
        "skipped": "serving.enabled is false in the study config"
    }
    # the image stage started from the starter's shipped tower, on several frames of each training clip
    from videollm.starter.model import ASSETS, PARTS_FILE

    (init,) = (work / "image_init").iterdir()
    shipped, start = tower_state(ASSETS / PARTS_FILE), tower_state(init / "model.safetensors")
    assert len(shipped) > 10 and set(shipped) == set(start)
    assert all((shipped[k] == start[k]).all() for k in shipped)
    images = {r["image"] for r in json.loads((work / "world" / "train" / "study_image.json").read_text())}
    assert (
        "frames/synth_s0_train_00000_t008.png" in images
        and "study_frames/synth_s0_train_00000_t000.png" in images
    )
    last = image_frames(16, load_study(CONFIG).image_frame_stride)[-1]
    assert (
        last > 8
        and (work / "world" / "train" / "study_frames" / f"synth_s0_train_00003_t{last:03d}.png").is_file()
    )
    # the LM's text stage ran first (the image stage started from it); the video stage's clips carry
    # several questions each
    (text,) = (work / "text_stage").iterdir()
    assert (text / "config.json").is_file()
    packed = json.loads((work / "world" / "train" / "study_video.json").read_text())
    assert any(len(r["conversations"]) > 2 for r in packed)
    # the cell started from the image-stage model: every non-connector weight carried over unchanged
    (image_model,) = (work / "image_stage").iterdir()
    image = load_file(image_model / "model.safetensors")
    carried = load_file(work / "cells" / first / "base" / "model.safetensors")
    shared = [k for k in image if "connector" not in k]
    assert shared and all((image[k] == carried[k]).all() for k in shared)

    # without --resume, finished cells are not silently kept or overwritten
    assert main(["--cells", "baseline", *common]) == 2
    assert "--resume" in capsys.readouterr().err

    before = done.read_bytes(), done.stat().st_mtime_ns
    weights = work / "cells" / first / "run" / "adapter_model.safetensors"
    weights_mtime = weights.stat().st_mtime_ns
    assert main(["--cells", f"^{first}$|baseline", "--resume", *common]) == 0
    out = capsys.readouterr().out
    assert f"{first}: done (result on disk), skipped" in out and "image stage: training" not in out
    assert (
        done.read_bytes(),
        done.stat().st_mtime_ns,
    ) == before and weights.stat().st_mtime_ns == weights_mtime

    study = json.loads((results / "study.json").read_text())
    assert set(study["cells"]) == {first, "image__single_frame__baseline"}
    # the run record of the invocation that wrote it (in-process here: this process's command line)
    assert study["command"] == shlex.join(command_args()) and len(study["load_average"]) == 3
    assert study["machine"]["cpu_count"] >= 1 and study["machine"]["torch_threads"] >= 1 and study["date"]
    baseline = study["cells"]["image__single_frame__baseline"]
    assert (
        baseline["frames"] == 1 and baseline["trainable_params"] == 0 and baseline["visual_tokens"] == 64 + 1
    )
    assert baseline["model_dir"] == str(image_model)
    assert 0 < study["chance"]["mc"]["temporal"] < 100 and len(study["planned"]) == 21
    assert {f["id"] for f in study["findings"]} >= {
        "baseline_near_chance",
        "temporal_connector_beats_baseline",
    }
    report = (results / "study.md").read_text()
    assert "| lora__spatial_pool__hi | lora | spatial_pool/hi | 8 | 129 |" in report
    assert "Does the survey hold" in report
    for png in ("study_tokens.png", "study_strategies.png"):
        assert (results / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# vLLM's own stdout around the measurement, as `videollm.bench.throughput` printed it in a study run:
# the shutdown log comes after the JSON line (the last line is never the measurement).
VLLM_STDOUT = """\
(EngineCore pid=21013) INFO 11-30 06:24:52 [compilation.py:317] Enabled custom fusions: norm_quant, act_quant
(MainProcess pid=21000) INFO 11-30 06:24:52 [hf.py:648] Detected the chat template content format to be 'openai'.
{"engine": "vllm", "requests": 8, "seconds": 0.142, "requests_per_s": 56.27, "output_tokens_per_s": 583.8, \
"startup_s": 33.2, "enforce_eager": true, "dtype": "torch.bfloat16"}
(MainProcess pid=21000) INFO 11-30 06:24:52 [utils.py:628] [shutdown] Process manager: send sigterm to process EngineCore
(EngineCore pid=21013) INFO 11-30 06:24:55 [multiproc_executor.py:486] [shutdown] Executor: all workers exited gracefully
(MainProcess pid=21000) WARNING 11-30 06:24:57 [core_client.py:817] [shutdown] MPClient: engine core exited unexpectedly
"""


def test_serving_output_is_parsed_or_skipped_never_raised():
    from videollm.bench.study import parse_throughput

    measured = parse_throughput(VLLM_STDOUT, "", 0)
    assert measured["requests_per_s"] == 56.27 and measured["output_tokens_per_s"] == 583.8
    assert "exit_code" not in measured
    # a worker's log written into the middle of our line: the measurement is still found
    glued = VLLM_STDOUT.replace('{"engine"', '(Worker pid=7) INFO shutting down{"engine"')
    assert parse_throughput(glued, "", 0)["requests_per_s"] == 56.27
    # measured, then vLLM crashed at shutdown: the numbers stand and the exit code is recorded
    assert parse_throughput(VLLM_STDOUT, "Segmentation fault", -11)["exit_code"] == -11
    # killed while printing: a cut JSON line is no measurement
    cut = VLLM_STDOUT.replace('"dtype": "torch.bfloat16"}', '"dtype": "tor')
    skipped = parse_throughput(cut, "", 0)
    assert skipped == {"skipped": skipped["skipped"]} and "printed no measurement" in skipped["skipped"]
    failed = parse_throughput(VLLM_STDOUT.split("{")[0], "Traceback ...\nValueError: no model at /x", 1)
    assert failed == {
        "skipped": "the vLLM engine failed (exit 1): Traceback ... | ValueError: no model at /x"
    }
    assert parse_throughput("", "", 1) == {"skipped": "the vLLM engine failed (exit 1): no output"}


def test_serving_subprocess_failure_and_timeout_are_recorded(tmp_path):
    """The real subprocess: a checkpoint that is not there, and a run past serving.timeout_s whose
    whole process group (vLLM's engine processes included) is gone when the study moves on."""
    import psutil

    from videollm.bench.study import serving_throughput
    from videollm.data.synthetic import render_world

    pytest.importorskip("vllm")
    cfg = load_study(CONFIG, "small", ["serving.cells=null", "serving.timeout_s=600"])
    log = tmp_path / "serving.log"
    out = serving_throughput(tmp_path / "missing", tmp_path / "no_world", 8, cfg, "c", log_file=log)
    assert set(out) == {"skipped"} and out["skipped"].startswith("the vLLM engine failed (exit 1): ")
    assert "no_world is not a folder" in out["skipped"] and "no_world" in log.read_text()

    world = tmp_path / "world"
    render_world(world, num_videos=0, num_test_videos=1)
    cfg = load_study(CONFIG, "small", ["serving.cells=null", "serving.timeout_s=1"])
    model = tmp_path / "model_that_is_not_there"
    out = serving_throughput(model, world / "test", 8, cfg, "c")  # importing vLLM alone takes longer
    assert out == {"skipped": "the vLLM engine did not finish within serving.timeout_s=1 s"}
    left = [p for p in psutil.process_iter(["cmdline"]) if str(model) in " ".join(p.info["cmdline"] or [])]
    assert left == []

    cfg = load_study(CONFIG, "small", ["serving.cells=__hi$"])  # serving measured on some cells only
    assert serving_throughput(tmp_path, tmp_path, 8, cfg, "lora__x__lo") == {
        "skipped": "not measured in the small budget (serving.cells: '__hi$')"
    }
