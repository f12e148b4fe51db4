"""The starter's training run: vision pretraining, then the LLaVA stages, on clips rendered on the fly.

`train/recipes/starter.yaml` describes the run (`StarterRecipe`): stage `vision` pretrains the tower
and connector to write a word-per-token description (`starter.vision`); stage `align` fits the
projector onto the LM's word embeddings (`starter.align`, everything else frozen); stage `finetune`
adds LoRA on the LM (peft) and trains it with the projector on multi-turn conversations. Clips come straight from the world's generator (`make_item`, the clips `videollm data
synth` would write for the same seed) with codec noise, so no files are decoded during training.
Held-out accuracy (a fresh world seed, the short-answer form that `videollm eval --tasks synthetic_qa`
scores) is measured after every stage and every `eval_every` steps: the learning curve of the card.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from videollm.data.collate import Collator, encode
from videollm.data.formats import MC_REPLIES
from videollm.data.llava import Sample
from videollm.eval.textmatch import exact_match
from videollm.starter.clips import Clip, codec_noise, make_clip
from videollm.starter.conversations import (
    REPLAY_PROMPTS,
    clip_conversation,
    messages,
    text_conversation,
    turn,
    whole_sentences,
)
from videollm.video.types import Video

Log = Callable[[str], None]
ORDER = ("tower", "vision", "align", "finetune")
CHAT_PROMPTS = (
    "What is the capital of France?",
    "Give me three tips for staying healthy.",
    "Write a short sentence about the ocean.",
)


@dataclass
class WorldSpec:
    seed: int = 0  # training clips: split "train" of this world seed
    eval_seed: int = 1234  # held-out clips: split "test" of a fresh seed
    frames: int = 16  # rendered frames per clip (the `videollm data synth` default)
    size: int = 64
    num_frames: int = 8  # frames the model sees (uniformly sampled, as evaluation samples)


@dataclass
class StageSpec:
    name: Literal["tower", "vision", "align", "finetune"]
    steps: int
    batch_size: int = 8
    lr: float = 1e-3  # the stage's main learning rate (tower / connector / projector / LoRA)
    tower_lr: float = 2e-4  # vision: the tower's learning rate while the connector learns to describe
    lr_projector: float | None = None  # finetune: projector (default: lr)
    lr_connector: float = 0.0  # align/finetune: > 0 also trains the pretrained connector
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    max_turns: int = 4
    p_text: float = 0.0  # finetune: share of samples that replay the LM's own text-only replies
    mc_reply: str = (
        "letter_first"  # finetune: multiple-choice replies "(B) up" or "up (B)" (formats.mc_reply)
    )
    clips: int = 256  # align: clips whose tokens the projector is fitted on
    warmup: float = 0.05
    eval_every: int = 0  # 0: only at the end of the stage


@dataclass
class StarterRecipe:
    name: str = "starter"
    world: WorldSpec = field(default_factory=WorldSpec)
    stages: list[StageSpec] = field(default_factory=list)
    eval_clips: int = 60
    eval_start: bool = True  # measure the assembled model before align (the curve's first point)
    chat: bool = True  # plain-text replies before and after training (the LM's own ability)
    output_dir: str = "runs/starter"
    seed: int = 0
    vision_checkpoint: str | None = (
        None  # a saved vision stage (vision.pt) to start from instead of stages tower and vision
    )
    reuse: bool = True  # a stage whose output (tower.pt, vision.pt) is already in output_dir is not re-run


def load_starter_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StarterRecipe:
    """Read a starter recipe (`key=value` overrides as for `videollm train`); errors name file and field."""
    from videollm.train.recipe import RecipeError, apply_override, dataclass_from_dict

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found")
    tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for o in overrides:
        apply_override(tree, o)
    try:
        recipe = dataclass_from_dict(StarterRecipe, tree, "")
    except RecipeError as e:
        raise RecipeError(f"{path}: {e}") from None
    names = [s.name for s in recipe.stages]
    if not names or names != sorted(names, key=ORDER.index) or len(set(names)) != len(names):
        raise RecipeError(
            f"{path}: stages must be some of {', '.join(ORDER)}, once each and in that order; got {names}"
        )
    for s in recipe.stages:
        if s.mc_reply not in MC_REPLIES:
            raise RecipeError(
                f"{path}: stages.{s.name}.mc_reply must be one of {', '.join(MC_REPLIES)}, got {s.mc_reply!r}"
            )
    return recipe


def is_starter_recipe(path: str | Path) -> bool:
    """Whether a recipe file is a staged starter recipe (top-level `stages:`), for `videollm train`'s dispatch."""
    try:
        tree = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(tree, dict) and "stages" in tree


