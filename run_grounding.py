"""Train and evaluate a tsgv temporal sentence grounding model with the transformers Trainer.

Default job (no arguments): generate the synthetic world (cached), train a small SCADA model on it, evaluate on test
and test_novel, save model + processor + model card into outputs/tsgv-synthetic:

    python run_grounding.py

Several processes (DDP; on CPU add --use_cpu):
    accelerate launch --multi_gpu --num_processes 2 run_grounding.py --use_cpu ...
    torchrun --nproc_per_node 2 run_grounding.py --use_cpu ...
    (`accelerate launch --cpu --num_processes 2` starts ONE process: do not use it for 2 CPU ranks)
DeepSpeed ZeRO-2 / ZeRO-3 (giant backbones): add --deepspeed ds_configs/zero3.json to a torchrun / accelerate launch.

Real Charades-STA (videos from the Charades site, annotations from the STA release):
    python run_grounding.py --dataset charades-sta --video_dir /data/Charades_v1_480 \
        --train_file charades_sta_train.txt --test_file charades_sta_test.txt \
        --durations Charades_v1_train.csv Charades_v1_test.csv \
        --video_model MCG-NJU/videomae-base --text_model distilbert-base-uncased --num_frames 64 --image_size 224 \
        --output_dir outputs/tsgv-charades --bf16 --per_device_train_batch_size 8

Arguments come from the command line or from one .json / .yaml file (`python run_grounding.py args.json`).
"""

import atexit
import logging
import os
import shlex
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
import transformers
from transformers import (
    AutoConfig,
    AutoProcessor,
    TrainingArguments,
    VideoMAEModel,
    set_seed,
)

from modeling_tsgv import TSGVConfig, TSGVForGrounding, TSGVProcessor, default_text_encoder_path, run_folder
from modeling_tsgv.annotations import FORMATS, explode_queries, read_annotations, rows_to_dataset
from modeling_tsgv.argparsing import GroundingArgumentParser
from modeling_tsgv.configuration_tsgv import (
    BACKBONE_SIZES,
    BUILTIN_BACKBONES,
    ModelFolderError,
    builtin_backbone_path,
    check_model_folder,
    config_with_overrides,
    is_hub_id,
    parse_config_overrides,
    random_backbone_config,
)
from modeling_tsgv.data import FrameTransform, QueryCentricCollator, VideoCentricCollator
from modeling_tsgv.evaluation import (
    calibrate_on_split,
    gather_records,
    score_as_served,
    served_metrics,
    serving_pipeline,
)
from modeling_tsgv.feature_cache import (
    VideoStatesCache,
    cache_bytes,
    cache_dtypes,
    can_cache,
    local_processes,
    shared_per_machine,
)
from modeling_tsgv.feature_store import FeatureStore
from modeling_tsgv.prepare import PreparedStore
from modeling_tsgv.processing_tsgv import check_processor_matches
from modeling_tsgv.reporting import write_predictions, write_run_report
from modeling_tsgv.run_folder import DropReplacedCheckpoints, OutputFolderError
from modeling_tsgv.text_states import SentenceStates
from modeling_tsgv.trainer import (
    LR_RECIPES,
    BadSampleBudgetError,
    EpochCallback,
    NonFiniteStepsError,
    TSGVTrainer,
    compute_grounding_metrics,
    last_complete_checkpoint,
    lr_recipe,
    training_measures,
)
from modeling_tsgv.video import BACKENDS

logger = logging.getLogger(__name__)


class RunInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C; its message names the newest complete checkpoint and how to resume it."""

    def __init__(self, output_dir: str, argv: list[str]):
        last = last_complete_checkpoint(output_dir)
        if last is None:
            super().__init__(f"interrupted before the first checkpoint was saved in {output_dir}: nothing to resume")
        else:
            super().__init__(f"interrupted; the newest complete checkpoint is {last}; {resume_instructions(argv)}")


def resume_instructions(argv: list[str]) -> str:
    """How to resume the run started with `argv`: the same command with `--resume_from_checkpoint last` (replacing
    an earlier one), or the line to add to its .json / .yaml file."""
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        return f'to resume, add "resume_from_checkpoint": "last" to {argv[0]} and run it again'
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume_from_checkpoint":
            skip = True
        elif not arg.startswith("--resume_from_checkpoint="):
            kept.append(arg)
    command = shlex.join(["python", "run_grounding.py", *kept, "--resume_from_checkpoint", "last"])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by a launcher we cannot see: name its part
        command = f"your launch command (torchrun / accelerate launch) with {command.removeprefix('python ')}"
    return f"resume with: {command}"


class ArgumentError(ValueError):
    """An argument that cannot work, found before anything is written; the message names the flag.
    `python run_grounding.py` prints it as one line and exits with status 2."""


# the named model flags: shorthands for TSGVConfig fields (--config_overrides sets any other plain field)
CONFIG_FLAGS = (
    "backbone_tuning",
    "scada_layers",
    "scada_bottleneck",
    "scada_temporal_kernel",
    "partial_layers",
    "train_text_encoder",
    "num_frames",
    "clip_frames",
    "image_size",
    "spatial_pooling",
    "head_hidden_size",
    "head_layers",
    "max_spans",
    "nms_threshold",
)
DEFAULT_VIDEO_MODEL = "synthetic-tiny"
# the default synthetic world's videos per split (train, val, test, test_novel): the 700 / 100 training videos of a
# 1,000-video world, with test splits of about 1,500 queries each (2.9 per test video, 1.2 per test_novel video;
# a binomial standard error of R1@0.5 near 1.2 points), so that the default job's figures resolve 2-3 points
DEFAULT_SPLIT_VIDEOS = (700, 100, 520, 1250)


@dataclass
class ModelArguments:
    """Which model to build or load, and its configuration. The config flags default to None ("not given": the
    TSGVConfig default, or the loaded model's value); each is a shorthand for the same key in --config_overrides."""

    _argument_group_name = "model (the TSGVConfig flags: unset means the config's default or the loaded model's)"

    video_model: str | None = field(
        default=None,
        metadata={
            "help": "VideoMAE checkpoint (path or Hub name); a backbone shipped in the package "
            f"({', '.join(BUILTIN_BACKBONES)}: pretrained for the synthetic world by modeling_tsgv.pretraining); or "
            f"a random-init size ({', '.join(BACKBONE_SIZES)}). Default: {DEFAULT_VIDEO_MODEL}"
        },
    )
    text_model: str | None = field(
        default=None, metadata={"help": "Text encoder (path or Hub name). Default: offline MiniLM, else distilbert."}
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A saved tsgv model to start from (its own backbones and processor: not with --video_model / "
            "--text_model; config flags that would change its weights' shapes are refused)."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "TSGVConfig fields as key=value,key=value (e.g. head_dropout=0.2,loss_diou_weight=2,"
            "scada_bottleneck=32); the named flags below are shorthands. See `help(modeling_tsgv.TSGVConfig)`."
        },
    )
    backbone_tuning: str | None = field(default=None, metadata={"help": "scada (default) | frozen | partial | full"})
    scada_layers: list[int] | None = field(default=None, metadata={"help": "Blocks with adapters (default top half)."})
    scada_bottleneck: int | None = field(default=None, metadata={"help": "Adapter bottleneck width (default 64)."})
    scada_temporal_kernel: int | None = field(
        default=None, metadata={"help": "Adapter temporal conv kernel (odd; 1 = off; default 3)."}
    )
    partial_layers: list[int] | None = field(
        default=None, metadata={"help": "Blocks trained under --backbone_tuning partial (default top half)."}
    )
    train_text_encoder: bool | None = field(default=None, metadata={"help": "Also train the text encoder."})
    num_frames: int | None = field(default=None, metadata={"help": "Frames sampled over each whole video (32)."})
    clip_frames: int | None = field(
        default=None,
        metadata={
            "help": "Frames per backbone clip (default: 8 for random-init sizes, the checkpoint's for pretrained)."
        },
    )
    image_size: int | None = field(
        default=None,
        metadata={"help": "Frame size (default: 64 for random-init sizes, the checkpoint's for pretrained)."},
    )
    spatial_pooling: str | None = field(
        default=None, metadata={"help": "sentence (default: sentence-weighted tokens) | mean."}
    )
    head_hidden_size: int | None = field(default=None, metadata={"help": "Fusion / head width (256)."})
    head_layers: int | None = field(default=None, metadata={"help": "Fusion layers (2)."})
    max_spans: int | None = field(default=None, metadata={"help": "Spans returned per query (5)."})
    nms_threshold: str | None = field(
        default=None, metadata={"help": "Decoding NMS IoU threshold in (0, 1] (default 0.5), or none: no NMS."}
    )

    def __post_init__(self):
        if self.model_name_or_path:
            given = [flag for flag in ("video_model", "text_model") if getattr(self, flag) is not None]
            if given:
                raise ArgumentError(
                    f"--{given[0]} cannot apply with --model_name_or_path: the saved model has its own backbones"
                )
        elif self.video_model is None:
            self.video_model = DEFAULT_VIDEO_MODEL

    def config_overrides_dict(self) -> dict:
        """The TSGVConfig fields this command line sets: the named flags given, and --config_overrides (a key in
        both is refused). Raises `ArgumentError` naming the flag."""
        overrides = {name: getattr(self, name) for name in CONFIG_FLAGS if getattr(self, name) is not None}
        if "nms_threshold" in overrides:
            value = str(overrides["nms_threshold"]).strip().lower()
            try:
                overrides["nms_threshold"] = None if value in ("none", "off") else float(value)
            except ValueError as error:
                raise ArgumentError(f"--nms_threshold must be a number in (0, 1] or none, got {value!r}") from error
        if self.config_overrides:
            try:
                parsed = parse_config_overrides(self.config_overrides)
            except ValueError as error:
                raise ArgumentError(f"--config_overrides {self.config_overrides!r}: {error}") from error
            twice = sorted(set(parsed) & set(overrides))
            if twice:
                raise ArgumentError(f"--config_overrides sets {twice[0]}, which --{twice[0]} sets too: give it once")
            overrides.update(parsed)
        return overrides


@dataclass
class DataArguments:
    _argument_group_name = "data (annotations, videos, the built-in world, caches)"

    dataset: str = field(default="synthetic", metadata={"help": f"synthetic | {' | '.join(FORMATS)}"})
    train_file: str | None = field(default=None, metadata={"help": "Training annotations."})
    validation_file: str | None = field(
        default=None, metadata={"help": "Validation annotations: evaluation during training, best checkpoint."}
    )
    validation_split_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Without --validation_file: this share of the training videos (by video, drawn with --seed) is "
            "held out as the validation split that evaluation during training and --load_best_model_at_end use, so "
            "the test split never picks the model. 0: no validation split (then --eval_strategy no "
            "--load_best_model_at_end False). The built-in synthetic world has its own validation split."
        },
    )
    test_file: str | None = field(default=None, metadata={"help": "Test annotations."})
    video_dir: str | None = field(default=None, metadata={"help": "Folder of the videos (<video_id>.mp4 ...)."})
    durations: list[str] | None = field(
        default=None, metadata={"help": "Duration tables for formats without durations (Charades_v1_*.csv, JSON)."}
    )
    synthetic_preset: str = field(
        default="easy", metadata={"help": "Look of the synthetic world: easy (default job) | standard (harder)."}
    )
    synthetic_dir: str | None = field(
        default=None, metadata={"help": "Cache folder of the synthetic world (default: outputs/synthetic/<preset>)."}
    )
    synthetic_num_videos: int | None = field(
        default=None,
        metadata={
            "help": "Synthetic videos (all splits together), split 70/10/10/10. Default: the default world, "
            f"{' / '.join(map(str, DEFAULT_SPLIT_VIDEOS))} videos (train / val / test / test_novel)."
        },
    )
    synthetic_seed: int = field(default=0, metadata={"help": "Seed of the synthetic world."})
    synthetic_split_videos: list[int] | None = field(
        default=None,
        metadata={
            "help": "Videos per split (train val test test_novel), instead of --synthetic_num_videos; the same "
            "train and val counts give the same videos. Default (with neither flag): "
            f"{' '.join(map(str, DEFAULT_SPLIT_VIDEOS))}."
        },
    )
    max_queries_per_video: int | None = field(default=8, metadata={"help": "Queries sampled per video and step."})
    negatives_per_video: int = field(
        default=1,
        metadata={
            "help": "Negative queries per video and step for the relevance head (sentences of the batch's other "
            "videos, labelled absent); 0 trains relevance only from annotated absent queries."
        },
    )
    sampling: str = field(default="video_centric", metadata={"help": "video_centric | query_centric batches."})
    decode_backend: str = field(default="auto", metadata={"help": "auto | decord | pyav | torchcodec"})
    max_train_videos: int | None = field(default=None, metadata={"help": "Use only the first N training videos."})
    max_eval_videos: int | None = field(default=None, metadata={"help": "Use only the first N videos of eval sets."})
    evaluate_only: bool = field(default=False, metadata={"help": "Skip training: evaluate --model_name_or_path."})
    calibrate_scores: bool = field(
        default=True,
        metadata={
            "help": "After training, fit the Platt scaling of span scores and relevance on the validation split "
            "scored as served (modeling_tsgv/calibration.py), saved in config.json, so that a score is a probability "
            "(--calibrate_scores false: the raw sigmoids)."
        },
    )
    cache_video_states: str = field(
        default="auto",
        metadata={
            "help": "auto | yes | no: decode (and encode) each training / validation video once and train on the "
            "cached query-independent backbone states when the blocks below the first adapter are frozen (scada, "
            "frozen; training states in bfloat16, validation in float32), else on the cached frames (full, partial; "
            "float16). auto: when the cache fits --cache_video_states_max_gb (states: not with DeepSpeed). One copy "
            "per machine, shared by its processes."
        },
    )
    cache_video_states_max_gb: float = field(
        default=4.0, metadata={"help": "Memory cap (per machine) of the caches for --cache_video_states auto."}
    )
    features_dir: str | None = field(
        default=None,
        metadata={
            "help": "Keep the frozen backbone states (--backbone_tuning frozen: features of the whole backbone; "
            "scada: below the first adapter) of the training / validation videos in this folder, per video, as "
            "safetensors keyed by the weights, frames and sampling: a later run on the same videos reads them "
            "instead of decoding and encoding (extract once, train many heads)."
        },
    )
    prepared_dir: str | None = field(
        default=None,
        metadata={
            "help": "A store made by `python -m modeling_tsgv.prepare`: training and validation frames are read "
            "from it (JPEG frames on a time grid at the model's size: no video decoding); videos it lacks, or whose "
            "file changed since, are decoded from their files (counted in the log). Test splits are scored from "
            "the files, as served."
        },
    )
    video_state_variants: int = field(
        default=2, metadata={"help": "Jittered frame samplings cached per training video (one is drawn per epoch)."}
    )

    def __post_init__(self):
        if self.dataset != "synthetic" and self.dataset not in FORMATS:
            raise ArgumentError(f"--dataset must be 'synthetic' or one of {FORMATS}, got {self.dataset!r}")
        if self.dataset != "synthetic" and self.train_file is None and self.test_file is None:
            raise ArgumentError(f"--dataset {self.dataset} needs --train_file and/or --test_file")
        if self.sampling not in ("video_centric", "query_centric"):
            raise ArgumentError(f"--sampling must be video_centric or query_centric, got {self.sampling!r}")
        if self.cache_video_states not in ("auto", "yes", "no"):
            raise ArgumentError(f"--cache_video_states must be auto, yes or no, got {self.cache_video_states!r}")
        if self.video_state_variants < 1:
            raise ArgumentError(f"--video_state_variants must be >= 1, got {self.video_state_variants}")
        if self.synthetic_num_videos is not None and self.synthetic_split_videos is not None:
            raise ArgumentError("give --synthetic_num_videos or --synthetic_split_videos, not both")
        if self.synthetic_num_videos is None and self.synthetic_split_videos is None:
            self.synthetic_split_videos = list(DEFAULT_SPLIT_VIDEOS)
        if not 0 <= self.validation_split_fraction < 1:
            raise ArgumentError(
                f"--validation_split_fraction must be in [0, 1) (a share of the training videos), got "
                f"{self.validation_split_fraction}"
            )
        from modeling_tsgv.synthetic import PRESETS

        if self.synthetic_preset not in PRESETS:
            raise ArgumentError(
                f"--synthetic_preset must be one of {', '.join(PRESETS)}, got {self.synthetic_preset!r}"
            )
        if self.synthetic_dir is None:
            self.synthetic_dir = os.path.join("outputs", "synthetic", self.synthetic_preset)


