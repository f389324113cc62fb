"""TSGVTrainer: the transformers Trainer with video-major evaluation outputs, grounding metrics and a correct resume.

- Evaluation outputs are packed video-major, `(B_v, Q_max, ...)` padded with -100, because the Trainer pads across
  processes only along dim 1: a flat `(B_q, ...)` tensor has a different first dimension on each rank and breaks the
  gather (gloo aborts). `compute_metrics` unpacks them.
- Faults of long runs (see `TSGVTrainer`): videos that fail to decode are skipped and counted (the run stops when more
  than a set share of the training videos fail), steps with a non-finite loss or gradient are skipped and counted
  without reading anything back inside a step (the run stops after several in a row; `nonfinite.py`), a DataLoader
  worker that dies is reported with the file it was reading.
- A checkpoint gets `tsgv_checkpoint.json` (its files and sizes, written atomically) once everything in it is
  written (`CheckpointMarker`, a callback), so a run killed while saving never resumes from a half-written folder
  (`last_complete_checkpoint`).
- transformers 5.24's checkpoint reload (`Trainer._load_from_checkpoint`, `_load_best_model`) loads the file's keys
  as saved, without the renaming `from_pretrained` applies (`save_pretrained` writes VideoMAE's biases under their
  original names `...attention.attention.q_bias`, the model's are `query.bias`), and non-strictly: those weights stay
  fresh on resume with only a warning (huggingface/transformers#43701, open). `SafeCheckpointsMixin` overrides the two
  methods to load with transformers' own conversion mapping and strict=True; tests/test_loading.py fails once
  transformers' reload renames by itself, and the overrides can go.
"""

import itertools
import json
import os
import re
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from accelerate import PartialState
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, sort_checkpoints
from transformers.utils import logging

from .data import file_being_read
from .files import atomic_path
from .loss_tsgv import count_positive_steps
from .metrics import grounding_metrics
from .nonfinite import NonFiniteGuard, NonFiniteStepsError
from .processing_tsgv import normalize_frames

logger = logging.get_logger(__name__)

PAD = -100.0
EXACT_INPUTS = (
    "labels",
    "durations_s",
    "saliency_labels",
)  # batch entries never cast to a training dtype (see `_prepare_inputs`)
CHECKPOINT_MARKER = "tsgv_checkpoint.json"  # written last, atomically: the checkpoint folder is complete