def as_video(clip: Clip, frames: np.ndarray | None = None, fps: float = 8.0) -> Video:
    """A clip's sampled frames as the `Video` a decoder would return for the same indices."""
    return Video(
        frames=clip.frames if frames is None else frames,
        timestamps=clip.indices / fps,
        indices=clip.indices,
        fps=fps,
        duration=clip.item.num_frames / fps,
        num_source_frames=clip.item.num_frames,
        backend="render",
    )


def clip_stream(world: WorldSpec, start: int = 0) -> Iterator[Clip]:
    index = start
    while True:
        yield make_clip(world.seed, "train", index, world.frames, world.size, world.num_frames)
        index += 1


def held_out(world: WorldSpec, n: int) -> list[Clip]:
    return [
        make_clip(world.eval_seed, "test", i, world.frames, world.size, world.num_frames) for i in range(n)
    ]


# ----- evaluation ---------------------------------------------------------------------------------


@torch.no_grad()
def generate(
    model: Any, processor: Any, convs: list[list[dict]], videos: list[Video | None], max_new_tokens: int = 16
) -> list[str]:
    """Greedy replies to conversations (each ending with a user turn), batched with left padding."""
    texts = [processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
    tokenizer = processor.tokenizer
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        vids = [v for v in videos if v is not None]
        inputs = processor(text=texts, videos=vids or None, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = side
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return [
        tokenizer.decode(o[inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip() for o in out
    ]


def evaluate(model: Any, processor: Any, clips: list[Clip]) -> dict[str, Any]:
    """Exact-match accuracy (%) of the short-answer form on every question of `clips`, by type and qtype."""
    was_training = model.training
    model.eval()
    hits: dict[str, list[float]] = {}
    samples = []
    for clip in clips:
        qs = clip.item.questions
        if not qs:
            continue
        convs = [messages([(turn(q, "short")[0], "")])[:1] for q in qs]
        video = as_video(clip)
        preds = generate(model, processor, convs, [video] * len(qs), max_new_tokens=12)
        for q, p in zip(qs, preds, strict=True):
            ok = exact_match(p, q.answer)
            for key in ("all", q.type, f"{q.type}/{q.qtype}"):
                hits.setdefault(key, []).append(ok)
            if len(samples) < 12:
                samples.append({"q": q.question, "answer": q.answer, "pred": p})
    model.train(was_training)
    return {
        "accuracy": {k: 100.0 * sum(v) / len(v) for k, v in sorted(hits.items())},
        "n": {k: len(v) for k, v in sorted(hits.items())},
        "samples": samples,
    }


def chat_check(model: Any, processor: Any, prompts: tuple[str, ...] = CHAT_PROMPTS) -> list[str]:
    """Replies to plain-text prompts: the LM's own ability, compared before and after training."""
    was_training = model.training
    model.eval()
    convs = [[{"role": "user", "content": [{"type": "text", "text": p}]}] for p in prompts]
    replies = [generate(model, processor, [c], [None], max_new_tokens=40)[0] for c in convs]
    model.train(was_training)
    return replies


# ----- stages -------------------------------------------------------------------------------------


def _schedule(stage: StageSpec) -> Callable[[int], float]:
    warm = max(1, int(stage.warmup * stage.steps))
    return lambda s: (
        min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, stage.steps) / stage.steps))
    )


def _trainable(model: Any, stage: StageSpec) -> list[dict[str, Any]]:
    """Freeze everything, then open what the stage trains; optimizer groups with their learning rates."""
    for p in model.parameters():
        p.requires_grad_(False)
    groups: dict[str, tuple[float, list]] = {
        "projector": (stage.lr_projector or stage.lr, []),
        "connector": (stage.lr_connector, []),
        "lora": (stage.lr, []),
    }
    for name, p in model.named_parameters():
        if "multi_modal_projector" in name or name.endswith("image_newline"):
            key = "projector"
        elif ".connector." in name:
            key = "connector"
        elif "lora_" in name and stage.name == "finetune":
            key = "lora"
        else:
            continue
        if groups[key][0] > 0:
            p.requires_grad_(True)
            groups[key][1].append(p)
    return [{"params": ps, "lr": lr, "name": k} for k, (lr, ps) in groups.items() if ps]


def add_lora(model: Any, stage: StageSpec) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=stage.lora_r,
        lora_alpha=stage.lora_alpha,
        lora_dropout=0.0,
        target_modules=stage.lora_targets,
        bias="none",
    )
    return get_peft_model(model, config)


