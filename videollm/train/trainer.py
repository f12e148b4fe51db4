"""A training run: recipe → data → model + strategy → HF Trainer (+ DeepSpeed) → a saved run folder.

The Trainer does what it does well (loop, accumulation, DeepSpeed, checkpoints with optimizer,
scheduler, RNG and data position, resume); `VideoLLMTrainer` adds only what video instruction
tuning needs:
- an optimizer with LLaVA-OneVision's separate learning rates for the vision tower, the projector
  + connector (and adapters/prompts), and the LM, each split into decay / no-decay;
  DeepSpeedCPUAdam when the DeepSpeed config offloads the optimizer (ZeRO-Offload refuses others);
- the modality/length-grouped sampler, its order a function of (seed, epoch) so resuming skips
  exactly the batches already trained;
- the distillation add-on's loss, and the bookkeeping keys of a batch (`ids`, `skipped`) removed
  before the forward and counted (over-long samples skipped) or logged (`log_samples`).

The run folder: `checkpoint-N/` (Trainer), the final model (a full checkpoint, or a peft adapter
for lora/qlora with `base/` holding the assembled base model when it was built from an image
model), the processor, `recipe.yaml` and `videollm_run.json`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import Trainer, TrainingArguments

from videollm.data.collate import Collator, SupervisedDataset
from videollm.data.grouping import ModalityLengthGroupedSampler
from videollm.data.llava import DataSource, LlavaDataset
from videollm.train.distributed import (
    TrainingMode,
    ensure_torch_extensions_dir,
    init_deepspeed_comm,
    launched_distributed,
    rank,
    training_mode,
)
from videollm.train.recipe import DataFile, FramesSpec, Recipe, RecipeError
from videollm.train.strategies import GROUPS, group_learning_rates, param_group, trainable_summary

logger = logging.getLogger(__name__)
RUN_FILE = "videollm_run.json"
RECIPE_FILE = "recipe.yaml"
BASE_DIR = "base"


def frame_sampler(spec: FramesSpec) -> Any:
    from videollm.video.sampling import FrameSampler

    if spec.sampler == "fps":
        return FrameSampler.fps(spec.fps, max_frames=spec.max_frames)
    return FrameSampler.uniform(spec.num_frames)


# Strategies whose trainable modules all sit between the pixels and the LM's input (projector, connector,
# adapters in the tower, a side network): a text-only sample never reaches them.
VISUAL_PATH_STRATEGIES = ("frozen", "adapter", "side")


def data_sources(files: list[DataFile]) -> list[DataSource]:
    return [DataSource(f.path, f.media_root, f.weight) for f in files]


def load_datasets(recipe: Recipe) -> tuple[LlavaDataset, LlavaDataset | None]:
    """The validated train (and eval) mixtures; all data problems are reported at once, before any model loads."""
    from videollm.data.frame_cache import FrameCache

    cache = FrameCache(recipe.data.frame_cache) if recipe.data.frame_cache else None
    sampler = frame_sampler(recipe.frames)

    def mixture(files: list[DataFile]) -> LlavaDataset:
        return LlavaDataset(
            data_sources(files),
            sampler,
            frame_cache=cache,
            seed=recipe.seed,
            images_as_video=recipe.data.images_as_video,
        )

    train = mixture(recipe.data.files)
    evaluation = mixture(recipe.data.eval_files) if recipe.data.eval_files else None
    return train, evaluation


def deepspeed_config(path: str | None) -> dict | None:
    """The DeepSpeed config as a dict; an `optimizer` section is dropped when the optimizer is offloaded.

    The shipped offload config carries DeepSpeed's AdamW section so other LLaVA-style repos can use it
    as is; here the Trainer builds DeepSpeedCPUAdam itself, with the per-group learning rates that a
    DeepSpeed-built optimizer (one group) would lose.
    """
    if path is None:
        return None
    config = json.loads(Path(path).read_text())
    if offloads_optimizer(config):
        config.pop("optimizer", None)
    return config


def offloads_optimizer(config: dict | None) -> bool:
    device = ((config or {}).get("zero_optimization", {}).get("offload_optimizer") or {}).get(
        "device", "none"
    )
    return device not in ("none", None)


def training_arguments(recipe: Recipe, mode: TrainingMode) -> TrainingArguments:
    evaluate = bool(recipe.data.eval_files) and recipe.eval_steps is not None
    return TrainingArguments(
        output_dir=recipe.output_dir,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.grad_accum,
        learning_rate=recipe.lr,
        weight_decay=recipe.weight_decay,
        lr_scheduler_type=recipe.lr_schedule,
        warmup_steps=recipe.warmup_steps if recipe.warmup_steps > 0 else recipe.warmup_ratio,
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        gradient_checkpointing=recipe.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if recipe.gradient_checkpointing else None,
        logging_steps=recipe.log_steps,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=recipe.eval_steps if evaluate else None,
        deepspeed=deepspeed_config(recipe.deepspeed),
        seed=recipe.seed,
        data_seed=recipe.seed,
        dataloader_num_workers=recipe.data.num_workers,
        dataloader_pin_memory=not mode.use_cpu,
        remove_unused_columns=False,  # the collator's bookkeeping keys are removed in compute_loss
        label_names=["labels"],
        report_to="none",
        disable_tqdm=True,
        **mode.as_kwargs(),
    )


class VideoLLMTrainer(Trainer):
    """HF Trainer with per-group learning rates, modality grouping, distillation and sample bookkeeping."""

    def __init__(self, *args: Any, recipe: Recipe, distiller: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.recipe = recipe
        self.distiller = distiller
        self.skipped: list[str] = []
        self._distill_total = 0.0
        self._distill_count = 0
        self._sample_log = None
        if recipe.log_samples:
            Path(recipe.output_dir).mkdir(parents=True, exist_ok=True)
            path = Path(recipe.output_dir) / f"samples.rank{self.args.process_index}.jsonl"
            self._sample_log = path.open("a")

    # ----- optimizer ------------------------------------------------------------------------------

    def parameter_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        """Trainable parameters in (group × decay) optimizer groups, each with its group's learning rate."""
        rates = group_learning_rates(self.recipe)
        decay = set(self.get_decay_parameter_names(model))
        buckets: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                buckets.setdefault((param_group(name), name in decay), []).append(p)
        groups = []
        for (group, decays), params in sorted(buckets.items()):
            groups.append(
                {
                    "params": params,
                    "lr": rates[group],
                    "weight_decay": self.args.weight_decay if decays else 0.0,
                    "name": f"{group}{'' if decays else '_no_decay'}",
                }
            )
        return groups

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        groups = self.parameter_groups(opt_model)
        ds_config = self.args.hf_deepspeed_config.config if self.is_deepspeed_enabled else None
        if offloads_optimizer(ds_config):
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            self.optimizer = DeepSpeedCPUAdam(
                groups,
                lr=self.args.learning_rate,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                eps=self.args.adam_epsilon,
                adamw_mode=True,
            )
        else:
            cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer = cls(groups, **kwargs)
        return self.optimizer

    # ----- data -----------------------------------------------------------------------------------

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.recipe.data.group_by_modality:
            return super()._get_train_sampler(train_dataset)
        raw = dataset.dataset
        return ModalityLengthGroupedSampler(
            raw.modalities,
            raw.lengths,
            batch_size=self.args.per_device_train_batch_size,
            world_size=self.args.world_size,
            seed=self.args.seed,
        )

    # ----- resume ---------------------------------------------------------------------------------

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        """Load a checkpoint's weights through `from_pretrained`, which maps its saved key layout back.

        Checkpoints are written in the layout transformers and vLLM load (`language_model.model.*`,
        `vision_tower.vision_model.*`), not the in-memory names (`model.language_model.*`); the Trainer's
        own loader is a non-strict `load_state_dict`, which would match none of them and resume from the
        base weights without a word. Adapters (peft) keep their own names and the Trainer's path.
        """
        target = self.model if model is None else model
        if hasattr(target, "peft_config") or not (Path(resume_from_checkpoint) / "config.json").is_file():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(target.parameters()).dtype
        loaded = type(target).from_pretrained(resume_from_checkpoint, dtype=dtype)
        target.load_state_dict(loaded.state_dict(), strict=True)
        logger.info("resumed weights from %s", resume_from_checkpoint)

    # ----- loss -----------------------------------------------------------------------------------

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        ids = inputs.pop("ids", None)
        skipped = inputs.pop("skipped", None) or []
        if model.training:
            self.skipped += skipped
            if self._sample_log is not None and ids is not None:
                self._log_samples(ids)
        if self.distiller is None or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        extra = self.distiller.loss(self.model, inputs, outputs)
        if extra is not None:
            self._distill_total += float(extra.detach())
            self._distill_count += 1
            if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
                extra = extra / self.current_gradient_accumulation_steps  # the Trainer will not divide
            loss = loss + extra
        return (loss, outputs) if return_outputs else loss

    def _log_samples(self, ids: list[str]) -> None:
        """One line per micro-batch: step, sample ids, and a checksum of the trainable weights.

        Identical checksums across ranks at every step are what shows the gradients are synchronised
        (the CPU trap in videollm.train.distributed); the ids show which samples each rank trained on.
        """
        with torch.no_grad():
            checksum = sum(float(p.double().sum()) for p in self.model.parameters() if p.requires_grad)
        line = {"step": self.state.global_step, "ids": ids, "checksum": checksum}
        self._sample_log.write(json.dumps(line) + "\n")
        self._sample_log.flush()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs["skipped_too_long"] = len(self.skipped)
            if self._distill_count:
                logs["distill_loss"] = round(self._distill_total / self._distill_count, 6)
                self._distill_total, self._distill_count = 0.0, 0
        super().log(logs, start_time)