def recipe_help(which: str) -> str:
    """`trainer.LR_RECIPES` in words for --help: "partial 0.3, full 0.1" (`which`: "multiplier" or "layer decay")."""
    index = 0 if which == "multiplier" else 1
    return ", ".join(f"{mode} {recipe[index]:g}" for mode, recipe in LR_RECIPES.items())


@dataclass
class GroundingTrainingArguments(TrainingArguments):
    """TrainingArguments with defaults for the default job, and how a run treats bad samples and non-finite steps;
    every Trainer option stays available."""

    _argument_group_name = "training (tsgv's)"

    max_bad_sample_fraction: float = field(
        default=0.05,
        metadata={
            "help": "Training videos that fail to decode are skipped and listed in skipped_videos.json; the run stops "
            "when more than this share of them has failed."
        },
    )
    max_nonfinite_steps: int = field(
        default=5, metadata={"help": "Steps with a non-finite loss or gradient are skipped; this many in a row stop."}
    )
    backbone_lr_multiplier: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the pretrained parts (video backbone blocks, a trained text encoder) as a "
            "multiple of --learning_rate; the adapters, pooling and head keep --learning_rate. Default: per tuning "
            f"mode, the study's pick ({recipe_help('multiplier')}; 1 otherwise)."
        },
    )
    layer_decay: float | None = field(
        default=None,
        metadata={
            "help": "Layer-wise learning-rate decay of the video backbone (BEiT / VideoMAE fine-tuning): block i of L "
            "gets multiplier x decay^(L - i), the embeddings decay^(L + 1); 1: none. Default: per tuning mode "
            f"({recipe_help('layer decay')}; 1 otherwise)."
        },
    )

    output_dir: str | None = field(default="outputs/tsgv-synthetic", metadata={"help": "Where to save everything."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Must stay False: frames decode lazily."})
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={
            "help": "False: every trainable parameter takes part in every step (and a skipped batch's zero "
            "loss relies on it); DDP then skips its search for unused ones."
        },
    )
    label_names: list[str] | None = field(default_factory=lambda: ["labels", "durations_s"])
    learning_rate: float = field(default=1e-3)
    num_train_epochs: float = field(default=6.0)
    per_device_train_batch_size: int = field(default=8)
    per_device_eval_batch_size: int = field(default=16)
    warmup_ratio: float = field(default=0.05)
    weight_decay: float = field(default=0.01)
    eval_strategy: transformers.IntervalStrategy | str = field(default="epoch")
    save_strategy: transformers.trainer_utils.SaveStrategy | str = field(default="epoch")
    save_total_limit: int | None = field(default=2)
    load_best_model_at_end: bool = field(default=True)
    metric_for_best_model: str | None = field(default="R1@0.5")
    greater_is_better: bool | None = field(default=True)
    logging_steps: float = field(default=10)
    logging_nan_inf_filter: bool = field(
        default=False,
        metadata={
            "help": "Off: a micro-batch without a finite loss already reports the mean finite loss, computed on the "
            "device; the Trainer's own filter reads every micro-batch's loss back to the host (a wait per step)."
        },
    )

    def __post_init__(self):
        if self.backbone_lr_multiplier is not None and not self.backbone_lr_multiplier > 0:
            raise ValueError(f"--backbone_lr_multiplier must be > 0, got {self.backbone_lr_multiplier}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"--layer_decay must be in (0, 1], got {self.layer_decay}")
        super().__post_init__()

    dataloader_num_workers: int = field(default=2)
    log_level: str = field(default="info", metadata={"help": "Main-process log level (replicas: log_level_replica)."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Replace a trained model (and the checkpoints of an earlier run) in --output_dir; without it such "
            "a folder is refused (use --resume_from_checkpoint last to continue its training instead)."
        },
    )


# ---------------------------------------------------------------------------------------------------------------------


def check_arguments(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """Refuse arguments that cannot work before anything is generated, trained or written.

    Raises `ArgumentError` naming the flag. The dataclasses' own checks run while parsing; these need several of them.
    """
    check_values(model_args, data_args, training_args)
    check_paths(model_args, data_args, training_args)
    check_model_config(model_args)


def check_values(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """Numbers in their ranges, names among their choices (`ArgumentError` naming the flag)."""

    def positive(name: str, value, allow_none: bool = True):
        if value is None and allow_none:
            return
        if value is None or value <= 0:
            raise ArgumentError(f"--{name} must be > 0, got {value}")

    training = not data_args.evaluate_only
    if training_args.n_gpu > 1:
        raise ArgumentError(
            f"{training_args.n_gpu} GPUs in one process (DataParallel) cannot split video-centric batches: start one "
            "process per GPU (torchrun --nproc_per_node N run_grounding.py ..., or accelerate launch), or set "
            "CUDA_VISIBLE_DEVICES to one GPU"
        )
    if training:
        if training_args.max_steps == 0 or training_args.max_steps < -1:
            raise ArgumentError(
                f"--max_steps must be > 0 (or -1: use --num_train_epochs), got {training_args.max_steps}"
            )
        if training_args.max_steps == -1 and not training_args.num_train_epochs > 0:
            raise ArgumentError(f"--num_train_epochs must be > 0, got {training_args.num_train_epochs}")
        positive("learning_rate", training_args.learning_rate, allow_none=False)
        positive("per_device_train_batch_size", training_args.per_device_train_batch_size, allow_none=False)
        positive("gradient_accumulation_steps", training_args.gradient_accumulation_steps, allow_none=False)
        if training_args.dataloader_persistent_workers and training_args.dataloader_num_workers > 0:
            raise ArgumentError(
                "--dataloader_persistent_workers would keep each DataLoader worker's copy of the epoch-0 frame "
                "jitter, query sampling and cached variants for the whole run: leave it off"
            )
    positive("per_device_eval_batch_size", training_args.per_device_eval_batch_size, allow_none=False)
    for name in ("max_queries_per_video", "max_train_videos", "max_eval_videos"):
        positive(name, getattr(data_args, name))
    split_videos = data_args.synthetic_split_videos
    if split_videos is not None and (len(split_videos) != 4 or min(split_videos) < 0 or min(split_videos[:2]) < 1):
        raise ArgumentError(
            f"--synthetic_split_videos needs 4 counts (train val test test_novel; train and val >= 1), got {split_videos}"
        )
    if data_args.negatives_per_video < 0:
        raise ArgumentError(f"--negatives_per_video must be >= 0, got {data_args.negatives_per_video}")
    holds_out = data_args.dataset != "synthetic" and not data_args.validation_file and data_args.train_file
    if training and holds_out and data_args.validation_split_fraction == 0 and training_args.eval_strategy != "no":
        raise ArgumentError(
            "--validation_split_fraction 0 without --validation_file leaves no validation split, and evaluating on "
            "the test split during training would let it pick the model: give a --validation_file or a fraction "
            "> 0, or pass --eval_strategy no --load_best_model_at_end False"
        )
    if data_args.features_dir and (
        model_args.backbone_tuning in ("full", "partial")
        or data_args.cache_video_states == "no"
        or data_args.sampling == "query_centric"
    ):
        raise ArgumentError(
            f"--features_dir {data_args.features_dir} keeps frozen backbone states per video: it needs --backbone_tuning "
            "frozen or scada, video-centric batches and video-state caching (not --cache_video_states no)"
        )
    if data_args.features_dir and os.path.exists(data_args.features_dir) and not os.path.isdir(data_args.features_dir):
        raise ArgumentError(f"--features_dir {data_args.features_dir} is a file, not a folder")
    if data_args.prepared_dir and not os.path.isfile(os.path.join(data_args.prepared_dir, "prepared.json")):
        raise ArgumentError(
            f"--prepared_dir {data_args.prepared_dir}: no prepared.json, so not a store made by "
            "`python -m modeling_tsgv.prepare`"
        )
    if data_args.decode_backend not in BACKENDS:
        raise ArgumentError(f"--decode_backend must be one of {', '.join(BACKENDS)}, got {data_args.decode_backend!r}")
    if not 0 <= training_args.max_bad_sample_fraction <= 1:
        raise ArgumentError(
            f"--max_bad_sample_fraction must be in [0, 1], got {training_args.max_bad_sample_fraction}"
        )
    positive("max_nonfinite_steps", training_args.max_nonfinite_steps, allow_none=False)
    if data_args.synthetic_num_videos is not None and data_args.synthetic_num_videos < 4:
        raise ArgumentError(
            f"--synthetic_num_videos must be >= 4 (one per split), got {data_args.synthetic_num_videos}"
        )


def check_model_config(model_args: ModelArguments) -> None:
    """The model configuration the flags ask for is valid — checked by TSGVConfig itself, on the backbone's config
    (a built-in backbone, a random-init size or a local folder; a Hub name is checked when it loads) or on the saved
    model's config. Raises `ArgumentError` naming the flag."""
    overrides = model_args.config_overrides_dict()
    try:
        if model_args.model_name_or_path:
            if os.path.isdir(model_args.model_name_or_path):
                config_with_overrides(TSGVConfig.from_pretrained(model_args.model_name_or_path), overrides)
            return
        backbone = backbone_config(model_args, overrides)
        if backbone is not None:
            TSGVConfig(backbone_config=backbone, **overrides)
    except ValueError as error:
        raise config_error(error, model_args) from error


def config_error(error: ValueError, model_args: ModelArguments) -> ArgumentError:
    """A TSGVConfig validation error as an `ArgumentError` that names the flag the user set: of the fields a
    `ConfigFieldError` is about (the one it is about first: `--clip_frames 12` breaks num_frames' rule), the first
    one this command line sets, by its named flag or by --config_overrides; any other error as its message."""
    message = str(error).strip().splitlines()[0]
    named = {name for name in CONFIG_FLAGS if getattr(model_args, name) is not None}
    from_overrides = set(parse_config_overrides(model_args.config_overrides)) if model_args.config_overrides else set()
    given = [name for name in getattr(error, "fields", ()) if name in named | from_overrides]
    if not given:
        return ArgumentError(message)
    flag = given[0]
    if flag in from_overrides:
        return ArgumentError(f"--config_overrides {message}")
    return ArgumentError(f"--{message}" if message.startswith(flag) else f"--{flag}: {message}")


def backbone_config(model_args: ModelArguments, overrides: dict):
    """The VideoMAE config the model will be built on, without loading weights: a random-init size's, a built-in
    backbone's or a local folder's; None for a Hub name (not fetched during argument checking)."""
    name = model_args.video_model
    if name in BACKBONE_SIZES:
        return random_backbone_config(name, overrides.get("image_size") or 64, overrides.get("clip_frames") or 8)
    path = builtin_backbone_path(name) if name in BUILTIN_BACKBONES else name
    if not os.path.isdir(path):
        return None
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ArgumentError(f"--video_model {name}: {str(error).strip().splitlines()[0]}") from error


def check_paths(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """Model folders / Hub names, the output folder (`check_output_dir`), annotation files and the video folder are
    what the flags say (`ArgumentError`)."""
    for flag in ("video_model", "text_model", "model_name_or_path"):
        name = getattr(model_args, flag)
        if flag == "video_model" and (name in BACKBONE_SIZES or name in BUILTIN_BACKBONES):
            continue
        if name is None or os.path.isdir(name):
            continue
        if os.path.exists(name):
            raise ArgumentError(f"--{flag} {name}: a file, expected a model folder")
        # every VideoMAE checkpoint on the Hub has an owner ("MCG-NJU/videomae-base"): a bare word is a mistyped size
        if not is_hub_id(name, owner_required=flag == "video_model"):
            sizes = (
                f", a built-in backbone ({', '.join(BUILTIN_BACKBONES)}) or a random-init size "
                f"({', '.join(BACKBONE_SIZES)})"
                if flag == "video_model"
                else ""
            )
            raise ArgumentError(f"--{flag} {name}: no such folder, and not a Hub model name{sizes}")
    check_output_dir(training_args)
    if model_args.model_name_or_path and os.path.isdir(model_args.model_name_or_path):
        try:
            check_model_folder(model_args.model_name_or_path)
        except ModelFolderError as error:
            raise ArgumentError(f"--model_name_or_path {error}") from error
    if data_args.evaluate_only and not model_args.model_name_or_path:
        raise ArgumentError("--evaluate_only needs --model_name_or_path (the trained model to evaluate)")
    for flag in ("train_file", "validation_file", "test_file"):
        path = getattr(data_args, flag)
        if path is not None and not os.path.isfile(path):
            raise ArgumentError(f"--{flag} {path}: no such file")
    if data_args.video_dir is not None and not os.path.isdir(data_args.video_dir):
        raise ArgumentError(f"--video_dir {data_args.video_dir}: no such folder")
    for path in data_args.durations or []:
        if not os.path.isfile(path):
            raise ArgumentError(f"--durations {path}: no such file")


def check_output_dir(training_args) -> None:
    """`run_folder.check_output_dir`, its refusals as `ArgumentError`."""
    try:
        run_folder.check_output_dir(training_args)
    except OutputFolderError as error:
        raise ArgumentError(str(error)) from error


# ---------------------------------------------------------------------------------------------------------------------


def resolve_annotation_files(data_args: DataArguments) -> dict:
    """split -> (path, format, video_dir, durations) for the chosen dataset; builds the synthetic world if needed."""
    if data_args.dataset == "synthetic":
        from modeling_tsgv.synthetic import generate, with_absent_queries

        generate(
            data_args.synthetic_dir,
            seed=data_args.synthetic_seed,
            preset=data_args.synthetic_preset,
            **synthetic_sizes(data_args),
        )
        folder = os.path.join(data_args.synthetic_dir, "annotations")
        splits = {s: os.path.join(folder, f"{s}.jsonl") for s in ("train", "val", "test", "test_novel")}
        for split in ("test", "test_novel"):  # one absent query per video besides the present ones (relevance)
            if os.path.isfile(splits[split]):
                splits[split] = str(with_absent_queries(splits[split], data_args.synthetic_seed))
        return {s: (p, "jsonl", data_args.synthetic_dir, None) for s, p in splits.items()}
    files = {"train": data_args.train_file, "val": data_args.validation_file, "test": data_args.test_file}
    return {s: (p, data_args.dataset, data_args.video_dir, data_args.durations) for s, p in files.items() if p}


def synthetic_sizes(data_args: DataArguments) -> dict:
    """`synthetic.generate`'s size arguments: `num_videos` (split 70/10/10/10) for --synthetic_num_videos, else
    `split_videos` (--synthetic_split_videos, which `DataArguments` sets to `DEFAULT_SPLIT_VIDEOS` without either)."""
    if data_args.synthetic_num_videos is not None:
        return {"num_videos": data_args.synthetic_num_videos}
    return {"split_videos": data_args.synthetic_split_videos}


def load_splits(data_args: DataArguments, seed: int) -> tuple[dict, str | None, str]:
    """Read every split (one summary log line per file); without a validation file, hold out
    --validation_split_fraction of the training videos as "val" (`hold_out_validation`). Returns
    ({split: Dataset}, the validation split's name or None, how the validation split was made, in words)."""
    splits = {}
    for split, (path, fmt, video_dir, durations) in resolve_annotation_files(data_args).items():
        rows, stats = read_annotations(path, fmt, video_dir=video_dir, durations=durations)
        limit = data_args.max_train_videos if split == "train" else data_args.max_eval_videos
        rows = rows[:limit] if limit else rows
        # read_annotations has logged its one-line summary of the file
        splits[split] = rows_to_dataset(rows)
    if "val" in splits:
        where = "the synthetic world's own" if data_args.dataset == "synthetic" else data_args.validation_file
        return splits, "val", f"{where} ({len(splits['val']):,d} videos)"
    if "train" not in splits or data_args.evaluate_only or data_args.validation_split_fraction == 0:
        return splits, None, "none"
    return (splits, "val", hold_out_validation(splits, data_args.validation_split_fraction, seed, data_args))


def hold_out_validation(splits: dict, fraction: float, seed: int, data_args: DataArguments) -> str:
    """Move `fraction` of the training videos (by video: rows are videos; drawn with `seed` by
    `Dataset.train_test_split`) into `splits["val"]`; logs and returns what was done, in words."""
    train = splits["train"]
    try:
        parts = train.train_test_split(test_size=fraction, seed=seed)
    except ValueError as error:  # too few videos to hold any out
        raise ArgumentError(
            f"--validation_split_fraction {fraction:g}: cannot hold out validation videos from the {len(train)} "
            f"training videos of {data_args.train_file} ({str(error).splitlines()[0]}); give a --validation_file"
        ) from error
    splits["train"], splits["val"] = parts["train"], parts["test"]
    queries = sum(len(sentences) for sentences in splits["val"]["sentences"])
    description = (
        f"held out from {os.path.basename(data_args.train_file)}: {len(splits['val']):,d} of {len(train):,d} videos "
        f"({queries:,d} queries; fraction {fraction:g}, seed {seed})"
    )
    logger.info(f"validation split {description}; the test split is used only after training")
    return description


def check_validation_labels(splits: dict, eval_split: str, data_args, training_args) -> None:
    """Evaluation during training needs labelled moments in the validation split (annotation files of hidden test
    sets have none): without them every metric is NaN and no checkpoint can be the best. Raises `ArgumentError`."""
    training = "train" in splits and not data_args.evaluate_only
    if not training or training_args.eval_strategy == "no" or eval_split not in splits:
        return
    if not any(query for spans in splits[eval_split].with_format(None)["spans_s"] for query in spans):
        raise ArgumentError(
            f"the validation split ({eval_split}) has no labelled moments, so evaluation during training would "
            "measure nothing and could not pick a best checkpoint: pass a --validation_file with moments, or "
            "--eval_strategy no --load_best_model_at_end False"
        )


def data_defaults(splits: dict) -> dict:
    """TSGVConfig fields of a new model that the run decides: a relevance head (is the moment in the video at all,
    trained with negative queries), and a saliency head (highlight detection) when the training annotations rate
    clips (QVHighlights' saliency_scores); `--config_overrides relevance_head=False,saliency_head=False` say
    otherwise."""
    defaults = {"relevance_head": True}
    if "train" in splits and any(any(q) for q in splits["train"]["saliency_s"]):
        logger.info("the training annotations rate clips (saliency): the model gets a saliency head")
        defaults["saliency_head"] = True
    return defaults


def build_model(model_args: ModelArguments, defaults: dict | None = None) -> TSGVForGrounding:
    """A tsgv model from a saved tsgv folder (its config updated by the flags that can apply to it), from a pretrained
    VideoMAE (a path, a Hub name or a backbone shipped in the package) + text encoder, or from a random-init size;
    the config flags and --config_overrides applied, over `defaults` (fields the data decides, for a new model)."""
    overrides = model_args.config_overrides_dict()
    if not model_args.model_name_or_path:
        overrides = {**(defaults or {}), **overrides}
    try:
        if model_args.model_name_or_path:
            config = config_with_overrides(TSGVConfig.from_pretrained(model_args.model_name_or_path), overrides)
            return TSGVForGrounding.from_pretrained(model_args.model_name_or_path, config=config)
        text = model_args.text_model or default_text_encoder_path()
        video = model_args.video_model
        if video in BACKBONE_SIZES:
            # `_from_config` builds under DeepSpeed ZeRO-3's zero.Init when --deepspeed is set (what ViT-g needs)
            video = VideoMAEModel._from_config(backbone_config(model_args, overrides))
        elif video in BUILTIN_BACKBONES:
            video = builtin_backbone_path(video)
        return TSGVForGrounding.from_backbones(video=video, text=text, **overrides)
    except ValueError as error:
        if isinstance(error, ModelFolderError):
            raise
        raise config_error(error, model_args) from error


def load_processor(model_args: ModelArguments, model) -> TSGVProcessor:
    """The processor saved with --model_name_or_path (`AutoProcessor`, checked against the model), else one built
    for the text encoder and the model's frame size. Raises `ArgumentError` when the saved one cannot feed the
    model."""
    path = model_args.model_name_or_path
    if not path:
        text_source = model_args.text_model or default_text_encoder_path()
        return TSGVProcessor.from_text_encoder(text_source, image_size=model.config.image_size)
    try:
        processor = AutoProcessor.from_pretrained(path)
        check_processor_matches(model.config, processor, path)
    except (OSError, ValueError) as error:
        raise ArgumentError(f"--model_name_or_path {path}: {str(error).strip().splitlines()[0]}") from error
    return processor


def use_video_state_cache(model, splits: dict, eval_split: str, data_args, training_args) -> bool:
    """Whether to train on cached encode_video states — or cached frames when encode_video trains (see
    --cache_video_states); logs the reason when not."""
    frames = not can_cache(model)
    if data_args.features_dir and (frames or data_args.cache_video_states == "no"):
        raise ArgumentError(
            f"--features_dir {data_args.features_dir} keeps frozen backbone states: it needs --backbone_tuning frozen "
            "or scada (a frozen encode_video) and video-state caching (not --cache_video_states no)"
        )
    if data_args.cache_video_states == "no":
        return False
    reasons = []
    if training_args.deepspeed and not frames:
        reasons.append("DeepSpeed shards the backbone")
    if data_args.sampling == "query_centric":
        reasons.append("query-centric batches decode per query by design")
    num_eval = len(splits.get(eval_split, []))
    size_gb = cache_bytes(model, len(splits["train"]), num_eval, data_args.video_state_variants) / 2**30
    too_big = data_args.cache_video_states == "auto" and not data_args.features_dir
    if too_big and size_gb > data_args.cache_video_states_max_gb:
        reasons.append(f"it would take {size_gb:.1f} GB per machine (> --cache_video_states_max_gb)")

    if reasons and (data_args.cache_video_states == "yes" or data_args.features_dir):
        flag = "--features_dir" if data_args.features_dir else "--cache_video_states yes"
        raise ArgumentError(f"{flag} is not possible: " + "; ".join(reasons))
    if reasons:
        logger.info("not caching video states: " + "; ".join(reasons))
    return not reasons


class _DropLines(logging.Filter):
    """Drops log records whose message contains one of `phrases`."""

    def __init__(self, *phrases):
        super().__init__()
        self.phrases = phrases

    def filter(self, record):
        return not any(phrase in record.getMessage() for phrase in self.phrases)


def quiet_transformers(level: int) -> None:
    """transformers logs at `level` only for the Trainer (its run summary, evaluation and checkpoint lines); its
    other modules (config dumps, "weights saved", tokenizer files...) only warnings and errors, and the Trainer's
    invitation to share the model is dropped."""
    transformers.utils.logging.set_verbosity(max(level, logging.WARNING))
    trainer_logger = transformers.utils.logging.get_logger("transformers.trainer")
    trainer_logger.setLevel(level)
    if not any(isinstance(f, _DropLines) for f in trainer_logger.filters):
        trainer_logger.addFilter(_DropLines("Do not forget to share your model", "Saving Trainer.data_collator"))


@dataclass
class GroundingRun:
    """What `setup` builds for a run: its arguments, splits, model, processor and Trainer (the model already on
    the training device), and the caches filled there."""

    model_args: ModelArguments
    data_args: DataArguments
    training_args: TrainingArguments
    splits: dict
    eval_split: str | None
    validation: str
    eval_splits: list[str]
    model: TSGVForGrounding
    processor: TSGVProcessor
    trainer: TSGVTrainer
    transforms: dict
    caches: list
    store: FeatureStore | None


def setup(argv: list[str], callbacks=None) -> GroundingRun:
    """Everything before `trainer.train()`, in the order a GPU run needs: arguments, splits, model, processor,
    collators, then the Trainer (which places the model on the training device), then the caches, computed on that
    device (`fill_caches`). `callbacks`: extra `TrainerCallback`s."""
    model_args, data_args, training_args = parse_arguments(argv)
    with training_args.main_process_first(desc="reading annotations / generating the synthetic world"):
        splits, eval_split, validation = load_splits(data_args, training_args.seed)
    eval_splits = [s for s in ("test", "test_novel") if s in splits]
    check_validation_labels(splits, eval_split, data_args, training_args)
    model = build_model(model_args, data_defaults(splits))
    logger.info(model.trainable_parameters_report())
    training_args.backbone_lr_multiplier, training_args.layer_decay = lr_recipe(  # the mode's, where not given
        model.config.backbone_tuning, training_args.backbone_lr_multiplier, training_args.layer_decay
    )
    if "train" in splits:
        # the inference pipeline grounds videos up to this long in one pass, longer ones in windows this long
        model.config.inference_window_s = float(np.ceil(np.percentile(splits["train"]["duration_s"], 95)))
    processor = load_processor(model_args, model)
    train_collator, eval_collator, transforms, reading_dir = prepare_data(
        splits, model, processor, data_args, training_args
    )
    epochs = EpochCallback(train_collator, *transforms.values())  # the caches join it once they are built
    trainer = TSGVTrainer(
        model=model,
        args=training_args,
        train_dataset=splits.get("train"),
        eval_dataset=splits.get(eval_split),
        data_collator=train_collator,
        eval_data_collator=eval_collator,
        compute_metrics=compute_grounding_metrics,
        callbacks=[epochs, DropReplacedCheckpoints()] + list(callbacks or []),
        max_bad_sample_fraction=training_args.max_bad_sample_fraction,
        max_nonfinite_steps=training_args.max_nonfinite_steps,
        reading_dir=reading_dir,
        processing_class=processor,  # checkpoints carry the processor too
    )
    quiet_transformers(training_args.get_process_log_level())  # the Trainer has just set transformers' verbosity
    prepared = transforms["train"].prepared if "train" in transforms else None
    caches, store = fill_caches(trainer, splits, eval_split, processor, data_args, prepared)
    epochs.targets += tuple(caches)
    return GroundingRun(
        model_args, data_args, training_args, splits, eval_split, validation, eval_splits, model, processor, trainer,
        transforms, caches, store,
    )  # fmt: skip


def main(argv=None, callbacks=None):
    """Parse arguments (`argv`, default sys.argv[1:]), train, evaluate, save; returns the metrics dict.
    `callbacks`: extra `TrainerCallback`s."""
    argv = sys.argv[1:] if argv is None else argv
    run = setup(argv, callbacks)
    trainer, model, training_args = run.trainer, run.model, run.training_args

    # ---- training --------------------------------------------------------------------------------------------
    metrics = {}
    start = time.time()
    if "train" in run.splits and not run.data_args.evaluate_only:
        try:
            result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        except KeyboardInterrupt:
            raise RunInterrupted(training_args.output_dir, argv) from None
        metrics.update(result.metrics)
        metrics.update(training_measures(trainer, model))
        if run.store is not None:
            metrics.update(
                features_read_videos=run.store.read_videos, features_extracted_videos=run.store.extracted_videos
            )
        trainer.save_model()
        if trainer.is_world_process_zero():
            run.processor.save_pretrained(training_args.output_dir)
        DropReplacedCheckpoints.drop(training_args)

    # ---- calibration, evaluation and report ------------------------------------------------------------------
    metrics["validation_split"] = run.validation
    metrics.update(calibrate_scores(run))
    metrics.update(evaluate_splits(run))
    metrics["wall_time_s"] = time.time() - start
    arguments = (run.model_args, run.data_args, training_args)
    return write_run_report(trainer, metrics, run.splits, run.eval_splits, run.eval_split, model, arguments, argv)


def parse_arguments(argv: list[str]):
    """(ModelArguments, DataArguments, GroundingTrainingArguments) from the command line or one .json / .yaml file;
    sets up logging and checks them (`check_arguments`) before anything is generated or written. Raises
    `ArgumentError` (one line) for anything wrong."""
    parser = GroundingArgumentParser((ModelArguments, DataArguments, GroundingTrainingArguments))
    try:
        if len(argv) == 1 and argv[0].endswith(".json"):
            model_args, data_args, training_args = parser.parse_json_file(os.path.abspath(argv[0]))
        elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
            model_args, data_args, training_args = parser.parse_yaml_file(os.path.abspath(argv[0]))
        else:
            model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ArgumentError:
        raise
    except (ValueError, TypeError) as error:  # TrainingArguments' own checks, a bad file: one line like the others
        raise ArgumentError(str(error).strip().splitlines()[0]) from error
    if training_args.remove_unused_columns:
        raise ArgumentError("--remove_unused_columns must stay False: frames are decoded in a dataset transform")

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    level = training_args.get_process_log_level()
    for name in (__name__, "modeling_tsgv", "modeling_tsgv.annotations", "modeling_tsgv.data"):
        logging.getLogger(name).setLevel(level)
    quiet_transformers(level)
    if not torch.cuda.is_available():  # DeepSpeed would warn that it found no accelerator: it runs on the CPU here
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    datasets.utils.logging.set_verbosity(level)
    check_arguments(model_args, data_args, training_args)  # before anything is generated or written
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin for; torch warns in every DataLoader
    set_seed(training_args.seed)
    if training_args.deepspeed and training_args.use_cpu:
        # on CPU accelerate sets up torch.distributed but not deepspeed.comm, which zero.Init needs
        import deepspeed

        _ = training_args.device
        deepspeed.init_distributed(dist_backend="gloo")
    return model_args, data_args, training_args


def prepare_data(splits: dict, model, processor, data_args, training_args):
    """Collators and per-split frame transforms (set on the datasets; the training split exploded into one row per
    query under `--sampling query_centric`). Returns (train collator, evaluation collator, {split: FrameTransform},
    the folder where DataLoader workers note the file they decode)."""
    num_moments = max(
        [len(q) for ds in splits.values() for spans in ds["spans_s"] for q in spans] + [1]
    )  # fixed label width, so evaluation batches concatenate
    train_collator_cls = QueryCentricCollator if data_args.sampling == "query_centric" else VideoCentricCollator
    seed = training_args.seed
    negatives = data_args.negatives_per_video if model.config.relevance_head else 0  # none to learn from otherwise
    train_collator = train_collator_cls(
        processor, data_args.max_queries_per_video, seed=seed, report=True, negatives_per_video=negatives
    )
    eval_collator = VideoCentricCollator(processor, None, num_moments=num_moments, report=True, drop_failed=False)
    reading_dir = tempfile.mkdtemp(prefix="tsgv-reading-")  # which file each DataLoader worker is decoding
    atexit.register(shutil.rmtree, reading_dir, True)
    prepared = open_prepared(data_args.prepared_dir, splits, model.config.image_size)
    transforms = {}
    for split, dataset in splits.items():
        spacing = "random" if split == "train" else "uniform"  # frames jittered in training
        if split == "train" and data_args.sampling == "query_centric":
            dataset = splits[split] = explode_queries(dataset)
        transforms[split] = FrameTransform(
            processor.video_processor,
            model.config.num_frames,
            spacing,
            data_args.decode_backend,
            seed=seed,
            reading_dir=reading_dir,
            prepared=prepared if split in ("train", "val") else None,  # test splits: the files, as served
            uint8=True,  # frames cross the DataLoader as uint8; TSGVTrainer normalises them on the device
        )
        dataset.set_transform(transforms[split])
    return train_collator, eval_collator, transforms, reading_dir


def open_prepared(folder: str | None, splits: dict, image_size: int) -> PreparedStore | None:
    """The `--prepared_dir` store (None without the flag), with one log line saying how many training / validation
    videos it holds as their files are now (the others are decoded from their files)."""
    if folder is None:
        return None
    store = PreparedStore(folder)
    rows = [row for split in ("train", "val") if split in splits for row in splits[split].with_format(None)]
    current = sum(store.is_current(str(row["video_id"]), str(row["video_path"])) for row in rows)
    logger.info(
        f"prepared store {folder}: {current:,d} of {len(rows):,d} training / validation videos read from it, "
        f"{len(rows) - current:,d} decoded from their files (not in it, or changed since)"
    )
    if store.settings["short_side"] < image_size:
        logger.warning(
            f"{folder} holds frames with a short side of {store.settings['short_side']} px, fewer than the model's "
            f"{image_size}: they are upscaled"
        )
    return store


def training_device(trainer) -> torch.device:
    """The device the run's caches are computed on: where the Trainer placed the model; when it postpones the
    placement (e.g. `--bf16_full_eval`) the model is moved there first. Under DeepSpeed / FSDP the engine places
    the model when training starts: the model's current device."""
    model, args = trainer.model, trainer.args
    if not (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled) and not trainer.place_model_on_device:
        model.to(args.device)
    return next(model.parameters()).device


def fill_caches(
    trainer, splits: dict, eval_split, processor, data_args, prepared=None
) -> tuple[list, FeatureStore | None]:
    """Call after the Trainer has placed the model: the frozen text encoder's states of every sentence (a
    `SentenceStates` table the collators serve), and, when they fit, the frozen blocks' states of every training /
    validation video (`VideoStatesCache`, set as the splits' transforms), read from and saved to --features_dir
    when given, the frames read from the `prepared` store where it holds them. Both are computed on the training
    device (`training_device`). Returns (the video caches (they follow the epoch, for their jittered variants), the
    `FeatureStore` or None)."""
    model, training_args = trainer.model, trainer.args
    seed, caches, store = training_args.seed, [], None
    device = training_device(trainer)
    if not model.config.train_text_encoder and not training_args.deepspeed:
        collator = trainer.data_collator
        # every split's sentences, test too (the pipeline scores test without the table): the table's batches of
        # equal-length sentences, and so the states' last bits, depend on the whole set, and the published figures
        # of the default job come from this set (training only from train + val changed them: 78.97 -> 75.17)
        sentences = [s for dataset in splits.values() for row in dataset.with_format(None)["sentences"] for s in row]
        tokens = collator.tokenizer(sentences, truncation=True, max_length=collator.max_text_length)
        start_s = time.perf_counter()
        table = SentenceStates.encode(model.text_model, tokens["input_ids"])
        collator.text_states = trainer.eval_data_collator.text_states = table
        logger.info(
            f"text encoder states of {len(table):,d} distinct sentences computed on {device} in "
            f"{time.perf_counter() - start_s:.0f} s ({table.nbytes() / 2**20:,.0f} MB, served by the collators)"
        )
    if (
        "train" in splits
        and not data_args.evaluate_only
        and use_video_state_cache(model, splits, eval_split, data_args, training_args)
    ):
        store = FeatureStore(data_args.features_dir) if data_args.features_dir else None
        for split, train in (("train", True), (eval_split, False)):
            if split not in splits or (split == eval_split and split == "train"):
                continue

            def build(share, shares, split=split, train=train):  # this process's share of the split's videos
                rows = splits[split] if shares == 1 else splits[split].select(range(share, len(splits[split]), shares))
                return VideoStatesCache.build(
                    model,
                    rows,
                    processor.video_processor,
                    train=train,
                    variants=data_args.video_state_variants,
                    seed=seed,
                    backend=data_args.decode_backend,
                    batch_size=training_args.per_device_eval_batch_size,
                    num_workers=training_args.dataloader_num_workers,
                    dtype=cache_dtypes(model)[0 if train else 1],
                    store=store,
                    prepared=prepared,
                )

            folder = os.path.join(training_args.output_dir, f".video-states-{split}-{socket.gethostname()}")
            processes = local_processes(training_args.world_size)
            cache = shared_per_machine(build, folder, training_args.local_process_index, processes)
            splits[split].set_transform(cache.transform())
            caches.append(cache)
            if train:
                failed = [{"video_id": video_id, "error": error} for video_id, error in cache.failed.items()]
                fraction = training_args.max_bad_sample_fraction
                BadSampleBudgetError.check(len(failed), len(splits[split]), fraction, failed)
    return caches, store


def calibrate_scores(run: GroundingRun) -> dict:
    """After training (`--calibrate_scores`, a validation split with moments): fit the span-score and relevance
    calibrations on the validation split scored as served (`evaluation.calibrate_on_split`), save them in the output
    folder's config.json, and return their figures (`calibration_*`: the fitted [slope, intercept] and the
    in-sample ECE before / after, percent). Nothing when there is no training or no validation split."""
    data_args, training_args = run.data_args, run.training_args
    trained = "train" in run.splits and not data_args.evaluate_only
    if not (data_args.calibrate_scores and trained and run.eval_split in run.splits):
        return {}
    model = serving_model(run)
    rows = list(run.splits[run.eval_split].with_format(None))
    fit = calibrate_on_split(
        serving_pipeline(model, run.processor, training_args.device), rows, max(model.config.max_spans, 10),
        training_args.per_device_eval_batch_size, training_args.process_index, training_args.world_size,
        training_args.seed,
    )  # fmt: skip
    run.model.config.span_calibration = model.config.span_calibration  # the trained model and a loaded copy alike
    run.model.config.relevance_calibration = model.config.relevance_calibration
    if run.trainer.is_world_process_zero():
        model.config.save_pretrained(training_args.output_dir)
    run.trainer.accelerator.wait_for_everyone()  # a DeepSpeed run's evaluation loads the folder again
    logger.info(
        f"calibrated on {run.eval_split}: span scores ECE {fit['span_ECE_before']:.1f} -> {fit['span_ECE_after']:.1f}, "
        f"relevance ECE {fit['relevance_ECE_before']:.1f} -> {fit['relevance_ECE_after']:.1f} (in-sample, %)"
    )
    return {f"calibration_{key}": value for key, value in fit.items()} | {"calibration_split": run.eval_split}


def evaluate_splits(run: GroundingRun) -> dict:
    """Test metrics per evaluated split, scored as the model is served (`evaluation.score_as_served`: the grounding
    pipeline on each test video file, longer videos in windows), each process its share of the videos; failed
    videos / queries (counted as misses), binding; writes predictions_<split>.jsonl. Returns the metrics."""
    trainer, training_args = run.trainer, run.training_args
    if not run.eval_splits:
        return {}
    model = serving_model(run)
    pipe = serving_pipeline(model, run.processor, training_args.device)
    metrics = {}
    for split in run.eval_splits:
        rows = list(run.splits[split].with_format(None))
        records, failures = score_as_served(  # the top 10 at least: QVHighlights' mAP reads 10 windows per query
            pipe, rows, max(model.config.max_spans, 10), training_args.per_device_eval_batch_size,
            training_args.process_index, training_args.world_size,
        )  # fmt: skip
        trainer.failures.record(split, failures)
        records = gather_records(records, training_args.world_size)
        metrics.update(served_metrics(records, split, model.config.relevance_threshold))
        if not metrics[f"{split}_num_queries"]:
            logger.warning(f"[{split}] no query has a labelled moment: its metrics are NaN (predictions are written)")
        failed = {f["video_id"] for f in trainer.gathered_failures() if f["split"] == split}
        if failed:
            lost = sum(1 for record in records if str(record["video_id"]) in failed)
            metrics[f"{split}_failed_videos"], metrics[f"{split}_failed_queries"] = len(failed), lost
            logger.warning(
                f"[{split}] {len(failed)} video(s) failed to decode; their {lost} queries are counted as misses "
                f"(in every metric's denominator)"
            )
        if trainer.is_world_process_zero():
            write_predictions(os.path.join(training_args.output_dir, f"predictions_{split}.jsonl"), records)
    return metrics


def serving_model(run: GroundingRun) -> TSGVForGrounding:
    """The model the test splits are scored with: the trained one in memory (it is what was saved), in eval mode;
    under DeepSpeed the saved folder loaded on this process's device without the engine (ZeRO-3 holds only a
    shard of each weight in memory)."""
    model = run.trainer.model
    if not run.trainer.is_deepspeed_enabled:
        return model.eval()
    from transformers.integrations import set_hf_deepspeed_config, unset_hf_deepspeed_config

    folder = run.training_args.output_dir if not run.data_args.evaluate_only else run.model_args.model_name_or_path
    run.trainer.accelerator.wait_for_everyone()  # the main process has written the folder
    unset_hf_deepspeed_config()  # else from_pretrained would partition the copy again (zero.Init)
    try:
        model = TSGVForGrounding.from_pretrained(folder)
    finally:
        set_hf_deepspeed_config(run.training_args.hf_deepspeed_config)
    return model.to(run.training_args.device).eval()


def cli(argv=None, callbacks=None) -> int:
    """`python run_grounding.py`: `main`, with the ways a run stops without a bug said in one line on stderr (bad
    arguments: 2; the run's own stops, too many undecodable videos or non-finite steps: 1; Ctrl-C: 130, naming the
    newest checkpoint and the command that resumes it). Returns the exit status."""
    try:
        main(argv, callbacks)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every rank done, then the process group torn down before exit (left to the interpreter's exit, gloo
            # can abort a rank while another is still shutting down)
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
    except ArgumentError as error:
        print(f"run_grounding.py: error: {error}", file=sys.stderr)
        return 2
    except (BadSampleBudgetError, NonFiniteStepsError) as error:
        print(f"run_grounding.py: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(
            f"run_grounding.py: {interrupt if isinstance(interrupt, RunInterrupted) else 'interrupted'}",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli())