def train_llava_stage(
    model: Any,
    processor: Any,
    stage: StageSpec,
    stream: Iterator[Clip],
    rng: np.random.Generator,
    evaluate_now: Callable[[str, int], dict[str, Any]],
    log: Log,
    replay: Sequence[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """One align/finetune stage; returns its loss log. With `stage.p_text`, that share of the samples are
    text-only (prompt, reply) pairs from `replay`."""
    groups = _trainable(model, stage)
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(stage))
    collate = Collator(processor.tokenizer.pad_token_id)
    params = [p for g in groups for p in g["params"]]
    model.train()
    losses, start = [], time.perf_counter()
    for step in range(1, stage.steps + 1):
        features = []
        for _ in range(stage.batch_size):
            if replay and rng.random() < stage.p_text:
                prompt, reply = replay[int(rng.integers(len(replay)))]
                chat = text_conversation(prompt, reply)
                features.append(
                    encode(processor, Sample(id="replay", where="replay", modality="text", messages=chat))
                )
                continue
            clip = next(stream)
            conv = clip_conversation(clip.item, rng, max_turns=stage.max_turns, mc_order=stage.mc_reply)
            video = as_video(clip, codec_noise(clip.frames, rng))
            sample = Sample(
                id=clip.item.video_id,
                where=clip.item.video_id,
                modality="video",
                messages=conv,
                videos=[video],
            )
            features.append(encode(processor, sample))
        batch = collate(features)
        batch.pop("ids")
        batch.pop("skipped")
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 10 == 0 or step == stage.steps:
            log(
                f"{stage.name} step {step}/{stage.steps} loss {np.mean(losses[-10:]):.3f} {(time.perf_counter() - start) / 60:.1f} min"
            )
        if stage.eval_every and step % stage.eval_every == 0 and step != stage.steps:
            evaluate_now(stage.name, step)
    return [{"step": i + 1, "loss": v} for i, v in enumerate(losses)]


def run(recipe: StarterRecipe, log: Log = print, lm_dir: str | Path | None = None) -> dict[str, Any]:
    """The whole run; writes `parts/` (what the package ships), `vision.pt` and `report.json` to output_dir."""
    from videollm.starter.align import fit_projector
    from videollm.starter.model import build_starter, save_parts
    from videollm.starter.vision import VisionPretrainer, image_stage_param, pretrain_tower, pretrain_vision

    torch.manual_seed(recipe.seed)
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = recipe.world
    from videollm.starter.card import provenance  # the model card's machine record and command line

    report: dict[str, Any] = {"recipe": asdict(recipe), "stages": [], "curve": []} | provenance()
    earlier = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
    t0 = time.perf_counter()
    stages = {s.name: s for s in recipe.stages}
    vision = VisionPretrainer()
    if recipe.vision_checkpoint:
        vision.load_state_dict(torch.load(recipe.vision_checkpoint, weights_only=True))
        log(f"vision stages loaded from {recipe.vision_checkpoint}")
    elif not {"tower", "vision"} & set(stages):
        raise ValueError(
            "the starter needs a pretrained vision tower: add `tower`/`vision` stages or set vision_checkpoint"
        )
    for name, outfile in (("tower", "tower.pt"), ("vision", "vision.pt")):
        if name not in stages or recipe.vision_checkpoint:
            continue
        s, saved, started = stages[name], out / outfile, time.perf_counter()
        if recipe.reuse and saved.is_file():
            state = torch.load(saved, weights_only=True)
            if name == "tower":  # what the image stage trained; the connector keeps its own initialisation
                state = {k: v for k, v in state.items() if image_stage_param(k)}
            vision.load_state_dict(state, strict=False)
            log(f"{name} stage: reusing {saved} (delete it, or set reuse=false, to train it again)")
            # its curve and minutes come along from the run that trained it, marked as reused
            report["stages"] += [
                {**e, "reused": str(saved)} for e in earlier.get("stages", []) if e.get("name") == name
            ]
            continue
        every = s.eval_every or s.steps
        if name == "tower":
            vision, curve = pretrain_tower(
                s.steps, s.batch_size, s.lr, world.seed, recipe.seed, eval_every=every, log=log, model=vision
            )
        else:
            vision, curve = pretrain_vision(
                s.steps,
                s.batch_size,
                s.lr,
                world.num_frames,
                world.seed,
                recipe.seed,
                eval_every=every,
                log=log,
                model=vision,
                tower_lr=s.tower_lr,
            )
        torch.save(vision.state_dict(), saved)
        unit = "frames" if name == "tower" else "clips"
        report["stages"].append(
            {
                "name": name,
                "minutes": curve[-1]["minutes"],  # training only
                "wall_minutes": (time.perf_counter() - started) / 60,  # with its held-out evaluations
                unit: s.steps * s.batch_size,
                "curve": curve,
            }
        )
        (out / "report.json").write_text(json.dumps(report, indent=1))
    vision.eval()
    model, processor = build_starter(lm_dir, vision.state_dict(), log=log)
    clips = held_out(world, recipe.eval_clips)
    if recipe.chat:
        report["chat_before"] = chat_check(model, processor)
        log(f"chat before: {report['chat_before']}")
    seen = {"clips": 0, "batch": 0}

    evaluating = {"seconds": 0.0}  # held-out evaluation time, left out of the stages' training minutes

    def evaluate_now(stage: str, step: int) -> dict[str, Any]:
        tick = time.perf_counter()
        result = evaluate(model, processor, clips)
        evaluating["seconds"] += time.perf_counter() - tick
        minutes = (time.perf_counter() - t0) / 60
        point = {
            "stage": stage,
            "step": step,
            "train_clips": seen["clips"] + step * seen["batch"],
            "minutes": minutes,
            **result,
        }
        report["curve"].append(point)
        log(
            f"eval after {stage} step {step}: "
            + " ".join(f"{k} {v:.1f}" for k, v in result["accuracy"].items() if "/" not in k)
        )
        (out / "report.json").write_text(json.dumps(report, indent=1))
        return point

    if recipe.eval_start:
        evaluate_now("start", 0)
    stream = clip_stream(world)
    rng = np.random.default_rng(recipe.seed)
    if "align" in stages:
        s = stages["align"]
        started = time.perf_counter()
        train_clips = [next(stream) for _ in range(s.clips)]
        fit = fit_projector(model, processor.tokenizer, vision, train_clips, s.steps, s.lr, recipe.seed, log)
        seen["clips"] += s.clips
        report["stages"].append(
            {"name": "align", "minutes": (time.perf_counter() - started) / 60, "clips": s.clips, **fit}
        )
        evaluate_now("align", s.steps)
        save_parts(model, out / "parts")
    if "finetune" in stages:
        s = stages["finetune"]
        started, evaluated_before = time.perf_counter(), evaluating["seconds"]
        replay: list[tuple[str, str]] = []
        if s.p_text > 0:  # the LM's own replies, before LoRA changes it
            tick = time.perf_counter()
            model.eval()
            convs = [text_conversation(p, "")[:1] for p in REPLAY_PROMPTS]
            replies = generate(model, processor, convs, [None] * len(convs), max_new_tokens=48)
            replay = [
                (p, whole_sentences(r)) for p, r in zip(REPLAY_PROMPTS, replies, strict=True) if r.strip()
            ]
            log(
                f"replay: {len(replay)} text-only replies of the LM itself in {time.perf_counter() - tick:.0f} s"
            )
            report["replay"] = replay
        model = add_lora(model, s)
        seen["batch"] = s.batch_size
        losses = train_llava_stage(model, processor, s, stream, rng, evaluate_now, log, replay)
        seen["clips"] += s.steps * s.batch_size
        seen["batch"] = 0
        report["stages"].append(
            {
                "name": "finetune",
                "minutes": (time.perf_counter() - started - evaluating["seconds"] + evaluated_before) / 60,
                "eval_minutes": (evaluating["seconds"] - evaluated_before) / 60,
                "clips": s.steps * s.batch_size,
                "losses": losses,
            }
        )
        evaluate_now("finetune", s.steps)
        save_parts(model, out / "parts")
    if recipe.chat:
        report["chat_after"] = chat_check(model, processor)
        log(f"chat after: {report['chat_after']}")
    report["minutes"] = (time.perf_counter() - t0) / 60
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m videollm.starter.train", description="Train the starter model from a starter recipe."
    )
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. stages.1.steps=50")
    args = parser.parse_args(argv)
    recipe = load_starter_recipe(args.recipe, args.overrides)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    run(recipe, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
