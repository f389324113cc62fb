"""Stage 1: pretrain a VideoMAE backbone for the built-in synthetic world, once, the way VideoMAE checkpoints come to be.

What it makes: `<output_dir>/backbone/`, an ordinary `VideoMAEModel` folder (`config.json`, `model.safetensors`, the
video processor's `preprocessor_config.json`) that `VideoMAEModel.from_pretrained` and `run_grounding.py --video_model`
load like any VideoMAE checkpoint, with `stage1.json` (world, seeds, steps, wall time, read-outs) and
`stage1_heads.safetensors` (the target heads, so a later, longer stage 1 continues from it: `--init_from`).

How it learns: dense per-token targets read from what the generator knows. For every token of a clip (one tubelet of
2 frames x one patch), the targets are the object that covers the patch (its colour and its shape, or background),
how much of the patch it covers, and the action that object performs at that moment (or none). Linear heads on the
backbone's last hidden states predict them; the loss is cross-entropy for colour / shape / action (action on object
tokens only, weighted x2: motion is what a random ViT does not see) plus 5 x MSE for the coverage. These targets make
tokens carry what the grounding head needs (which object is where, and what it is doing now); masked reconstruction
and clip-level event labels taught far less in the same CPU time.

The world has its own seed: none of its videos is in the default job's splits, and none shows one of the default
world's held-out (colour, action) combinations (`--held_out_seed`, the grounding world's seed), so test and test_novel
stay unseen. Clips are cut from the frames the grounding model samples (`--num_frames` over the whole video, jittered;
clips of `--clip_frames`), so stage 1 sees the motion statistics stage 2 sees. Frames are decoded once into a
memory-mapped cache on disk (`<output_dir>/cache/`): memory stays flat for hours. Training runs through the `Trainer`
(progress, checkpoints, `--resume_from_checkpoint last`, `--bf16` and larger `--per_device_train_batch_size` on a GPU);
read-outs on the world's held-out videos (balanced accuracy per target, correlation for coverage) are logged at every
evaluation and written to `stage1.json`.

    python -m modeling_tsgv.synthetic.pretraining --output_dir outputs/stage1 --max_steps 20000
    python -m modeling_tsgv.synthetic.pretraining --output_dir outputs/stage1 --max_steps 40000 --resume_from_checkpoint last
"""

import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    Trainer,
    TrainerCallback,
    TrainingArguments,
    VideoMAEConfig,
    VideoMAEModel,
    VideoMAEVideoProcessor,
)
from transformers.modeling_outputs import ModelOutput
from transformers.models.videomae.modeling_videomae import VideoMAEPreTrainedModel

from ..argparsing import GroundingArgumentParser
from ..configuration_tsgv import BACKBONE_SIZES, random_backbone_config
from ..prepare import one_thread_per_process
from ..processing_tsgv import video_processor_settings
from ..tensor_files import allocate_safetensors, read_safetensors, writable_tensor
from ..trainer import SafeCheckpointsMixin, last_complete_checkpoint
from ..video import read_frames
from .world import ACTIONS, COLOURS, PRESETS, SHAPES, generate, object_tracks, patch_coverage, world_plans

logger = logging.getLogger(__name__)

# classes per target; index 0 is background (colour, shape) or "no action" (action)
TARGET_CLASSES = {"colour": 1 + len(COLOURS), "shape": 1 + len(SHAPES), "action": 1 + len(ACTIONS)}
TARGET_NAMES = tuple(TARGET_CLASSES) + ("coverage",)
LOSS_WEIGHTS = {"colour": 1.0, "shape": 1.0, "action": 2.0, "coverage": 5.0}
IGNORE = -100
MIN_COVERAGE = 0.15  # a patch belongs to an object when the object covers at least this share of it
CACHE_VERSION = "2"  # 2: one safetensors file (1: .npy files)


# ----------------------------------------------------------------------------- targets from the generator's tracks


def token_targets(plan, frame_times_s, grid: int, tubelet_size: int = 2) -> dict[str, np.ndarray]:
    """Per-token targets of one video at the sampled frames, in VideoMAE's token layout before flattening.

    Args:
        plan: the video's `synthetic.VideoPlan`.
        frame_times_s: (F,) presentation times (seconds) of the sampled frames; F a multiple of `tubelet_size`.
        grid: patches per side (image_size / patch_size of the backbone).
        tubelet_size: frames per token.
    Returns:
        {"colour", "shape", "action"}: (F / tubelet_size, grid, grid) int64 — colour / shape index + 1 of the object
        covering the patch (0: background), the index + 1 of the action that object performs at the tubelet's time
        (0: none; -100 on background tokens); "coverage": (F / tubelet_size, grid, grid) float32, the share of the
        patch the covering object covers. A blinking object keeps its patches during its dark phases (the token sees
        the blink through its neighbours in time).
    """
    tracks = object_tracks(plan)
    frame_indices = np.clip(np.round(np.asarray(frame_times_s) * plan.fps).astype(int), 0, plan.num_frames - 1)
    times_s = frame_indices / plan.fps
    shown = {**tracks, "alpha": tracks["alpha"].copy()}
    every_frame_s = np.arange(plan.num_frames) / plan.fps
    for event in plan.events:
        if event.action == "blink":
            active = (every_frame_s >= event.start_s) & (every_frame_s < event.end_s)
            shown["alpha"][event.object_index, active] = 1.0
    coverage = patch_coverage(plan, shown, frame_indices, grid)  # (F, O, g, g)
    steps = len(frame_indices) // tubelet_size
    coverage = coverage[: steps * tubelet_size].reshape(steps, tubelet_size, *coverage.shape[1:]).mean(axis=1)
    owner, covered = coverage.argmax(axis=1), coverage.max(axis=1)  # (S, g, g)
    background = covered < MIN_COVERAGE
    last = frame_indices[tubelet_size - 1 :: tubelet_size][:steps]  # the tubelet's last frame
    step_times_s = times_s.reshape(steps, tubelet_size).mean(axis=1)
    colour = tracks["colour_index"][:, last].T + 1  # (S, O)
    shape = np.array([list(SHAPES).index(o.shape) + 1 for o in plan.objects])
    action = np.zeros((steps, len(plan.objects)), dtype=np.int64)
    for event in plan.events:
        during = (step_times_s >= event.start_s) & (step_times_s <= event.end_s)
        action[during, event.object_index] = ACTIONS.index(event.action) + 1
    pick = np.take_along_axis
    targets = {
        "colour": pick(colour[:, :, None, None], owner[:, None], axis=1)[:, 0],
        "shape": shape[owner],
        "action": pick(action[:, :, None, None], owner[:, None], axis=1)[:, 0],
    }
    targets["colour"][background] = 0
    targets["shape"][background] = 0
    targets["action"][background] = IGNORE
    targets = {name: value.astype(np.int64) for name, value in targets.items()}
    targets["coverage"] = covered.astype(np.float32)
    return targets


