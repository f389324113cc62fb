"""The arguments of `run_grounding.py` (and what they must satisfy before anything is generated, trained or
written): `ModelArguments` (which model, its TSGVConfig flags), `DataArguments` (annotations, videos, the built-in
world, caches) and `GroundingTrainingArguments` (the Trainer's, with the default job's defaults and tsgv's own).

Each dataclass checks its own fields while parsing; `check_arguments` checks what needs several of them. Every refusal
is an `ArgumentError` whose message names the flag; a model field's refusal comes from `TSGVConfig`'s own validation,
mapped to the flag the user set by the fields the `ConfigFieldError` names (`config_error`), not by its text.
"""

import os
from dataclasses import dataclass, field

import transformers
from transformers import AutoConfig, TrainingArguments

from . import run_folder
from .annotations import FORMATS
from .argparsing import ArgumentError
from .configuration_tsgv import (
    BACKBONE_SIZES,
    BUILTIN_BACKBONES,
    ModelFolderError,
    TSGVConfig,
    builtin_backbone_path,
    check_model_folder,
    config_with_overrides,
    is_hub_id,
    parse_config_overrides,
    random_backbone_config,
)
from .feature_store import features_dir_problem
from .prepare import store_problem
from .run_folder import OutputFolderError
from .splits import validation_problem
from .trainer import LR_RECIPES, trainer_settings_problem
from .video import BACKENDS

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
# 1,000-video world, with test splits of at least 1,500 queries each (2.9 per test video, 1.2 per test_novel video:
# 1,515 and 1,504 on the easy world; a binomial standard error of R1@0.5 near 1.3 points), so that the default job's
# figures resolve 2-3 points. test_novel's videos come last, so its size changes no other split's videos
DEFAULT_SPLIT_VIDEOS = (700, 100, 520, 1280)


@dataclass
class ModelArguments:
    """Which model to build or load, and its configuration. The config flags default to None ("not given": the
    TSGVConfig default, or the loaded model's value); each is a shorthand for the same key in --config_overrides."""

    _argument_group_name = "model (the TSGVConfig flags: unset means the config's default or the loaded model's)"

    video_model: str | None = field(
        default=None,
        metadata={
            "help": "VideoMAE checkpoint (path or Hub name); a backbone shipped in the package "
            f"({', '.join(BUILTIN_BACKBONES)}: pretrained for the synthetic world by modeling_tsgv.synthetic.pretraining); or "
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
        if self.dataset == "synthetic":  # the built-in world is imported only when it is used
            from .synthetic import PRESETS

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


def check_arguments(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """Refuse arguments that cannot work before anything is generated, trained or written.

    Raises `ArgumentError` naming the flag. The dataclasses' own checks run while parsing; these need several of them.
    """
    check_training_values(data_args, training_args)
    check_data_values(model_args, data_args, training_args)
    check_paths(model_args, data_args, training_args)
    check_model_config(model_args)


def check_positive(name: str, value, allow_none: bool = True) -> None:
    """`ArgumentError` naming --`name` unless `value` > 0 (or None, with `allow_none`)."""
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ArgumentError(f"--{name} must be > 0, got {value}")


def check_training_values(data_args: DataArguments, training_args) -> None:
    """The training flags' numbers in their ranges, and the Trainer settings `TSGVTrainer` refuses
    (`trainer.trainer_settings_problem`, its own rule) (`ArgumentError` naming the flag)."""
    training = not data_args.evaluate_only
    if training:
        if training_args.max_steps == 0 or training_args.max_steps < -1:
            raise ArgumentError(
                f"--max_steps must be > 0 (or -1: use --num_train_epochs), got {training_args.max_steps}"
            )
        if training_args.max_steps == -1 and not training_args.num_train_epochs > 0:
            raise ArgumentError(f"--num_train_epochs must be > 0, got {training_args.num_train_epochs}")
        check_positive("learning_rate", training_args.learning_rate, allow_none=False)
        check_positive("per_device_train_batch_size", training_args.per_device_train_batch_size, allow_none=False)
        check_positive("gradient_accumulation_steps", training_args.gradient_accumulation_steps, allow_none=False)
    check_positive("per_device_eval_batch_size", training_args.per_device_eval_batch_size, allow_none=False)
    budgets = (training_args.max_bad_sample_fraction, training_args.max_nonfinite_steps)
    problem = trainer_settings_problem(training_args, *budgets, training=training)  # the trainer's own rule
    if problem:
        raise ArgumentError(problem)


def check_data_values(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """The data flags' numbers in their ranges and names among their choices, and the folders they name what they
    must be (`ArgumentError` naming the flag). The rules owned elsewhere are asked there: the validation split's
    (`splits.validation_problem`), `--features_dir`'s (`feature_store.features_dir_problem`) and `--prepared_dir`'s
    (`prepare.store_problem`)."""
    for name in ("max_queries_per_video", "max_train_videos", "max_eval_videos"):
        check_positive(name, getattr(data_args, name))
    split_videos = data_args.synthetic_split_videos
    if split_videos is not None and (len(split_videos) != 4 or min(split_videos) < 0 or min(split_videos[:2]) < 1):
        raise ArgumentError(
            f"--synthetic_split_videos needs 4 counts (train val test test_novel; train and val >= 1), got {split_videos}"
        )
    if data_args.negatives_per_video < 0:
        raise ArgumentError(f"--negatives_per_video must be >= 0, got {data_args.negatives_per_video}")
    problem = validation_problem(data_args, training_args)  # the splits' own rule
    if problem:
        raise ArgumentError(problem)
    # the backbone's tuning as far as the flags say (a saved model's own mode is checked once it is loaded)
    backbone_trains = True if model_args.backbone_tuning in ("full", "partial") else None
    problem = features_dir_problem(data_args, backbone_trains)
    if problem:
        raise ArgumentError(problem)
    problem = store_problem(data_args.prepared_dir) if data_args.prepared_dir else None
    if problem:
        raise ArgumentError(f"--prepared_dir {problem}")
    if data_args.decode_backend not in BACKENDS:
        raise ArgumentError(f"--decode_backend must be one of {', '.join(BACKENDS)}, got {data_args.decode_backend!r}")
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


__all__ = [
    "ArgumentError",
    "ModelArguments",
    "DataArguments",
    "GroundingTrainingArguments",
    "check_arguments",
    "config_error",
    "backbone_config",
    "DEFAULT_SPLIT_VIDEOS",
]
