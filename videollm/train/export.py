"""`videollm export RUN_DIR --merge-lora --out DIR`: a training run → one HF-format checkpoint.

The output is a plain `VideoLLMForConditionalGeneration` checkpoint (plus its processor) in the key
layout transformers and vLLM both load: a LoRA run's adapters are merged into the base it trained
on (`base/` of the run, or the video checkpoint it started from); any other run is re-saved as is.
RUN_DIR may also be one of its `checkpoint-N/` folders.

The export verifies itself: greedy decoding (fp32) on a sample video must give the same tokens from
the run as trained (unmerged) and from the exported folder loaded back from disk.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

RUN_FILE = "videollm_run.json"
RECIPE_FILE = "recipe.yaml"


class ExportError(ValueError):
    """A run folder that cannot be exported as asked; the message says why and what to do."""


@dataclass
class ExportReport:
    out: str
    merged: bool
    parity: bool | None  # None when not verified
    reference: list[int]
    exported: list[int]


def find_run(path: str | Path) -> tuple[Path, Path, dict]:
    """(run folder, weights folder, run info) for a run folder or one of its checkpoint folders."""
    weights = Path(path)
    if not weights.is_dir():
        raise ExportError(f"{weights} is not a folder; pass a run's output_dir (or one of its checkpoint-N)")
    run = weights if (weights / RUN_FILE).is_file() else weights.parent
    if not (run / RUN_FILE).is_file():
        raise ExportError(
            f"{weights} is not a videollm training run (no {RUN_FILE} in it or its parent); runs are written by "
            "`videollm train`, and finished runs have it"
        )
    return run, weights, json.loads((run / RUN_FILE).read_text())


def _is_peft(weights: Path) -> bool:
    return (weights / "adapter_config.json").is_file()


def load_run_model(weights: Path, info: dict) -> tuple[Any, Any]:
    """The run's model as trained, in fp32: a PeftModel over its base for LoRA runs, else the checkpoint."""
    from videollm.model import VideoLLMForConditionalGeneration, VideoLLMProcessor

    processor = VideoLLMProcessor.from_pretrained(weights)
    if not _is_peft(weights):
        return VideoLLMForConditionalGeneration.from_pretrained(weights, dtype=torch.float32), processor
    from peft import PeftModel

    base_path = info.get("base_checkpoint")
    if not base_path:
        raise ExportError(f"the run's {RUN_FILE} names no base checkpoint to merge the LoRA weights into")
    base = VideoLLMForConditionalGeneration.from_pretrained(base_path, dtype=torch.float32)
    return PeftModel.from_pretrained(base, weights), processor


def sample_conversation(run: Path) -> tuple[list[dict], Any]:
    """Messages up to the first reply, and the video, of the run's first video sample (a synthetic clip if none)."""
    from videollm.data.llava import DataSource, load_records
    from videollm.train.recipe import recipe_from_dict
    from videollm.train.trainer import frame_sampler

    recipe = recipe_from_dict(yaml.safe_load((run / RECIPE_FILE).read_text()), str(run / RECIPE_FILE))
    sampler = frame_sampler(recipe.frames)
    try:
        per_source = load_records([DataSource(f.path, f.media_root, f.weight) for f in recipe.data.files])
        record = next(r for records in per_source for r in records if r.modality == "video")
    except (ValueError, StopIteration):
        record = None
    if record is not None:
        from videollm.video import load_video

        reply = next(k for k, m in enumerate(record.messages) if m["role"] == "assistant")
        return [dict(m) for m in record.messages[:reply]], load_video(record.videos[0], sampler=sampler)
    from videollm.data.world import make_scene, render_scene
    from videollm.video import Video

    frames = render_scene(make_scene(np.random.default_rng(0)), recipe.frames.num_frames, 64)
    n = len(frames)
    video = Video(frames, np.arange(n) / 8.0, np.arange(n), fps=8.0, duration=n / 8.0, num_source_frames=n)
    messages = [
        {
            "role": "user",
            "content": [{"type": "video"}, {"type": "text", "text": "What happens in this video?"}],
        }
    ]
    return messages, video


@torch.no_grad()
def greedy(
    model: Any, processor: Any, messages: list[dict], video: Any, max_new_tokens: int = 16
) -> list[int]:
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], videos=[video], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


def export(
    run_dir: str | Path, out: str | Path, merge_lora: bool = False, verify: bool = True
) -> ExportReport:
    """Write the run's model to `out` as a plain checkpoint; verify greedy parity unless told not to."""
    from videollm.model import VideoLLMForConditionalGeneration

    run, weights, info = find_run(run_dir)
    peft = _is_peft(weights)
    if peft and not merge_lora:
        raise ExportError(
            f"{weights} holds LoRA adapters; pass --merge-lora to merge them into the base model (transformers and "
            "vLLM load the merged checkpoint)"
        )
    model, processor = load_run_model(weights, info)
    model.eval()
    if verify:
        messages, video = sample_conversation(run)
        reference = greedy(model, processor, messages, video)
    exported_model = model.merge_and_unload() if peft else model
    out = Path(out)
    exported_model.save_pretrained(out)
    processor.save_pretrained(out)
    if not verify:
        return ExportReport(str(out), peft, None, [], [])
    reloaded = VideoLLMForConditionalGeneration.from_pretrained(out, dtype=torch.float32).eval()
    exported = greedy(reloaded, processor, messages, video)
    return ExportReport(str(out), peft, exported == reference, reference, exported)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="videollm export",
        description="Export a training run (or one of its checkpoints) to an HF checkpoint, LoRA merged.",
    )
    p.add_argument("run_dir", help="a run's output_dir, or one of its checkpoint-N folders")
    p.add_argument("--out", required=True, help="folder to write the checkpoint to")
    p.add_argument("--merge-lora", action="store_true", help="merge LoRA adapters into the base (LoRA runs)")
    p.add_argument("--no-verify", action="store_true", help="skip the greedy-parity check")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        report = export(args.run_dir, args.out, merge_lora=args.merge_lora, verify=not args.no_verify)
    except (ExportError, OSError) as e:
        print(f"videollm export: error: {e}", file=sys.stderr)
        return 2
    what = "merged LoRA checkpoint" if report.merged else "checkpoint"
    print(f"exported {what} → {report.out}")
    if report.parity is None:
        return 0
    if not report.parity:
        print(
            f"videollm export: error: greedy tokens differ between the run and the export:\n  run:    "
            f"{report.reference}\n  export: {report.exported}",
            file=sys.stderr,
        )
        return 1
    print(f"verified: greedy parity (fp32) on a sample video, {len(report.reference)} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