# ----------------------------------------------------------------------------- the frame cache


def _decode_job(job: tuple) -> tuple[int, np.ndarray, dict]:
    """Worker: decode one sampling of one video, resize it as the video processor does, compute its targets."""
    slot, path, duration_s, plan, spacing, seed, settings = job
    rng = np.random.default_rng(seed)
    video = read_frames(path, settings["num_frames"], spacing, rng=rng, duration_s=duration_s)
    processor = VideoMAEVideoProcessor(**video_processor_settings(settings["image_size"]))
    resized = processor([torch.from_numpy(video.frames)], do_rescale=False, do_normalize=False, return_tensors="pt")[
        "pixel_values"
    ][0]  # (T, 3, S, S) float in [0, 255]
    frames = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (T, S, S, 3)
    return slot, frames, token_targets(plan, video.times_s, settings["grid"], settings["tubelet_size"])


class FrameCache:
    """Decoded, resized frames and per-token targets of a set of videos, in memory-mapped files (flat memory).

    Files in `folder`: `cache.safetensors` with `frames` (N, T, S, S, 3) uint8 and per target `{name}`
    (N, T / tubelet, g, g), filled row by row as the videos decode (`tensor_files.allocate_safetensors`), and `cache.json`
    (what it holds; written last, so a half-built cache is rebuilt). One entry per (video, sampling).
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.info = json.loads((self.folder / "cache.json").read_text())
        self._arrays = None  # mapped lazily in each process (a mapping must not be pickled into DataLoader workers)

    def arrays(self) -> dict[str, torch.Tensor]:
        """The cache's tensors by name, memory-mapped (`tensor_files.read_safetensors`)."""
        if self._arrays is None:
            self._arrays = read_safetensors(self.folder / "cache.safetensors")
        return self._arrays

    def __len__(self) -> int:
        return self.info["entries"]

    @staticmethod
    def build(folder, videos: list[dict], settings: dict, num_workers: int = 2) -> "FrameCache":
        """Decode every (video, sampling) of `videos` into `folder`, or reuse it when built with the same content.

        Args:
            videos: [{"path", "duration_s", "plan", "spacing", "seed"}] — one entry per sampling.
            settings: {"num_frames", "image_size", "grid", "tubelet_size"} and anything else that defines the cache.
        """
        folder = Path(folder)
        key = {"version": CACHE_VERSION, "settings": settings, "entries": len(videos)}
        key["videos"] = [[v["path"], v["spacing"], v["seed"]] for v in videos]
        try:
            if json.loads((folder / "cache.json").read_text()).get("key") == key:
                return FrameCache(folder)
        except (OSError, ValueError):
            pass
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        t, s, g = settings["num_frames"], settings["image_size"], settings["grid"]
        steps = t // settings["tubelet_size"]
        specs = {
            "frames": (torch.uint8, (len(videos), t, s, s, 3)),
            "coverage": (torch.float32, (len(videos), steps, g, g)),
        }
        specs.update(dict.fromkeys(TARGET_CLASSES, (torch.int64, (len(videos), steps, g, g))))
        offsets = allocate_safetensors(folder / "cache.safetensors", specs)
        files = {name: writable_tensor(folder / "cache.safetensors", offsets[name], *specs[name]) for name in specs}
        jobs = [
            (i, v["path"], v["duration_s"], v["plan"], v["spacing"], v["seed"], settings) for i, v in enumerate(videos)
        ]
        start_s = time.perf_counter()
        # forked workers with one thread each: this process has filled an earlier cache with torch's thread pool
        pool = multiprocessing.Pool(num_workers, initializer=one_thread_per_process) if num_workers > 1 else None
        try:
            results = pool.imap_unordered(_decode_job, jobs, chunksize=4) if pool else map(_decode_job, jobs)
            for done, (slot, frames, targets) in enumerate(results):
                files["frames"][slot] = torch.from_numpy(frames)
                for name in TARGET_NAMES:
                    files[name][slot] = torch.as_tensor(targets[name])
                if (done + 1) % 500 == 0:
                    logger.info(f"stage 1 cache: {done + 1} / {len(jobs)} samplings decoded")
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        del files  # unmapped: the rows are in the file (the page cache)
        info = {"key": key, "entries": len(videos), "decode_s": round(time.perf_counter() - start_s, 1)}
        (folder / "cache.json").write_text(json.dumps(info))
        return FrameCache(folder)