def pack_video_major(values: torch.Tensor, query_video_index: torch.Tensor, num_videos: int) -> torch.Tensor:
    """(B_q, ...) per-query values -> (B_v, Q_max, ...) grouped by video in query order, padded with -100."""
    counts = torch.bincount(query_video_index, minlength=num_videos)
    q_max = int(counts.max()) if len(counts) else 0
    packed = values.new_full((num_videos, q_max, *values.shape[1:]), PAD)
    # position of each query among its video's queries
    order = torch.argsort(query_video_index, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(query_video_index)
    slot[order] = torch.arange(len(order), device=order.device) - starts[query_video_index[order]]
    packed[query_video_index, slot] = values
    return packed


def unpack_predictions(spans, scores, labels, durations_s):
    """Video-major arrays from evaluation -> per-query lists in seconds (padding dropped).

    Args: spans (N_v, Q, K, 2) and scores (N_v, Q, K) normalised; labels (N_v, Q, W, 2) normalised or None;
        durations_s (N_v,).
    Returns: list of dicts {video, query, spans_s (K, 3) [start, end, score], moments_s (list of [s, e])}.
    """
    queries = []
    for v in range(spans.shape[0]):
        for q in range(spans.shape[1]):
            if spans[v, q, 0, 0] == PAD:
                continue
            duration = float(durations_s[v])
            ranked = np.concatenate([np.clip(spans[v, q] * duration, 0, duration), scores[v, q][:, None]], axis=1)
            moments = [] if labels is None else [list(w * duration) for w in labels[v, q] if w[0] != PAD]
            queries.append({"video": v, "query": q, "spans_s": ranked, "moments_s": moments})
    return queries


def checkpoint_problem(folder: str) -> str | None:
    """Why `folder` is not a complete checkpoint (None when it is).

    Complete: its `tsgv_checkpoint.json` (written by `CheckpointMarker` once everything else is) lists files that all
    exist with the sizes recorded."""
    marker = os.path.join(folder, CHECKPOINT_MARKER)
    if not os.path.isdir(folder):
        return "no such folder"
    if not os.path.exists(marker):
        return f"incomplete: no {CHECKPOINT_MARKER} (the run stopped while writing it)"
    try:
        with open(marker) as f:
            sizes = json.load(f)["files"]
    except (OSError, ValueError, KeyError):
        return f"unreadable {CHECKPOINT_MARKER}"
    for name, size in sizes.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            return f"incomplete: {name} is missing or has another size than when it was saved"
    return None


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-<step>` folder of `output_dir` that is complete (see `checkpoint_problem`); incomplete
    newer ones are logged and passed over. None when there is none."""
    if not os.path.isdir(output_dir):
        return None
    # transformers' own ordering by step; its pattern also matches names such as "checkpoint-12-old": keep ours exact
    folders = [f for f in sort_checkpoints(output_dir) if re.fullmatch(r"checkpoint-\d+", os.path.basename(f))]
    for folder in reversed(folders):
        if not os.path.isdir(folder):
            continue
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning(f"passing over {folder}: {problem}")
    return None


def compute_grounding_metrics(eval_pred) -> dict[str, float]:
    """`compute_metrics` for the Trainer: R1/R5 @ 0.3/0.5/0.7 and mIoU (%) over queries that have moments."""
    spans, scores = eval_pred.predictions[:2]
    labels, durations_s = eval_pred.label_ids
    queries = [q for q in unpack_predictions(spans, scores, labels, durations_s) if q["moments_s"]]
    metrics = grounding_metrics([q["spans_s"] for q in queries], [q["moments_s"] for q in queries])
    metrics["num_queries"] = float(len(queries))
    return metrics


class EpochCallback(TrainerCallback):
    """Tells seeded data pieces (FrameTransform, collators: anything with `set_epoch`) which epoch starts."""

    def __init__(self, *targets):
        self.targets = targets

    def on_epoch_begin(self, args, state, control, **kwargs):
        for target in self.targets:
            target.set_epoch(int(state.epoch or 0))


class BadSampleBudgetError(RuntimeError):
    """More training videos failed to decode than `--max_bad_sample_fraction` allows; one line naming the first
    files and the flag."""

    @classmethod
    def check(cls, count: int, total: int, fraction: float, failed: list[dict]) -> None:
        """Raise when `count` failed videos of `total` are more than `fraction` of them (`failed`: their records,
        with `video_id` / `video_path` and `error`, for the message)."""
        if total and count > fraction * total:
            raise cls(count, total, fraction, failed)

    def __init__(self, count: int, total: int, fraction: float, failed: list[dict]):
        first = "; ".join(f"{f.get('video_path') or f.get('video_id')} ({f['error']})" for f in failed[:3])
        super().__init__(
            f"{count} of {total} training videos failed to decode, more than --max_bad_sample_fraction {fraction:g} "
            f"allows; first: {first}"
        )


SCALER_SKIPS_IN_A_ROW = 25  # from the initial 2**16, 25 halvings leave a loss scale of 2**-9


class _ScalerSkipCounter(TrainerCallback):
    """Counts the optimiser steps an fp16 GradScaler skipped, in `trainer.scaler_skipped_steps`: those after which its
    scale went down (it lowers the scale exactly when it found inf/NaN gradients). Not accelerate's
    `optimizer_step_was_skipped`: with a fused optimiser (the Trainer's default `adamw_torch_fused`) the scaler hands
    the inf check to the optimiser and accelerate never sees the skip."""

    def __init__(self, trainer):
        self.trainer, self.scale, self.in_a_row = trainer, None, 0

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        scaler = self.trainer.accelerator.scaler
        self.scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else None

    def on_optimizer_step(self, args, state, control, **kwargs):
        scaler = self.trainer.accelerator.scaler
        if self.scale is None:
            return
        if scaler.get_scale() >= self.scale:
            self.in_a_row = 0
            return
        self.trainer.scaler_skipped_steps += 1
        self.in_a_row += 1
        # a few skips are how fp16 finds its scale (from 2**16 it halves each time); this many in a row is divergence
        limit = max(self.trainer.max_nonfinite_steps, SCALER_SKIPS_IN_A_ROW)
        if self.in_a_row >= limit:
            raise NonFiniteStepsError(
                f"{self.in_a_row} fp16 steps in a row overflowed (loss scale now {scaler.get_scale():g}): lower the "
                "learning rate, or train in bf16 or float32"
            )


class StepTimer(TrainerCallback):
    """Wall seconds of each optimiser step, as the time between two consecutive step ends (data loading included);
    an interval holding an evaluation or a checkpoint save is left out, so the figure is the training step's."""

    def __init__(self):
        self.intervals_s, self._last, self._interrupted = [], None, False
        self.data_wait_s = 0.0  # seconds the training loop waited for batches (`TSGVTrainer.get_batch_samples`)
        self._train_start_s = None
        self.train_s = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._last, self._interrupted = time.perf_counter(), False
        self._train_start_s, self.data_wait_s = self._last, 0.0

    def on_train_end(self, args, state, control, **kwargs):
        if self._train_start_s is not None:
            self.train_s = time.perf_counter() - self._train_start_s

    def data_wait_share(self) -> float:
        """Share of the training loop's wall time spent waiting for batches (0-1; NaN before training ended)."""
        return self.data_wait_s / self.train_s if self.train_s else float("nan")

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._last is not None and not self._interrupted:
            self.intervals_s.append(now - self._last)
        self._last, self._interrupted = now, False

    def on_evaluate(self, args, state, control, **kwargs):
        self._interrupted = True

    def on_save(self, args, state, control, **kwargs):
        self._interrupted = True

    def median_s(self) -> float:
        """Median seconds per optimiser step (NaN before any step was timed)."""
        return statistics.median(self.intervals_s) if self.intervals_s else float("nan")


def training_measures(trainer, model) -> dict[str, float]:
    """What a run cost, for all_results.json: trainable parameters (count), median seconds per optimiser step, the
    share of the training loop spent waiting for batches, the backbone blocks x clips run in training (`TSGVVideoBackbone.block_clip_passes`, this process's; caches are built
    in evaluation mode and not counted), and this process's peak memory in MB: host (max RSS, the whole run's) and,
    on CUDA, the accelerator's allocated peak."""
    measures = {
        "trainable_params": float(
            sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)
        ),
        "train_seconds_per_step": trainer.step_timer.median_s(),
        "train_data_wait_share": trainer.step_timer.data_wait_share(),
        "train_backbone_block_clip_passes": float(model.backbone.block_clip_passes["train"]),
        "peak_host_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }
    if torch.cuda.is_available():
        measures["peak_accelerator_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return measures


class CheckpointMarker(TrainerCallback):
    """Writes `tsgv_checkpoint.json` (the checkpoint's files and sizes, atomically) into each checkpoint folder once
    the Trainer has written all of it: `on_save` comes after the weights, optimiser, scheduler, scaler, RNG states,
    `trainer_state.json` and the rotation of old checkpoints. Every process calls it; they wait for each other first
    (each writes its own RNG state), then the one that saves writes the marker."""

    def on_save(self, args, state, control, **kwargs):
        if args.world_size > 1:
            PartialState().wait_for_everyone()
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if not args.should_save or not os.path.isdir(folder):
            return
        sizes = {
            os.path.relpath(os.path.join(root, name), folder): os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(folder)
            for name in names
            if name != CHECKPOINT_MARKER
        }
        with atomic_path(os.path.join(folder, CHECKPOINT_MARKER)) as temporary, open(temporary, "w") as f:
            json.dump({"step": state.global_step, "files": sizes}, f)
            f.flush()
            os.fsync(f.fileno())


class SafeCheckpointsMixin:
    """Checkpoint writing and reloading for Trainers of VideoMAE-based models (put it before `Trainer` in the bases).

    - adds the `CheckpointMarker` callback, so `last_complete_checkpoint` never picks a half-written folder.
    - `_load_from_checkpoint` / `_load_best_model` load `model.safetensors` strictly with the key renaming that
      `from_pretrained` applies, taken from transformers' conversion mapping for the model (transformers 5.24's own
      reload skips it: see the module docstring). Private methods, overridden because no public hook loads the
      weights on resume; DeepSpeed, FSDP and sharded checkpoints go to the Trainer's own code.
    """

    def __init__(self, *args, **kwargs):
        # first of the given callbacks: others' `on_save` (e.g. removing an earlier run's checkpoints) see it done
        kwargs["callbacks"] = [CheckpointMarker(), *(kwargs.get("callbacks") or [])]
        super().__init__(*args, **kwargs)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not self._load_safetensors_with_renames(resume_from_checkpoint, model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self):
        best = self.state.best_model_checkpoint
        if best is None or not self._load_safetensors_with_renames(best, None):
            super()._load_best_model()
        else:
            logger.info(f"Loaded best model from {best} (score: {self.state.best_metric}).")

    def _load_safetensors_with_renames(self, folder: str, model) -> bool:
        """Load `folder/model.safetensors` strictly, each key renamed as `from_pretrained` would
        (`checkpoint_key_renamer`); False when not applicable (DeepSpeed / FSDP / sharded checkpoints, or a mapping
        that converts tensors rather than renaming keys: left to the Trainer)."""
        path = os.path.join(folder, "model.safetensors")
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or not os.path.isfile(path):
            return False
        model = self.accelerator.unwrap_model(model if model is not None else self.model)
        rename = checkpoint_key_renamer(model)
        if rename is None:
            return False
        state = {rename(key): value for key, value in load_file(path, device="cpu").items()}
        model.load_state_dict(state, strict=True)
        return True


def checkpoint_key_renamer(model) -> Callable[[str], str] | None:
    """key -> the model's key, as `from_pretrained` maps a saved file's keys (transformers' conversion mapping for
    `model`: VideoMAE's `q_bias` / `v_bias`, and those registered for tsgv); None when the mapping holds tensor
    conversions, which a key renaming cannot apply."""
    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    if converters:
        return None
    return lambda key: rename_source_key(key, renamings, converters)[0]


class DecodeFailureLog:
    """The videos that failed to decode in a run, by split, each once per split; and the training budget for them.

    Attributes:
        records: this process's failures, {"split", "video_id", "video_path", "error"}.
        train_ids_everywhere: training videos that failed on any process, as shared at the ends of optimiser steps.
    """

    def __init__(self):
        self.records: list[dict] = []
        self.train_ids_everywhere: set[str] = set()

    def record(self, split: str, failures: list[dict]) -> None:
        """Add a batch's `decode_failures` (dicts with `video_id`, `video_path`, `error`, `index`) under `split`."""
        seen = {(f["split"], f["video_id"]) for f in self.records} if failures else set()
        for failure in failures:
            if (split, failure["video_id"]) not in seen:
                self.records.append({"split": split, **{k: v for k, v in failure.items() if k != "index"}})

    def train_ids(self) -> set[str]:
        """Training videos this process saw fail."""
        return {f["video_id"] for f in self.records if f["split"] == "train"}

    def check_budget(self, num_train_videos: int, max_fraction: float) -> None:
        """`BadSampleBudgetError` when the distinct training videos that failed (here and, as shared so far, on the
        other processes) are more than `max_fraction` of `num_train_videos`."""
        failed = [f for f in self.records if f["split"] == "train"]
        count = len(self.train_ids_everywhere | self.train_ids())
        BadSampleBudgetError.check(count, num_train_videos, max_fraction, failed)

    def gathered(self, world_size: int) -> list[dict]:
        """The records of every process (each saw only its share of the batches), each video once per split. A
        collective call when `world_size` > 1: every rank must make it."""
        records = list(self.records)
        if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            everyone = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(everyone, records)
            records = [record for rank in everyone for record in rank]
        return list({(r["split"], r["video_id"]): r for r in records}.values())


def _layer_id(name: str, num_layers: int) -> int | None:
    """BEiT's layer id of a video-backbone parameter (embeddings 0, block i -> i + 1, the final norm num_layers + 1);
    None for a parameter outside the video backbone."""
    name = name.replace("_orig_mod.", "").replace("module.", "")
    prefix = "backbone.video_model."
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    if rest.startswith("embeddings."):
        return 0
    if rest.startswith("encoder.layer."):
        return int(rest.split(".")[2]) + 1
    return num_layers + 1


def backbone_lr_scales(model, multiplier: float = 1.0, layer_decay: float = 1.0) -> dict[str, float]:
    """Learning-rate scale per trainable parameter (its name in `model.named_parameters()`), as VideoMAE / BEiT
    fine-tuning sets them: video backbone block i of L gets `multiplier * layer_decay ** (L - i)`, its embeddings
    `multiplier * layer_decay ** (L + 1)`, its final norm `multiplier`; a trained text encoder `multiplier`; what tsgv
    adds (SCADA adapters, pooling, head) 1. Written here because timm's `param_groups_layer_decay` needs a timm
    model's `group_matcher`, which transformers' VideoMAE does not have."""
    num_layers = model.config.backbone_config.num_hidden_layers
    scales = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = _layer_id(name, num_layers)
        if layer is not None:
            scales[name] = multiplier * layer_decay ** (num_layers + 1 - layer)
        elif "text_model." in name:
            scales[name] = multiplier
        else:
            scales[name] = 1.0
    return scales


# (--backbone_lr_multiplier, --layer_decay) when a run gives neither, per tuning mode: the settings docs/study.md part 8
# picked on validation R1@0.5 for the recognition-style backbone (the one most like a real checkpoint). partial's x0.3
# ties x1 when both run on one machine at 3 seeds (test 31.8 +- 0.6 against 30.4 +- 1.4: study.md part 8), and is
# kept as VideoMAE / BEiT practice (a pretrained backbone slower than a new head). frozen and scada train no backbone
# weights, so their recipe is the plain one.
LR_RECIPES = {"partial": (0.3, 1.0), "full": (0.1, 1.0)}


def lr_recipe(backbone_tuning: str, multiplier: float | None = None, layer_decay: float | None = None):
    """(multiplier, layer decay) for a run in `backbone_tuning` mode: the values given, else `LR_RECIPES`' (1, 1 for
    the modes without one)."""
    default_multiplier, default_decay = LR_RECIPES.get(backbone_tuning, (1.0, 1.0))
    return (
        default_multiplier if multiplier is None else multiplier,
        default_decay if layer_decay is None else layer_decay,
    )


def lr_scaling(args) -> tuple[float, float]:
    """(--backbone_lr_multiplier, --layer_decay) of TrainingArguments (1, 1 for arguments without them or with
    them unset)."""
    multiplier, decay = getattr(args, "backbone_lr_multiplier", None), getattr(args, "layer_decay", None)
    return (1.0 if multiplier is None else multiplier), (1.0 if decay is None else decay)


def trainer_settings_problem(args, max_bad_sample_fraction: float, max_nonfinite_steps: int, training: bool = True):
    """Why `TSGVTrainer` cannot run with these settings (None: it can), in words naming the flag. The one rule,
    checked while `run_grounding.py` parses its arguments and again when a `TSGVTrainer` is built.

    Args:
        args: the `TrainingArguments`.
        max_bad_sample_fraction / max_nonfinite_steps: `TSGVTrainer`'s budgets (`--max_bad_sample_fraction` in
            [0, 1], `--max_nonfinite_steps` > 0).
        training: whether the run trains (the DataLoader rule applies to training only).
    """
    if args.n_gpu > 1:
        return (
            f"{args.n_gpu} GPUs in one process (DataParallel) cannot split video-centric batches: start one "
            "process per GPU (torchrun --nproc_per_node N run_grounding.py ..., or accelerate launch), or set "
            "CUDA_VISIBLE_DEVICES to one GPU"
        )
    if training and args.dataloader_persistent_workers and args.dataloader_num_workers > 0:
        # the training set's per-epoch draws (frame jitter, query sampling, cached variants) are set by an epoch
        # callback in the main process; a persistent worker keeps its copy of epoch 0's for the whole run
        return (
            "--dataloader_persistent_workers would keep each DataLoader worker's copy of the epoch-0 frame "
            "jitter, query sampling and cached variants for the whole run: leave it off"
        )
    if not 0 <= max_bad_sample_fraction <= 1:
        return f"--max_bad_sample_fraction must be in [0, 1], got {max_bad_sample_fraction}"
    if max_nonfinite_steps is None or max_nonfinite_steps <= 0:
        return f"--max_nonfinite_steps must be > 0, got {max_nonfinite_steps}"
    return None


def check_trainer_settings(trainer) -> None:
    """ValueError when `trainer_settings_problem` refuses the trainer's settings (it trains when it has a training
    set), or when learning-rate scaling cannot be applied (`check_lr_scaling`)."""
    budgets = (trainer.max_bad_sample_fraction, trainer.max_nonfinite_steps)
    problem = trainer_settings_problem(trainer.args, *budgets, training=trainer.train_dataset is not None)
    if problem:
        raise ValueError(problem)
    check_lr_scaling(trainer)


def check_lr_scaling(trainer) -> None:
    """ValueError when learning-rate scaling is asked for but DeepSpeed would build the optimiser itself (a DeepSpeed
    config with an "optimizer" section makes it from one parameter group, ignoring the scales)."""
    scaled = lr_scaling(trainer.args) != (1.0, 1.0)
    if scaled and trainer.is_deepspeed_enabled and "optimizer" in trainer.args.hf_deepspeed_config.config:
        raise ValueError(
            '--backbone_lr_multiplier / --layer_decay need the Trainer\'s optimiser: remove the "optimizer" section '
            "of the DeepSpeed config (ds_configs/*.json have none)"
        )


def layer_scaled_optimizer(trainer, model, multiplier: float, layer_decay: float):
    """The optimiser `trainer.args` asks for, its parameter groups split by weight decay (the Trainer's rule) and by
    learning-rate scale (`backbone_lr_scales`): each group's lr is --learning_rate x its scale."""
    optimizer_cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
    if {"params", "model", "optimizer_dict"} & set(kwargs):
        raise ValueError(
            f"--backbone_lr_multiplier / --layer_decay need a plain optimiser, not --optim {trainer.args.optim}"
        )
    decays = set(trainer.get_decay_parameter_names(model))
    scales = backbone_lr_scales(model, multiplier, layer_decay)
    groups: dict[tuple[bool, float], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((name in decays, scales[name]), []).append(param)
    base_lr = kwargs.pop("lr", trainer.args.learning_rate)
    weight_decay = trainer.args.weight_decay
    return optimizer_cls(
        [{"params": params, "weight_decay": weight_decay if decayed else 0.0, "lr": base_lr * scale}
         for (decayed, scale), params in groups.items()], lr=base_lr, **kwargs,
    )  # fmt: skip


def foreground_steps(batches: list[dict], config) -> torch.Tensor | None:
    """The foreground time steps (`count_positive_steps`) of the labelled batches among `batches`, summed: a 0-d
    tensor, or None when none has labels. L_t from each batch's frames (or `config.num_time_steps` for cached
    states)."""
    counts = []
    for batch in batches:
        if batch.get("labels") is None:
            continue
        steps = config.num_time_steps
        if batch.get("pixel_values") is not None:
            steps = batch["pixel_values"].shape[1] // config.backbone_config.tubelet_size
        counts.append(count_positive_steps(batch["labels"], steps))
    return torch.stack(counts).sum() if counts else None


def with_dead_worker_file(error: RuntimeError, reading_dir: str | None) -> RuntimeError:
    """A DataLoader worker killed by a signal or exiting: the same error, naming the file it was reading (noted in
    `reading_dir` by `FrameTransform`); the error itself when it is something else."""
    match = re.search(r"DataLoader worker \(pid(?:\(s\))? (\d+)", str(error))
    path = file_being_read(reading_dir, int(match.group(1))) if match else None
    if path is None:
        return error
    return RuntimeError(f"{error} -- it was reading {path}")


def zero_loss(model) -> torch.Tensor:
    """0 that depends on every trainable parameter of `model`: its backward adds exact zeros to their gradients (and
    marks each ready for DDP's reduction)."""
    return sum((p * 0.0).sum() for p in model.parameters() if p.requires_grad)


class TSGVTrainer(SafeCheckpointsMixin, Trainer):
    """Trainer for `TSGVForGrounding` with video-centric batches.

    Batches from collators built with `report=True` carry `video_ids` and `decode_failures`, taken out before the
    model sees the batch: a video that failed to decode is skipped in training and logged (`failures`); in evaluation
    its queries are scored as misses. Non-finite values and the loss's normaliser: see `training_step` and
    `get_batch_samples`.

    Args (beyond `Trainer`'s):
        eval_data_collator: collator for evaluation / prediction (e.g. all queries of a video, uniform frames);
            training uses `data_collator`.
        max_bad_sample_fraction: share of training videos (0-1) that may fail to decode before the run stops.
        max_nonfinite_steps: consecutive non-finite steps that stop the run.
        reading_dir: the `FrameTransform(reading_dir=...)` folder, to name the file of a DataLoader worker that died.
    """

    def __init__(
        self,
        *args,
        eval_data_collator: Callable | None = None,
        max_bad_sample_fraction: float = 0.05,
        max_nonfinite_steps: int = 5,
        reading_dir: str | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator or self.data_collator
        self.max_bad_sample_fraction = max_bad_sample_fraction
        self.max_nonfinite_steps = max_nonfinite_steps
        self.reading_dir = reading_dir
        self.failures = DecodeFailureLog()
        self._train_videos = None
        self.guard = NonFiniteGuard(max_nonfinite_steps, self.is_deepspeed_enabled or self.is_fsdp_enabled)
        self.scaler_skipped_steps = 0  # fp16: optimiser steps the GradScaler skipped (overflow; it lowers its scale)
        self.add_callback(_ScalerSkipCounter(self))
        self.step_timer = StepTimer()  # seconds per optimiser step, for all_results.json
        self.add_callback(self.step_timer)
        self._phase = "train"
        check_trainer_settings(self)

    def create_optimizer(self, model=None):
        """The Trainer's optimiser; with `--backbone_lr_multiplier` / `--layer_decay` its parameter groups are split
        by learning-rate scale (`layer_scaled_optimizer`) as well as by weight decay."""
        multiplier, decay = lr_scaling(self.args)
        if self.optimizer is None and (multiplier, decay) != (1.0, 1.0):
            self.optimizer = layer_scaled_optimizer(self, self.model if model is None else model, multiplier, decay)
        return super().create_optimizer(model)  # keeps an optimiser already set

    @property
    def decode_failures(self) -> list[dict]:
        """This process's videos that failed to decode: {"split", "video_id", "video_path", "error"}, each once."""
        return self.failures.records

    def record_training_failures(self, failures: list[dict]) -> None:
        """Log training videos that failed outside a batch (building the caches) and check the budget at once."""
        self.failures.record("train", failures)
        if failures:
            self._check_failure_budget()

    def _record_failures(self, inputs: dict) -> list[dict]:
        """Take `video_ids` / `decode_failures` out of a batch and log the failures under the current split."""
        inputs.pop("video_ids", None)
        failures = inputs.pop("decode_failures", None) or []
        self.failures.record(self._phase, failures)
        return failures

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The micro-batches of one optimiser step and their foreground time steps, summed over the micro-batches and
        (with `average_tokens_across_devices`, the default) over the processes: the normaliser `grounding_loss`
        divides each micro-batch's sum by, so accumulation and DDP give the objective of one big batch.

        Replaces the Trainer's count (labels != -100, which counts coordinates of our (start, end) labels, not the
        loss's items); the gather stays a tensor operation (no wait for the device)."""
        start_s = time.perf_counter()
        batches = list(itertools.islice(epoch_iterator, num_batches))  # as the Trainer's own collection
        self.step_timer.data_wait_s += time.perf_counter() - start_s  # the host blocked on the DataLoader
        num_items = foreground_steps(batches, self.accelerator.unwrap_model(self.model).config)
        if num_items is None:
            return batches, None
        num_items = num_items.to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            num_items = self.accelerator.gather(num_items).sum()
        return batches, num_items

    def _prepare_inputs(self, inputs: dict) -> dict:
        """The Trainer's move of a batch to the device, then uint8 frames normalised there (`normalize_frames`, with
        the processor's own constants), except that targets and times (`EXACT_INPUTS`: labels in
        normalised time, durations in seconds) keep their dtype: under DeepSpeed the Trainer casts every floating
        input to the engine's dtype, and bf16 steps of 2^-8 would move a label by 0.7 s on a 180 s video and the
        seconds of every prediction with it."""
        exact = {key: inputs.pop(key) for key in EXACT_INPUTS if key in inputs}
        inputs = super()._prepare_inputs(inputs)
        for key, value in exact.items():
            inputs[key] = value.to(self.args.device) if isinstance(value, torch.Tensor) else value
        frames = inputs.get("pixel_values")
        if frames is not None and frames.dtype == torch.uint8:  # crossed the DataLoader as uint8: normalised here
            processor = getattr(self.processing_class, "video_processor", None)
            if processor is None:
                raise ValueError("uint8 pixel_values need the Trainer's processing_class (a TSGVProcessor)")
            inputs["pixel_values"] = normalize_frames(frames, processor)
        return inputs

    @property
    def nonfinite_steps(self) -> int:
        """Training steps that had a non-finite loss or gradient (skipped or partly dropped)."""
        return self.guard.bad_steps

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The Trainer's `compute_loss`; in training, the loss is flagged finite or not on the device
        (`NonFiniteGuard.loss`), so that a non-finite one adds no gradient (nonfinite.py)."""
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            self.guard.loss(result[0] if return_outputs else result)
        return result

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step, with decode failures taken out of the batch and non-finite values kept out of the
        weights (the policy in nonfinite.py), without reading anything back from the device: a micro-batch whose
        loss is not finite, or whose videos all failed to decode, adds no gradient; at the step's last micro-batch,
        a step with no finite micro-batch anywhere gets NaN gradients (device-side), which the GradScaler or the
        step's decision (`_get_grad_norm`) then skips. Returns the micro-batch's loss (for one without a finite loss,
        the mean finite loss so far)."""
        video_ids = list(inputs.get("video_ids") or [])
        failures = self._record_failures(inputs)
        if failures and self.args.world_size == 1:
            self._check_failure_budget()
        self.guard.install(self.accelerator.unwrap_model(model))
        self.guard.begin()
        has_loss = "input_ids" in inputs
        if has_loss:
            loss = super().training_step(model, inputs, num_items_in_batch)
        else:  # every video of the batch failed to decode: nothing to learn from
            if self.args.world_size > 1:
                raise RuntimeError(
                    "no video of a training batch could be decoded, and with several processes a rank cannot skip "
                    f"a step alone: {', '.join(str(f['video_path']) for f in failures)}"
                )
            self.accelerator.backward(zero_loss(model))  # the step's machinery (a GradScaler) runs as usual
            loss = torch.zeros((), device=self.args.device)
        reported = self.guard.end_micro_batch(loss, has_loss, video_ids)
        if self.accelerator.sync_gradients:  # the optimiser step's last micro-batch, before clipping
            good = self.guard.good_micro_batches(self.args.device, self._sum_over_processes)
            self.guard.poison_if_nothing_good(model, good)
        return reported

    def _sum_over_processes(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(tensor, "sum") if self.args.world_size > 1 else tensor

    def _get_grad_norm(self, model, grad_norm=None):
        """The Trainer's gradient norm of the step (computed for clipping and logging, right before the optimiser
        step; a private hook, and tests/test_nonfinite.py fails if the Trainer stops calling it), then the step's
        decision (`NonFiniteGuard.decide`): the one read back of the step, shared with the count of new decode
        failures across processes."""
        grad_norm = super()._get_grad_norm(model, grad_norm)
        new_failures = sorted(self.failures.train_ids() - self.failures.train_ids_everywhere)
        scaler = self.accelerator.scaler
        step = self.state.global_step + 1
        (any_new,) = self.guard.decide(
            model, grad_norm, scaler, step, self.args.device, self._sum_over_processes, [len(new_failures)]
        )
        if (
            any_new and self.args.world_size > 1
        ):  # rare: gather the ids, so a video that failed on two ranks counts once
            everyone = [None] * self.args.world_size
            torch.distributed.all_gather_object(everyone, new_failures)
            new_failures = [video for rank in everyone for video in rank]
        self.failures.train_ids_everywhere.update(new_failures)
        if self.args.world_size > 1:
            self._check_failure_budget()
        return grad_norm

    def _check_failure_budget(self):
        """Stop (`BadSampleBudgetError`) when more than `max_bad_sample_fraction` of the training videos have failed
        to decode (`DecodeFailureLog.check_budget`)."""
        if self._train_videos is None:  # distinct videos: under query-centric batching the rows are queries
            dataset = self.train_dataset
            ids = dataset.with_format(None)["video_id"] if hasattr(dataset, "with_format") else range(len(dataset))
            self._train_videos = len(set(ids))
        self.failures.check_budget(self._train_videos, self.max_bad_sample_fraction)

    def train(self, *args, **kwargs):
        self._phase = "train"
        try:
            return super().train(*args, **kwargs)
        except RuntimeError as error:
            raise with_dead_worker_file(error, self.reading_dir) from error
        finally:
            self.guard.remove()

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        self._phase = metric_key_prefix
        try:
            return super().predict(test_dataset, ignore_keys, metric_key_prefix)
        except RuntimeError as error:
            raise with_dead_worker_file(error, self.reading_dir) from error
        finally:
            self._phase = "train"

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        phase, self._phase = self._phase, metric_key_prefix
        try:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        finally:
            self._phase = phase

    def gathered_failures(self) -> list[dict]:
        """`decode_failures` of every process, each video once per split (`DecodeFailureLog.gathered`). A collective
        call under several processes: every rank must make it."""
        return self.failures.gathered(self.args.world_size)

    def _with_eval_collator(self, make_loader):
        train_collator = self.data_collator
        self.data_collator = self.eval_data_collator
        try:
            return make_loader()
        finally:
            self.data_collator = train_collator

    def get_eval_dataloader(self, eval_dataset=None):
        return self._with_eval_collator(lambda: super(TSGVTrainer, self).get_eval_dataloader(eval_dataset))

    def get_test_dataloader(self, test_dataset):
        return self._with_eval_collator(lambda: super(TSGVTrainer, self).get_test_dataloader(test_dataset))

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Forward without grad; returns (loss, (spans, scores) video-major, (labels video-major, durations_s))."""
        failures = self._record_failures(inputs)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            outputs = model(**inputs)
        loss = outputs.loss.detach() if outputs.loss is not None else None
        if prediction_loss_only:
            return loss, None, None
        videos = inputs["pixel_values"] if inputs.get("pixel_values") is not None else inputs["video_states"]
        index, num_videos = inputs["query_video_index"], videos.shape[0]
        pred_spans = outputs.pred_spans.float()
        if failures:  # a video that failed to decode answers nothing: empty spans, IoU 0 with any moment (a miss)
            failed = torch.zeros(num_videos, dtype=torch.bool, device=index.device)
            failed[[f["index"] for f in failures]] = True
            pred_spans = pred_spans.masked_fill(failed[index][:, None, None], 0.0)
        spans = pack_video_major(pred_spans, index, num_videos)
        scores = pack_video_major(outputs.pred_scores.float(), index, num_videos)
        labels = inputs.get("labels")
        if labels is not None:
            labels = pack_video_major(
                labels.float() if labels.dim() == 3 else labels[:, None].float(), index, num_videos
            )
        else:  # label-less data: an all-padding label block keeps the output structure fixed
            labels = spans.new_full((num_videos, spans.shape[1], 1, 2), PAD)
        return loss, (spans, scores), (labels, inputs["durations_s"].float())


__all__ = [
    "TSGVTrainer",
    "StepTimer",
    "training_measures",
    "DecodeFailureLog",
    "BadSampleBudgetError",
    "NonFiniteStepsError",
    "SafeCheckpointsMixin",
    "CheckpointMarker",
    "EpochCallback",
    "checkpoint_problem",
    "last_complete_checkpoint",
    "pack_video_major",
    "unpack_predictions",
    "compute_grounding_metrics",
]