@dataclass
class RunResult:
    output_dir: str
    global_step: int
    train_loss: float
    skipped: list[str] = field(default_factory=list)
    trainable: dict[str, tuple[int, int]] = field(default_factory=dict)
    log_history: list[dict] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # the Trainer's: runtime, samples/s, ...
    peak_memory_mb: list[float] = field(default_factory=list)  # per rank
    start_memory_mb: list[float] = field(default_factory=list)  # per rank, before the model was loaded


def resume_checkpoint(recipe: Recipe) -> str | None:
    """The checkpoint to resume from (`resume: true` = the last in output_dir), or None for a fresh run."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(recipe.output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if recipe.resume is False:
        if last is not None:
            raise RecipeError(
                f"field 'output_dir': {out} already holds {Path(last).name}; set resume=true to continue that run, "
                "or choose another output_dir"
            )
        return None
    if isinstance(recipe.resume, str):
        if not Path(recipe.resume).is_dir():
            raise RecipeError(f"field 'resume': checkpoint folder {recipe.resume} not found")
        return recipe.resume
    if last is None:
        logger.warning("resume: no checkpoint in %s yet; starting from the beginning", out)
    return last


def _write_run_files(recipe: Recipe, base_checkpoint: str | None, peft: bool, result: RunResult) -> None:
    out = Path(recipe.output_dir)
    (out / RECIPE_FILE).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    info = {
        "strategy": recipe.strategy,
        "stage": recipe.stage,
        "peft": peft,
        "base": recipe.model.base or [recipe.model.vision, recipe.model.lm],
        "base_checkpoint": base_checkpoint,
        "global_step": result.global_step,
        "train_loss": result.train_loss,
        "skipped_too_long": len(result.skipped),
        "trainable": {g: list(v) for g, v in result.trainable.items()},
        "metrics": result.metrics,
        "peak_memory_mb": result.peak_memory_mb,
        "start_memory_mb": result.start_memory_mb,
    }
    (out / RUN_FILE).write_text(json.dumps(info, indent=2))


def _gather(local: Any) -> list[Any]:
    """`local` from every rank, in rank order (just `[local]` in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        everyone: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(everyone, local)
        return everyone
    return [local]


def current_memory_mb() -> float:
    """This process's resident set size now (Linux; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_memory_mb() -> float:
    """This process's peak memory: CUDA allocations on a GPU, resident set size on CPU."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def train(recipe: Recipe) -> RunResult:
    """Run `recipe` to the end (or resume it) and save the run folder."""
    from videollm.train.distill import Distiller
    from videollm.train.loading import load_base
    from videollm.train.strategies import apply_strategy

    ensure_torch_extensions_dir()
    start_memory = current_memory_mb()  # libraries imported, no model yet: the baseline of peak_memory_mb
    mode = training_mode(recipe.precision)
    checkpoint = resume_checkpoint(recipe)
    args = training_arguments(recipe, mode)  # before the model: sets up the process group (and ZeRO-3 init)
    if recipe.deepspeed and launched_distributed():
        init_deepspeed_comm()
    train_raw, eval_raw = load_datasets(recipe)
    text_only = sum(m == "text" for m in train_raw.modalities)
    if text_only and recipe.strategy in VISUAL_PATH_STRATEGIES:
        raise RecipeError(
            f"strategy {recipe.strategy!r} trains only modules on the visual path, so the {text_only} text-only "
            "samples in data.files would give no gradient (a batch of them cannot backpropagate): remove them, "
            "or train the LM too (strategy lora or full)"
        )
    distill = recipe.distill is not None and recipe.distill.weight > 0
    if (
        distill
        and recipe.deepspeed
        and (deepspeed_config(recipe.deepspeed) or {}).get("zero_optimization", {}).get("stage") == 3
    ):
        raise RecipeError(
            "distill keeps a frozen copy of the model, which ZeRO-3 partitions away; use train/deepspeed/zero2.json"
        )

    compute_dtype = torch.bfloat16 if mode.bf16 else torch.float32
    saved_base = Path(recipe.output_dir) / BASE_DIR
    if checkpoint is not None and saved_base.is_dir():
        # A resumed LoRA run continues on the very base it saved, not on a rebuilt one.
        spec = dataclasses.replace(
            recipe.model, base=str(saved_base), tiny=None, vision=None, lm=None, connector=None, config={}
        )
        base = load_base(dataclasses.replace(recipe, model=spec), compute_dtype)
        base.assembled = True
    else:
        base = load_base(recipe, compute_dtype)
    model, processor = base.model, base.processor
    peft = recipe.strategy in ("lora", "qlora")
    base_checkpoint = recipe.model.base if not base.assembled else None
    if peft and base.assembled:
        # A LoRA run saves only adapters; keep the assembled base so export merges onto exactly it.
        base_checkpoint = str(Path(recipe.output_dir) / BASE_DIR)
        if rank() == 0 and not Path(base_checkpoint).is_dir():
            model.save_pretrained(base_checkpoint)
            processor.save_pretrained(base_checkpoint)
    distiller = Distiller.before_strategy(model, recipe.distill, recipe.strategy) if distill else None
    model = apply_strategy(model, recipe)
    if distiller is not None:
        distiller.attach(model)
    model.config.use_cache = False
    summary = trainable_summary(model)
    if rank() == 0:
        for group in GROUPS:
            trainable, total = summary[group]
            logger.info("%-9s %12d / %12d parameters train", group, trainable, total)

    tokenizer = processor.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = VideoLLMTrainer(
        model=model,
        args=args,
        train_dataset=SupervisedDataset(train_raw, processor, recipe.max_length),
        eval_dataset=SupervisedDataset(eval_raw, processor, recipe.max_length)
        if eval_raw is not None
        else None,
        data_collator=Collator(pad),
        processing_class=processor,
        recipe=recipe,
        distiller=distiller,
    )
    output = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(recipe.output_dir)
    skipped = [w for part in _gather(trainer.skipped) for w in part]
    result = RunResult(
        output_dir=recipe.output_dir,
        global_step=output.global_step,
        train_loss=float(output.training_loss),
        skipped=skipped,
        trainable=summary,
        log_history=list(trainer.state.log_history),
        metrics=dict(output.metrics),
        peak_memory_mb=_gather(round(peak_memory_mb(), 1)),
        start_memory_mb=_gather(round(start_memory, 1)),
    )
    if trainer.is_world_process_zero():
        _write_run_files(recipe, base_checkpoint, peft, result)
        if skipped:
            logger.warning(
                "skipped %d sample(s) longer than max_length=%d after placeholder expansion (first: %s)",
                len(skipped),
                recipe.max_length,
                skipped[0],
            )
    if trainer._sample_log is not None:
        trainer._sample_log.close()
    return result


__all__ = [
    "RunResult",
    "VideoLLMTrainer",
    "load_datasets",
    "resume_checkpoint",
    "train",
    "training_arguments",
]