class ClipDataset(torch.utils.data.Dataset):
    """Clips of `clip_frames` consecutive sampled frames (the grounding model's clips) with their token targets.

    Item i: entry i // clips_per_entry of the cache, clip i % clips_per_entry. Returns `pixel_values`
    (clip_frames, 3, S, S) normalised as the video processor does, and per target a (tokens,) tensor in VideoMAE's
    token order (time, row, column).
    """

    def __init__(self, cache: FrameCache, clip_frames: int, tubelet_size: int, image_mean, image_std):
        self.cache, self.clip_frames, self.tubelet_size = cache, clip_frames, tubelet_size
        self.clips_per_entry = cache.info["key"]["settings"]["num_frames"] // clip_frames
        self.mean = torch.tensor(image_mean).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(image_std).view(1, 3, 1, 1) * 255.0

    def __len__(self) -> int:
        return len(self.cache) * self.clips_per_entry

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        arrays = self.cache.arrays()
        entry, clip = divmod(int(i), self.clips_per_entry)
        frames = arrays["frames"][entry, clip * self.clip_frames : (clip + 1) * self.clip_frames].clone()
        item = {"pixel_values": (frames.permute(0, 3, 1, 2).float() - self.mean) / self.std}
        steps = self.clip_frames // self.tubelet_size
        for name in TARGET_NAMES:
            item[name] = arrays[name][entry, clip * steps : (clip + 1) * steps].flatten().clone()
        return item


# ----------------------------------------------------------------------------- the model: VideoMAE + token heads


@dataclass
class TokenTargetsOutput(ModelOutput):
    """Outputs of `VideoMAEForTokenTargets`: the loss (when targets are given) and per-token predictions.

    colour_logits (B, N, 8), shape_logits (B, N, 6), action_logits (B, N, 12), coverage (B, N) for N tokens.
    """

    loss: torch.Tensor | None = None
    colour_logits: torch.Tensor | None = None
    shape_logits: torch.Tensor | None = None
    action_logits: torch.Tensor | None = None
    coverage: torch.Tensor | None = None


class VideoMAEForTokenTargets(VideoMAEPreTrainedModel):
    """A `VideoMAEModel` (`.videomae`, the product of stage 1) with linear per-token heads for the stage-1 targets.

    The heads read the backbone's last hidden states (after its final layernorm when it has one, as the grounding
    model reads them) through a LayerNorm of their own.
    """

    accepts_loss_kwargs = False

    def __init__(self, config: VideoMAEConfig):
        super().__init__(config)
        self.videomae = VideoMAEModel(config)
        self.head_norm = nn.LayerNorm(config.hidden_size)
        self.heads = nn.ModuleDict({name: nn.Linear(config.hidden_size, n) for name, n in TARGET_CLASSES.items()})
        self.heads["coverage"] = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, pixel_values, colour=None, shape=None, action=None, coverage=None) -> TokenTargetsOutput:
        """pixel_values (B, clip_frames, 3, S, S); targets (B, N) as `ClipDataset` gives them. Returns
        `TokenTargetsOutput` with the weighted loss of `LOSS_WEIGHTS` when all targets are given."""
        hidden = self.head_norm(self.videomae(pixel_values).last_hidden_state)  # (B, N, D)
        out = {name: self.heads[name](hidden) for name in TARGET_CLASSES}
        predicted_coverage = self.heads["coverage"](hidden).squeeze(-1)
        loss = None
        if colour is not None and shape is not None and action is not None and coverage is not None:
            ce = nn.functional.cross_entropy
            loss = LOSS_WEIGHTS["colour"] * ce(out["colour"].flatten(0, 1), colour.flatten())
            loss = loss + LOSS_WEIGHTS["shape"] * ce(out["shape"].flatten(0, 1), shape.flatten())
            objects = (action != IGNORE).sum().clamp(min=1)  # a tensor: no host sync
            action_ce = ce(out["action"].flatten(0, 1), action.flatten(), ignore_index=IGNORE, reduction="sum")
            loss = loss + LOSS_WEIGHTS["action"] * action_ce / objects
            loss = loss + LOSS_WEIGHTS["coverage"] * nn.functional.mse_loss(predicted_coverage, coverage.float())
        return TokenTargetsOutput(
            loss=loss,
            colour_logits=out["colour"],
            shape_logits=out["shape"],
            action_logits=out["action"],
            coverage=predicted_coverage,
        )


def predictions_for_metrics(logits, labels) -> torch.Tensor:
    """`preprocess_logits_for_metrics`: (B, N, 4) — argmax colour, shape, action and the predicted coverage."""
    colour, shape, action, coverage = logits
    return torch.stack([colour.argmax(-1).float(), shape.argmax(-1).float(), action.argmax(-1).float(), coverage], -1)


def balanced_accuracy(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean over the classes present in `target` of the share of their tokens predicted right (chance: 1 / classes)."""
    classes = np.unique(target)
    return float(np.mean([(predicted[target == c] == c).mean() for c in classes])) if len(classes) else float("nan")


def _ridge_fit(
    x: torch.Tensor, y: torch.Tensor, ridge: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form ridge regression of (n, k) targets on standardised (n, d) features: (mean, std, weights (d+1, k))."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    design = nn.functional.pad((x - mean) / std, (0, 1), value=1.0)
    weights = torch.linalg.solve(design.T @ design + ridge * torch.eye(design.shape[1], dtype=x.dtype), design.T @ y)
    return mean, std, weights


def _ridge_predict(x: torch.Tensor, mean, std, weights) -> torch.Tensor:
    return nn.functional.pad((x - mean) / std, (0, 1), value=1.0) @ weights


@torch.no_grad()
def linear_probe_readouts(backbone: VideoMAEModel, clips, batch_size: int = 64) -> dict[str, float]:
    """What a backbone's tokens carry, by linear probes (closed-form ridge, one-hot targets) fitted on the tokens of
    the first half of `clips`' videos and scored on the second half: the `READOUT_NAMES` figures (balanced accuracy
    of colour and shape over all tokens, of the action and of acting-or-not over object tokens; Pearson r of the
    coverage). The same probes for every backbone, whatever it was trained for.

    Args: backbone: a `VideoMAEModel` (its last hidden states are probed); clips: a `ClipDataset` (held-out videos;
        each video's clips are consecutive items).
    Returns: {READOUT_NAMES key: value}.
    """
    backbone.eval()
    tokens, targets = [], {name: [] for name in TARGET_NAMES}
    for start in range(0, len(clips), batch_size):
        items = [clips[i] for i in range(start, min(start + batch_size, len(clips)))]
        pixels = torch.stack([item["pixel_values"] for item in items])
        tokens.append(backbone(pixels).last_hidden_state.flatten(0, 1).double())
        for name in TARGET_NAMES:
            targets[name].append(torch.cat([item[name] for item in items]))
    x, y = torch.cat(tokens), {name: torch.cat(values) for name, values in targets.items()}
    per_clip = len(x) // len(clips)
    half = (len(clips) // clips.clips_per_entry // 2) * clips.clips_per_entry * per_clip  # whole videos each side
    objects = y["action"] != IGNORE
    out = {}
    for name, classes, keep, label in (
        ("colour", TARGET_CLASSES["colour"], torch.ones_like(objects), y["colour"]),
        ("shape", TARGET_CLASSES["shape"], torch.ones_like(objects), y["shape"]),
        ("action", TARGET_CLASSES["action"], objects, y["action"].clamp(min=0)),
        ("motion", 2, objects, (y["action"] > 0).long()),
    ):
        fit, score = keep.clone(), keep.clone()
        fit[half:], score[:half] = False, False
        fitted = _ridge_fit(x[fit], nn.functional.one_hot(label[fit], classes).double())
        predicted = _ridge_predict(x[score], *fitted).argmax(-1)
        out[f"{name}_balanced_accuracy"] = balanced_accuracy(predicted.numpy(), label[score].numpy())
    fitted = _ridge_fit(x[:half], y["coverage"][:half, None].double())
    predicted = _ridge_predict(x[half:], *fitted)[:, 0].numpy()
    out["coverage_correlation"] = float(np.corrcoef(predicted, y["coverage"][half:].numpy())[0, 1])
    return {key: round(value, 4) for key, value in out.items()}


def readout_metrics(eval_pred) -> dict[str, float]:
    """Read-outs on held-out clips: balanced accuracy of colour and shape (all tokens, background a class), of the
    action (object tokens) and of "moving or not" (object tokens: any action vs none), and the Pearson correlation
    of the coverage."""
    predictions = np.asarray(eval_pred.predictions)  # (n, N, 4)
    colour, shape, action, coverage = (np.asarray(x) for x in eval_pred.label_ids)
    objects = action != IGNORE
    predicted_action = predictions[..., 2][objects]
    covered = predictions[..., 3].ravel()
    return {
        "colour_balanced_accuracy": balanced_accuracy(predictions[..., 0].ravel(), colour.ravel()),
        "shape_balanced_accuracy": balanced_accuracy(predictions[..., 1].ravel(), shape.ravel()),
        "action_balanced_accuracy": balanced_accuracy(predicted_action, action[objects]),
        "motion_balanced_accuracy": balanced_accuracy(predicted_action > 0, action[objects] > 0),
        "coverage_correlation": float(np.corrcoef(covered, coverage.ravel())[0, 1]),
    }


class Stage1Trainer(SafeCheckpointsMixin, Trainer):
    """The Trainer with checkpoints that are complete or absent and a VideoMAE-safe reload (`SafeCheckpointsMixin`)."""


# ----------------------------------------------------------------------------- arguments


@dataclass
class Stage1Arguments:
    """What stage 1 trains on and what it starts from."""

    _argument_group_name = "stage 1 (world, targets, starting point)"

    presets: list[str] = field(
        default_factory=lambda: ["easy", "standard"],
        metadata={"help": "World presets to pretrain on (one world each, equal shares): easy and/or standard."},
    )
    num_videos: int = field(default=2000, metadata={"help": "Videos per preset's world (train + held-out)."})
    world_seed: int = field(default=1, metadata={"help": "Seed of the first world (the k-th preset's is + k)."})
    held_out_seed: int = field(
        default=0,
        metadata={"help": "Seed of the grounding world whose videos and held-out (colour, action) pairs stay unseen."},
    )
    held_out_fraction: float = field(default=0.05, metadata={"help": "Share of each world kept for the read-outs."})
    samplings_per_video: int = field(default=2, metadata={"help": "Jittered frame samplings cached per video."})
    size: str = field(default="tiny", metadata={"help": f"Backbone size: {', '.join(BACKBONE_SIZES)}."})
    image_size: int = field(default=64, metadata={"help": "Frame side the backbone sees (px)."})
    num_frames: int = field(default=32, metadata={"help": "Frames sampled over each whole video (as in grounding)."})
    clip_frames: int = field(default=8, metadata={"help": "Frames per backbone clip (its num_frames)."})
    init_from: str | None = field(
        default=None,
        metadata={"help": "A stage-1 backbone folder to continue from (its heads too, when saved beside it)."},
    )
    snapshot_steps: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Steps at which to keep a copy of the backbone (snapshots/step-N/), e.g. for a scaling curve."
        },
    )
    objective: str = field(
        default="token_targets",
        metadata={
            "help": "token_targets: dense per-token targets from the generator (the shipped synthetic-tiny); "
            "recognition: VideoMAE's masked reconstruction, then clip-level classification of the actions, colours "
            "and shapes that occur (as real checkpoints are made; modeling_tsgv/synthetic/stage1_recognition.py)."
        },
    )
    mae_steps: int = field(
        default=3000, metadata={"help": "--objective recognition: masked-reconstruction steps before classification."}
    )
    classify_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "--objective recognition: AdamW rate of the clip-classification phase (default: --learning_rate; "
            "fine-tuning a reconstruction-pretrained encoder wants a lower one, as VideoMAE's recipes use)."
        },
    )
    cache_workers: int = field(default=2, metadata={"help": "Processes that decode the frame cache."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an earlier run in --output_dir."})


@dataclass
class Stage1TrainingArguments(TrainingArguments):
    """TrainingArguments with stage 1's defaults; every Trainer option stays available."""

    _argument_group_name = "training (stage 1's)"

    output_dir: str = field(default=os.path.join("outputs", "stage1"), metadata={"help": "Where everything goes."})
    max_steps: int = field(default=20000, metadata={"help": "Optimiser steps in total (a resumed run goes on to it)."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Clips per step and device."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Clips per evaluation batch."})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    lr_scheduler_type: str = field(
        default="constant_with_warmup",
        metadata={"help": "Constant after warm-up, so a run can be extended or resumed without a schedule to redo."},
    )
    warmup_steps: float = field(default=300, metadata={"help": "Linear warm-up steps."})
    logging_steps: float = field(default=200, metadata={"help": "Steps between loss logs."})
    label_names: list[str] | None = field(default_factory=lambda: list(TARGET_NAMES))
    eval_strategy: str = field(default="steps", metadata={"help": "Read-outs on held-out videos every eval_steps."})
    eval_steps: float = field(default=2000, metadata={"help": "Steps between read-outs."})
    save_steps: float = field(default=1000, metadata={"help": "Steps between checkpoints."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept."})
    dataloader_num_workers: int = field(default=1, metadata={"help": "DataLoader worker processes."})
    dataloader_pin_memory: bool = field(
        default=torch.cuda.is_available(), metadata={"help": "Pinned host memory for batches (GPU runs)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the initialisation and the clip order."})


class Stage1Error(ValueError):
    """An argument or output folder that cannot work, found before anything is written; the message names it."""


def check_arguments(args: Stage1Arguments, training_args: Stage1TrainingArguments) -> None:
    """Raise `Stage1Error` naming the first flag that cannot work."""
    unknown = [p for p in args.presets if p not in PRESETS]
    if not args.presets or unknown:
        raise Stage1Error(f"--presets must name one or more of {', '.join(PRESETS)}, got {args.presets}")
    seeds = [args.world_seed + k for k in range(len(args.presets))]
    if args.held_out_seed in seeds or args.world_seed < 0:
        raise Stage1Error(
            f"--world_seed {args.world_seed} gives the worlds seeds {seeds}, which must be >= 0 and differ from "
            f"--held_out_seed {args.held_out_seed}: stage 1 must never see the grounding world's videos"
        )
    if args.size not in BACKBONE_SIZES and args.init_from is None:
        raise Stage1Error(f"--size must be one of {', '.join(BACKBONE_SIZES)}, got {args.size!r}")
    if args.num_videos < 20 or not 0 < args.held_out_fraction < 0.5:
        raise Stage1Error(
            f"need --num_videos >= 20 and 0 < --held_out_fraction < 0.5, got {args.num_videos}, "
            f"{args.held_out_fraction}"
        )
    if args.clip_frames % 2 or args.num_frames % args.clip_frames or args.samplings_per_video < 1:
        raise Stage1Error(
            f"--clip_frames ({args.clip_frames}) must be even and divide --num_frames ({args.num_frames}), and "
            f"--samplings_per_video ({args.samplings_per_video}) >= 1"
        )
    patch = BACKBONE_SIZES.get(args.size, {}).get("patch_size", 16)
    if args.init_from is None and args.image_size % patch:
        raise Stage1Error(f"--image_size ({args.image_size}) must be a multiple of the {patch}-px patches")
    if args.init_from is not None and not (Path(args.init_from) / "config.json").is_file():
        raise Stage1Error(f"--init_from {args.init_from}: no config.json there (not a saved backbone folder)")
    if training_args.max_steps < 1:
        raise Stage1Error(f"--max_steps must be >= 1, got {training_args.max_steps}")
    check_objective(args, training_args)
    out = Path(training_args.output_dir)
    earlier = (out / "backbone").exists() or any(out.glob("checkpoint-*")) or (out / "mae").exists()
    if earlier and not (args.overwrite_output_dir or training_args.resume_from_checkpoint):
        raise Stage1Error(
            f"--output_dir {out} holds an earlier stage-1 run: pass --resume_from_checkpoint last to continue it, "
            "--overwrite_output_dir to replace it, or another --output_dir"
        )


def check_objective(args: Stage1Arguments, training_args: Stage1TrainingArguments) -> None:
    """`--objective` and the flags that go with it: `Stage1Error` naming the flag."""
    if args.objective not in ("token_targets", "recognition"):
        raise Stage1Error(f"--objective must be token_targets or recognition, got {args.objective!r}")
    if args.objective != "recognition":
        return
    if not 0 < args.mae_steps < training_args.max_steps:
        raise Stage1Error(
            f"--mae_steps ({args.mae_steps}) must be > 0 and below --max_steps ({training_args.max_steps}): "
            "masked reconstruction first, then clip classification for the rest"
        )
    if args.init_from is not None or args.snapshot_steps:
        raise Stage1Error("--init_from and --snapshot_steps work with --objective token_targets only")
    if args.classify_learning_rate is not None and not args.classify_learning_rate > 0:
        raise Stage1Error(f"--classify_learning_rate must be > 0, got {args.classify_learning_rate}")


def prepare_worlds(args: Stage1Arguments, output_dir: Path) -> list[dict]:
    """Generate (or reuse) one world per preset; returns per sampling {"path", "duration_s", "plan", "spacing",
    "seed", "split"} for the train ("random" frames, `samplings_per_video` each) and held-out ("uniform", one) videos."""
    entries = []
    for k, preset in enumerate(args.presets):
        folder = output_dir / "worlds" / preset
        seed = args.world_seed + k
        generate(
            folder, num_videos=args.num_videos, seed=seed, preset=preset, held_out_seed=args.held_out_seed,
            split_fractions=(1.0 - args.held_out_fraction, args.held_out_fraction, 0.0, 0.0), progress=False,
        )  # fmt: skip
        for index, plan in enumerate(world_plans(folder).values()):
            train = plan.split == "train"
            for sampling in range(args.samplings_per_video if train else 1):
                entries.append(
                    {
                        "path": str(folder / "videos" / f"{plan.video_id}.mp4"),
                        "duration_s": plan.duration_s,
                        "plan": plan,
                        "spacing": "random" if train else "uniform",
                        "seed": [seed, index, sampling],
                        "split": "train" if train else "held_out",
                    }
                )
    return entries


def backbone_config(args: Stage1Arguments) -> VideoMAEConfig:
    """The VideoMAE config stage 1 trains: `args.size` at `args.image_size` / `args.clip_frames`, or `--init_from`'s."""
    if args.init_from is None:
        return random_backbone_config(args.size, args.image_size, args.clip_frames)
    return VideoMAEConfig.from_pretrained(args.init_from)


def build_model(args: Stage1Arguments, seed: int) -> tuple[VideoMAEForTokenTargets, dict]:
    """A fresh model of `args.size`, or one continued from `args.init_from`; returns it with the earlier stage-1
    record ({"steps", "train_seconds", "commands", "readouts_at_init"} of the run(s) it continues; none for a
    fresh one)."""
    if args.init_from is None:
        torch.manual_seed(seed)
        model = VideoMAEForTokenTargets._from_config(backbone_config(args))
        return model, {"steps": 0, "train_seconds": 0.0, "commands": [], "readouts_at_init": None}
    backbone = VideoMAEModel.from_pretrained(args.init_from)
    model = VideoMAEForTokenTargets._from_config(backbone.config)
    model.videomae.load_state_dict(backbone.state_dict())
    heads = Path(args.init_from) / "stage1_heads.safetensors"
    if heads.is_file():
        missing, unexpected = model.load_state_dict(load_file(heads), strict=False)
        if unexpected or any(not key.startswith("videomae.") for key in missing):
            raise Stage1Error(f"{heads}: does not fit this backbone (unexpected {unexpected[:3]})")
    record_path = Path(args.init_from) / "stage1.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    earlier = {"steps": int(record.get("steps", 0)), "train_seconds": float(record.get("train_seconds", 0.0))}
    earlier.update(commands=list(record.get("commands", [])), readouts_at_init=record.get("readouts_at_init"))
    return model, earlier


class ProgressCallback(TrainerCallback):
    """Counts training seconds across resumes (kept in `<output_dir>/stage1_progress.json` at every save) and keeps
    backbone snapshots at `snapshot_steps` (after the read-out that the step triggers)."""

    def __init__(self, output_dir: Path, snapshot_steps, save_snapshot, command: str):
        self.path = output_dir / "stage1_progress.json"
        self.snapshot_steps, self.save_snapshot = set(snapshot_steps), save_snapshot
        kept = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.seconds = float(kept.get("train_seconds", 0.0))
        self.commands = kept.get("commands", []) + [command]  # every invocation that trained this run
        self.readouts_at_init = kept.get("readouts_at_init")  # set by `main` on a fresh run
        self._since = None

    def elapsed_s(self) -> float:
        return self.seconds + (time.perf_counter() - self._since if self._since is not None else 0.0)

    def on_train_begin(self, args, state, control, **kwargs):
        self._since = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.snapshot_steps:
            control.should_evaluate = True

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if state.global_step in self.snapshot_steps and model is not None:
            self.save_snapshot(model, state.global_step, self.elapsed_s(), metrics or {})

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            progress = {"train_seconds": self.elapsed_s(), "step": state.global_step, "commands": self.commands}
            progress["readouts_at_init"] = self.readouts_at_init
            self.path.write_text(json.dumps(progress))

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds, self._since = self.elapsed_s(), None


def readouts(metrics: dict) -> dict[str, float]:
    """The read-out figures of a Trainer evaluation, without its prefix, rounded."""
    return {
        key[len("eval_") :]: round(value, 4)
        for key, value in metrics.items()
        if key.startswith("eval_") and ("accuracy" in key or "correlation" in key or key == "eval_loss")
    }


def hardware() -> str:
    """One line naming the device stage 1 ran on."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA), {os.cpu_count()} CPU cores"
    return f"{torch.get_num_threads()} CPU threads ({os.cpu_count()} cores), no GPU"


def save_backbone(model: VideoMAEForTokenTargets, folder: Path, record: dict, image_size: int) -> None:
    """Write the product: the VideoMAE folder, its video processor, the target heads and `stage1.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    model = model.module if hasattr(model, "module") else model
    model.videomae.save_pretrained(folder)
    VideoMAEVideoProcessor(**video_processor_settings(image_size)).save_pretrained(folder)
    heads = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("videomae.")}
    save_file(heads, folder / "stage1_heads.safetensors")
    (folder / "stage1.json").write_text(json.dumps(record, indent=1) + "\n")
    (folder / "README.md").write_text(backbone_card(record, model.videomae.config))


READOUT_NAMES = {
    "colour_balanced_accuracy": "colour of the covering object (or background), all tokens",
    "shape_balanced_accuracy": "shape of the covering object (or background), all tokens",
    "action_balanced_accuracy": "action of the covering object (11 actions or none), object tokens",
    "motion_balanced_accuracy": "acting or not, object tokens",
    "coverage_correlation": "share of the patch covered (Pearson r)",
}


def backbone_card(record: dict, config: VideoMAEConfig) -> str:
    """The model card of a stage-1 backbone (markdown with YAML front matter, from `templates/backbone_card.md`),
    filled from its `stage1.json` record and its VideoMAE config."""
    world, init = record["world"], record.get("readouts_at_init") or {}
    rows = "\n".join(
        f"{text} | {init.get(key, float('nan')):.3f} | **{record['readouts'].get(key, float('nan')):.3f}**"
        for key, text in READOUT_NAMES.items()
    )
    template = Path(__file__).parent.parent / "templates" / "backbone_card.md"
    return template.read_text().format(
        **{"hidden_size": config.hidden_size, "num_layers": config.num_hidden_layers, "patch_size": config.patch_size},
        **{"image_size": config.image_size, "clip_frames": config.num_frames, "tubelet_size": config.tubelet_size},
        presets=" and ".join(world["presets"]),
        videos_per_world=f"{world['num_videos_per_world']:,}",
        seeds=", ".join(map(str, world["seeds"])),
        held_out_percent=f"{100 * world['held_out_fraction']:.0f}",
        held_out_seed=world["held_out_seed"],
        samplings=world["samplings_per_video"],
        num_frames=world["num_frames"],
        loss_weights=record["loss_weights"],
        steps=f"{record['steps']:,}",
        clips_per_step=record["clips_per_step"],
        learning_rate=f"{record['learning_rate']:g}",
        minutes=f"{record['train_seconds'] / 60:.0f}",
        hardware=record["hardware"],
        rows=rows,
        commands="\n".join(record["commands"]),
    )


def parse_arguments(argv=None) -> tuple[Stage1Arguments, Stage1TrainingArguments]:
    """Both argument dataclasses from the command line (or `argv`), checked; `Stage1Error` names a bad flag."""
    epilog = (
        "Makes <output_dir>/backbone: a VideoMAEModel folder for run_grounding.py --video_model, with stage1.json and "
        "a model card. Time on 2 CPU cores: about 1 min to generate the two 2,000-video worlds and 5 min to decode "
        "their frames once (both reused by later runs in the same --output_dir), then about 7 steps of 32 clips per "
        "second (the default 20,000 steps: about 50 min; 6,000 steps already give the default job its targets). On a "
        "GPU add --bf16 and a larger --per_device_train_batch_size."
    )
    description = __doc__.split("\n\n")[0]
    parser = GroundingArgumentParser(
        (Stage1Arguments, Stage1TrainingArguments), description=description, epilog=epilog
    )
    args, training_args = parser.parse_args_into_dataclasses(args=argv)
    check_arguments(args, training_args)
    return args, training_args


def prepare_output_dir(args, training_args) -> tuple[Path, str | None]:
    """The output folder (cleared of an earlier run's backbone, snapshots and checkpoints with
    `--overwrite_output_dir`), and the checkpoint to resume from (`last`: the newest complete one, None if none)."""
    output_dir = Path(training_args.output_dir)
    if args.overwrite_output_dir and not training_args.resume_from_checkpoint:
        stale_folders = [
            output_dir / "backbone",
            output_dir / "snapshots",
            output_dir / "mae",
            output_dir / "classification",
        ]
        for stale in [*stale_folders, *output_dir.glob("checkpoint-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        (output_dir / "stage1_progress.json").unlink(missing_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume = training_args.resume_from_checkpoint
    if resume == "last":
        resume = last_complete_checkpoint(str(output_dir))
        if resume is None:
            logger.info(f"no complete checkpoint in {output_dir}: starting stage 1 from the beginning")
    return output_dir, resume


def clip_datasets(args, training_args, output_dir: Path, config: VideoMAEConfig) -> dict:
    """The stage-1 worlds and their frame caches (built by the main process first; other ranks reuse them), as
    {"train", "held_out"} `ClipDataset`s of the backbone's clips."""
    start_s = time.perf_counter()
    grid, tubelet = config.image_size // config.patch_size, config.tubelet_size
    settings = {"num_frames": args.num_frames, "image_size": config.image_size, "grid": grid, "tubelet_size": tubelet}
    with training_args.main_process_first(desc="stage-1 worlds and frame caches"):  # one writer; other ranks reuse
        entries = prepare_worlds(args, output_dir)
        caches = {
            split: FrameCache.build(
                output_dir / "cache" / split, [e for e in entries if e["split"] == split], settings, args.cache_workers
            )
            for split in ("train", "held_out")
        }
    processor = VideoMAEVideoProcessor(**video_processor_settings(config.image_size))
    datasets = {
        split: ClipDataset(cache, config.num_frames, tubelet, processor.image_mean, processor.image_std)
        for split, cache in caches.items()
    }
    logger.info(
        f"stage 1: {len(datasets['train'])} training clips ({len(caches['train'])} samplings), "
        f"{len(datasets['held_out'])} held-out clips; worlds and cache ready in {time.perf_counter() - start_s:.0f} s"
    )
    return datasets


def world_record(args: Stage1Arguments) -> dict:
    """The stage-1 worlds as `stage1.json` records them: presets, videos per world, seeds, held-out share and seed,
    samplings per video, frames per sampling."""
    return {
        "presets": args.presets, "num_videos_per_world": args.num_videos,
        "seeds": [args.world_seed + k for k in range(len(args.presets))], "held_out_seed": args.held_out_seed,
        "held_out_fraction": args.held_out_fraction, "samplings_per_video": args.samplings_per_video,
        "num_frames": args.num_frames,
    }  # fmt: skip


def recognition_stage1(args, training_args, output_dir: Path, datasets: dict, config, command: str) -> dict:
    """`--objective recognition` (`stage1_recognition.run_recognition`, imported only then)."""
    from .stage1_recognition import run_recognition

    resume = training_args.resume_from_checkpoint
    return run_recognition(args, training_args, output_dir, datasets, config, resume, command)


def main(argv=None) -> dict:
    """`python -m modeling_tsgv.synthetic.pretraining ...`: returns the final `stage1.json` record."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args, training_args = parse_arguments(argv)
    except Stage1Error as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    output_dir, resume = prepare_output_dir(args, training_args)
    config = backbone_config(args)
    datasets = clip_datasets(args, training_args, output_dir, config)
    command = "python -m modeling_tsgv.synthetic.pretraining " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.objective == "recognition":  # each phase resumes from its own checkpoints: the flag as given
        return recognition_stage1(args, training_args, output_dir, datasets, config, command)
    model, earlier = build_model(args, training_args.seed)
    world = world_record(args)

    def record_of(step: int, seconds: float, metrics: dict) -> dict:
        return {
            "steps": earlier["steps"] + step,
            "train_seconds": round(earlier["train_seconds"] + seconds, 1),
            "clips_per_step": training_args.per_device_train_batch_size * max(1, training_args.world_size),
            "learning_rate": training_args.learning_rate,
            "hardware": hardware(),
            "world": world,
            "targets": {**TARGET_CLASSES, "coverage": "share of the patch"},
            "loss_weights": LOSS_WEIGHTS,
            "readouts": readouts(metrics),
            "commands": earlier["commands"] + progress.commands,
            "readouts_at_init": earlier["readouts_at_init"] or progress.readouts_at_init,
        }

    def save_snapshot(model, step, seconds, metrics):
        if training_args.should_save:  # the main process writes; other ranks only evaluate
            save_backbone(model, output_dir / "snapshots" / f"step-{step}", record_of(step, seconds, metrics),
                          config.image_size)  # fmt: skip

    progress = ProgressCallback(output_dir, args.snapshot_steps, save_snapshot, command)
    trainer = Stage1Trainer(
        model=model,
        args=training_args,
        train_dataset=datasets["train"],
        eval_dataset=datasets["held_out"],
        compute_metrics=readout_metrics,
        preprocess_logits_for_metrics=predictions_for_metrics,
        callbacks=[progress],
    )
    if resume is None and earlier["steps"] == 0:
        progress.readouts_at_init = readouts(trainer.evaluate())
        logger.info(f"stage 1 read-outs at random init: {progress.readouts_at_init}")
    trainer.train(resume_from_checkpoint=resume)
    record = record_of(trainer.state.global_step, progress.elapsed_s(), trainer.evaluate())
    if training_args.should_save:
        save_backbone(trainer.model, output_dir / "backbone", record, config.image_size)
    logger.info(f"stage 1 done: {output_dir / 'backbone'}; read-outs {record['readouts']}")
    return record


if __name__ == "__main__":
    main()
