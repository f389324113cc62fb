"""TSGVConfig: the single source of truth for a tsgv grounding model (backbone, SCADA, text encoder, head, losses)."""

import copy
import dataclasses
import difflib
import json
import math
import os

import huggingface_hub
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers import AutoConfig, PreTrainedConfig, VideoMAEConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging

logger = logging.get_logger(__name__)

BACKBONE_TUNING_MODES = ("scada", "frozen", "partial", "full")
# keys save_pretrained writes beside the TSGVConfig fields
SAVED_KEYS = {
    "model_type",
    "transformers_version",
    "architectures",
    "auto_map",
    "custom_pipelines",
    "dtype",
    "torch_dtype",
    "use_cache",
}
PIPELINE_TASK = "temporal-sentence-grounding"
# config.json's entry that lets `pipeline(PIPELINE_TASK, model=folder, trust_remote_code=True)` find the pipeline
# class in the files saved beside the weights, where tsgv is not installed
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "pipeline_tsgv.TemporalSentenceGroundingPipeline",
        "pt": ["AutoModel"],
        "tf": [],
        "type": "multimodal",
    }
}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


# Random-init VideoMAE sizes: `run_grounding.py --video_model <name>`, the benchmarks and the tests build backbones of
# these shapes when no pretrained weights are at hand (VideoMAEConfig fields)
_SIZE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size")
BACKBONE_SIZES = {
    name: dict(zip(_SIZE_FIELDS, values))
    for name, values in {
        "tiny": (128, 4, 4, 512, 16),
        "vit-s": (384, 12, 6, 1536, 16),
        "vit-b": (768, 12, 12, 3072, 16),
        "vit-l": (1024, 24, 16, 4096, 16),
        "vit-g": (1408, 40, 16, 6144, 14),
    }.items()
}


# Pretrained backbones that ship inside the package (made by `python -m modeling_tsgv.synthetic.pretraining`, documented by the
# model card beside their weights): `run_grounding.py --video_model <name>` and `builtin_backbone_path(name)`.
# synthetic-tiny: stage 1 on dense per-token targets (colour, shape, coverage, action of every patch);
# synthetic-tiny-recognition: stage 1 as real checkpoints are made (masked reconstruction, then clip-level
# classification of what occurs: `--objective recognition`), a VideoMAEForVideoClassification folder;
# synthetic-tiny-recognition-20k: the same recipe with a classification phase 4 times longer (20,000 steps), the
# one whose clips' actions it recognises (held-out action clip mAP 0.34 against 0.17; docs/stage1_backbone.md).
BUILTIN_BACKBONES = {
    "synthetic-tiny": "checkpoints/videomae-tiny-synthetic",
    "synthetic-tiny-recognition": "checkpoints/videomae-tiny-synthetic-recognition",
    "synthetic-tiny-recognition-20k": "checkpoints/videomae-tiny-synthetic-recognition-20k",
}


def builtin_backbone_path(name: str) -> str:
    """The folder of a backbone shipped in the package (a `BUILTIN_BACKBONES` name): a VideoMAE checkpoint folder
    that `video_backbones.load_video_backbone` reads. Raises ValueError for an unknown name and FileNotFoundError
    when the installed package lacks it."""
    if name not in BUILTIN_BACKBONES:
        raise ValueError(f"unknown built-in backbone {name!r}; known: {', '.join(BUILTIN_BACKBONES)}")
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), BUILTIN_BACKBONES[name])
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        raise FileNotFoundError(f"{folder}: the built-in backbone {name!r} is missing from this installation")
    return folder


def random_backbone_config(size: str, image_size: int, clip_frames: int) -> VideoMAEConfig:
    """The VideoMAE config of `BACKBONE_SIZES[size]` for frames of `image_size` px and clips of `clip_frames` frames."""
    return VideoMAEConfig(**BACKBONE_SIZES[size], image_size=image_size, num_frames=clip_frames)


class TSGVConfig(PreTrainedConfig):
    r"""
    Configuration of [`TSGVForGrounding`]: a VideoMAE backbone trained end to end through sentence-conditioned
    adapters (SCADA), a Hugging Face text encoder, and an anchor-free grounding head.

    Args:
        backbone_config (`VideoMAEConfig` or `dict`, *optional*):
            The video backbone. Its `num_frames` is the clip length the backbone sees at once (`clip_frames`) and
            its `image_size` is the frame resolution. Defaults to a ViT-B VideoMAE.
        text_config (`PreTrainedConfig` or `dict`, *optional*):
            Any Hugging Face text encoder (BERT, DistilBERT, MiniLM, RoBERTa...). Defaults to a BERT config shaped like
            all-MiniLM-L6-v2 (6 layers, width 384), the offline default text encoder.
        backbone_tuning (`str`, *optional*, defaults to `"scada"`):
            What trains in the backbone: `"scada"` (frozen backbone + sentence-conditioned adapters), `"frozen"`
            (nothing; the query-independent baseline), `"partial"` (the blocks in `partial_layers`), `"full"` (all).
        scada_layers (`list[int]`, *optional*):
            Backbone block indices that get a SCADA adapter (used only with `backbone_tuning="scada"`). Defaults to
            the top half of the blocks. Blocks below the lowest index run once per video, not once per query.
            Adapters in every block (`list(range(num_hidden_layers))`) were never measurably worse in docs/study.md
            and ahead in 2 of 10 comparisons, at twice the step time and with only block 0 shared per video: the
            default stays the top half (study sections 7, 9 and 10, 3 seeds each).
        scada_bottleneck (`int`, *optional*, defaults to 64):
            Width of the adapter bottleneck.
        scada_temporal_kernel (`int`, *optional*, defaults to 3):
            Kernel size (in backbone time steps, odd) of the adapter's depth-wise temporal convolution, which runs
            across all clips of a video. 1 disables it.
        scada_film (`bool`, *optional*, defaults to `True`):
            Whether the adapters are modulated by the sentence (FiLM). False leaves the same adapters without the
            sentence (an ablation: they then adapt the backbone to the task but not to the query). docs/study.md
            sections 7, 9 and 10: within noise on the recognition-style backbones except one split where False led
            by 2.0 points; True led by 3.7 on the token-target backbone's standard world.
        partial_layers (`list[int]`, *optional*):
            Backbone block indices trained under `backbone_tuning="partial"`. Defaults to the top half.
        train_text_encoder (`bool`, *optional*, defaults to `False`):
            Whether the text encoder's weights train.
        num_frames (`int`, *optional*, defaults to 32):
            Frames sampled (by time) over the whole video; a multiple of `clip_frames`.
        clip_frames (`int`, *optional*):
            Frames per backbone clip (16 for pretrained VideoMAE). Written into `backbone_config.num_frames`.
        image_size (`int`, *optional*):
            Frame height = width in pixels. Written into `backbone_config.image_size`.
        spatial_pooling (`str`, *optional*, defaults to `"sentence"`):
            How the spatial tokens of each time step become one vector: `"mean"`, or `"sentence"` (attention weights
            from the sentence embedding, so a step's vector describes the object the sentence names). The sentence
            query starts at zero, so a fresh `"sentence"` pooling is exactly the mean. The default from
            docs/study.md: on the recognition-style backbones (made as real checkpoints are) mean pooling loses
            3.9-4.3 points R1@0.5 on the easy world and ties on the standard one (it leads on the token-target one).
        spatial_pool_location (`bool`, *optional*, defaults to `True`):
            With `spatial_pooling="sentence"`, add to each step's pooled vector a projection of where the pooling
            looked (mean grid position, spread, match strength), starting at zero.
        head_hidden_size (`int`, *optional*, defaults to 256):
            Width of the cross-modal fusion and of the prediction heads.
        head_layers (`int`, *optional*, defaults to 2):
            Fusion layers (self-attention over time steps, cross-attention to text tokens, MLP).
        head_num_heads (`int`, *optional*, defaults to 4):
            Attention heads in the fusion layers.
        head_dropout (`float`, *optional*, defaults to 0.1):
            Dropout in the fusion layers.
        head_temporal_kernel (`int`, *optional*, defaults to 3):
            Kernel (in time steps, odd) of a temporal convolution over the projected step features before the fusion
            layers, added to them, so each step sees how its features differ from its neighbours'. 1 turns it off.
        head_sentence_gating (`bool`, *optional*, defaults to `True`):
            Multiply each time step's projected features by a projection of the pooled sentence before the fusion
            layers (a Hadamard-product fusion), besides the cross-attention to the text tokens.
        sentence_standardization (`bool`, *optional*, defaults to `True`):
            Standardise the pooled sentence embedding per dimension (running statistics over training batches) before
            it conditions the adapters, the spatial pooling and the head.
        score_prior (`float`, *optional*, defaults to 0.1):
            Initial foreground probability of every time step (sets the score bias, as in focal-loss detectors).
        loss_focal_weight (`float`, *optional*, defaults to 1.0):
            Weight of the sigmoid focal loss on per-step scores.
        loss_diou_weight (`float`, *optional*, defaults to 1.0):
            Weight of the 1-D distance-IoU loss on spans regressed from foreground steps.
        loss_l1_weight (`float`, *optional*, defaults to 1.0):
            Weight of the L1 loss on (start, end) in normalised time.
        focal_alpha (`float`, *optional*, defaults to 0.25):
            Focal-loss alpha.
        focal_gamma (`float`, *optional*, defaults to 2.0):
            Focal-loss gamma.
        max_spans (`int`, *optional*, defaults to 5):
            Spans returned per query after decoding (capped by the number of time steps).
        nms_threshold (`float`, *optional*, defaults to 0.5):
            Temporal-IoU threshold of the 1-D NMS at decoding; `None` turns NMS off (spans ranked by score alone).
        inference_window_s (`float`, *optional*, defaults to 150.0):
            Longest stretch of video (seconds) the inference pipeline grounds in one pass of `num_frames` frames; longer
            videos are covered by overlapping windows of at most this length. `run_grounding.py` sets it to the 95th
            percentile of the training videos' durations, so each window looks like a training video.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Std of the normal init of the layers tsgv adds (adapters, head).
        saliency_head (`bool`, *optional*, defaults to `False`):
            A per-step saliency output of its own (highlight detection), trained from clip ratings where the data has
            them (QVHighlights' `saliency_scores`) and from the moment masks otherwise (`modeling_tsgv.saliency`);
            without it a step's saliency is its foreground probability. `run_grounding.py` turns it on when the
            training annotations carry ratings.
        loss_saliency_weight (`float`, *optional*, defaults to 1.0):
            Weight of the saliency head's binary cross-entropy.
        relevance_head (`bool`, *optional*, defaults to `False`):
            A per-query relevance output: the probability that the described moment occurs in the video at all,
            trained with negative queries (`modeling_tsgv.relevance`). `run_grounding.py` gives every new model one.
        loss_relevance_weight (`float`, *optional*, defaults to 1.0):
            Weight of the relevance head's binary cross-entropy.
        relevance_threshold (`float`, *optional*, defaults to 0.5):
            Below this relevance an answer is "probably not in this video" (pipeline, `tsgv-ground`, metrics).
        drop_path_rate (`float`, *optional*, defaults to 0.0):
            Stochastic depth of the backbone blocks that train (full / partial tuning), as VideoMAE fine-tuning uses:
            in training, block i of L is skipped per clip with probability rate * i / (L - 1).
        span_calibration / relevance_calibration (`list[float]`, *optional*):
            [slope, intercept] of the Platt scaling of span scores / `relevance` (`modeling_tsgv.calibration`), that
            `run_grounding.py` fits on the validation split; None: the raw sigmoid.
    """

    model_type = "tsgv"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="videomae"),
        "text_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="bert",
            # all-MiniLM-L6-v2's shape, so that the default config matches the offline default text encoder
            init_kwargs={
                "hidden_size": 384,
                "num_hidden_layers": 6,
                "num_attention_heads": 12,
                "intermediate_size": 1536,
            },
        ),
    }

    backbone_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    # Defaults from docs/study.md parts 7, 9 and 10 (3 seeds, ~1,500-query tests) on the recognition-style backbones,
    # the ones most like a real checkpoint: sentence pooling beats mean by 4 points on the easy world (both of them),
    # ties on the standard (the token-target backbone prefers mean); all-block adapters are within noise, so the
    # cheaper top half (the bottom half runs once per video) stays. FiLM stays on: without it SCADA is within noise in
    # 5 of 6 recognition-backbone comparisons and 2.0 ahead in one (part 10's test_novel, a bar of 1.9), while on the
    # token-target standard world the FiLM is worth 3.7 points; off, the adapters would not see the sentence at all.
    backbone_tuning: str = "scada"
    scada_layers: list[int] | None = None
    scada_bottleneck: int = 64
    scada_temporal_kernel: int = 3
    scada_film: bool = True
    partial_layers: list[int] | None = None
    train_text_encoder: bool = False
    num_frames: int = 32
    clip_frames: int | None = None
    image_size: int | None = None
    spatial_pooling: str = "sentence"
    spatial_pool_location: bool = True
    head_hidden_size: int = 256
    head_layers: int = 2
    head_num_heads: int = 4
    head_dropout: float = 0.1
    head_temporal_kernel: int = 3
    head_sentence_gating: bool = True
    sentence_standardization: bool = True
    score_prior: float = 0.1
    loss_focal_weight: float = 1.0
    loss_diou_weight: float = 1.0
    loss_l1_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    max_spans: int = 5
    nms_threshold: float | None = 0.5
    inference_window_s: float = 150.0
    initializer_range: float = 0.02
    saliency_head: bool = False
    loss_saliency_weight: float = 1.0
    relevance_head: bool = False
    loss_relevance_weight: float = 1.0
    relevance_threshold: float = 0.5
    drop_path_rate: float = 0.0
    span_calibration: list[float] | None = None
    relevance_calibration: list[float] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)  # builds backbone_config / text_config from dicts or defaults
        backbone = self.backbone_config
        # clip_frames / image_size live in the backbone config; the flat fields mirror them.
        if self.clip_frames is not None:
            backbone.num_frames = self.clip_frames
        if self.image_size is not None:
            backbone.image_size = self.image_size
        self.clip_frames = backbone.num_frames
        self.image_size = backbone.image_size
        num_layers = backbone.num_hidden_layers
        top_half = list(range(num_layers // 2, num_layers))
        if self.scada_layers is None:
            self.scada_layers = top_half
        if self.partial_layers is None:
            self.partial_layers = top_half
        self.scada_layers = sorted(int(i) for i in self.scada_layers)
        self.partial_layers = sorted(int(i) for i in self.partial_layers)
        validate_config(self)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """`PreTrainedConfig.from_dict`. A key TSGVConfig does not know is kept as an attribute, as transformers keeps
        it (a newer tsgv, transformers or another library may have written it: `tie_word_embeddings`,
        `quantization_config`, ...); one that looks like a misspelt TSGVConfig field (`scada_layerz`) is warned about,
        naming the field it resembles, since nothing reads it. Our own fields' values are validated strictly."""
        for key, field in misspelt_fields(config_dict).items():
            logger.warning(f"config key {key!r} is not a TSGVConfig field (did you mean {field!r}?): kept but unused")
        loaded = super().from_dict(config_dict, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        if getattr(config, "custom_pipelines", None) and _pipeline_installed():
            # tsgv is installed (its task is registered): use it, without asking for trust_remote_code — with
            # `custom_pipelines` set, transformers' pipeline() would insist on the copy saved beside the weights
            config.custom_pipelines = {}
        return loaded

    @property
    def num_time_steps(self) -> int:
        """L_t: time steps the model scores per video (`num_frames` / the backbone's `tubelet_size`)."""
        return self.num_frames // self.backbone_config.tubelet_size

    @property
    def hidden_size(self) -> int:
        """Width of the video backbone; DeepSpeed's "auto" bucket sizes read this (not the text encoder's width)."""
        return self.backbone_config.hidden_size


class ConfigFieldError(ValueError):
    """A `TSGVConfig` value that cannot work. `fields`: the field(s) the message is about, the one it is about first
    (`clip_frames` breaks `num_frames`' rule: ("num_frames", "clip_frames")), so a script can name the flag the user
    set without reading the message."""

    def __init__(self, fields: str | tuple[str, ...], message: str):
        super().__init__(message)
        self.fields = (fields,) if isinstance(fields, str) else tuple(fields)

    def __reduce__(self):  # pickles with its fields (to a DataLoader worker's parent, across ranks)
        return type(self), (self.fields, str(self))


def validate_config(config) -> None:
    """Every check of a `TSGVConfig` (its model-shape fields here: tuning mode, pooling, adapter / partial blocks,
    widths, frames; then the layer, decoding and loss fields): a `ConfigFieldError` naming the field(s) when the
    configuration cannot describe a working model."""
    if config.backbone_tuning not in BACKBONE_TUNING_MODES:
        raise ConfigFieldError(
            "backbone_tuning",
            f"backbone_tuning must be one of {BACKBONE_TUNING_MODES}, got {config.backbone_tuning!r}",
        )
    if config.spatial_pooling not in ("mean", "sentence"):
        raise ConfigFieldError(
            "spatial_pooling", f"spatial_pooling must be 'mean' or 'sentence', got {config.spatial_pooling!r}"
        )
    num_layers = config.backbone_config.num_hidden_layers
    for name in ("scada_layers", "partial_layers"):
        bad = [i for i in getattr(config, name) if not 0 <= i < num_layers]
        if bad:
            raise ConfigFieldError(
                name, f"{name} {bad} out of range: the backbone has {num_layers} blocks (0..{num_layers - 1})"
            )
    if config.backbone_tuning == "scada" and not config.scada_layers:
        raise ConfigFieldError(
            ("scada_layers", "backbone_tuning"), "backbone_tuning='scada' needs at least one block in scada_layers"
        )
    for name, least in (
        ("scada_bottleneck", 1),
        ("head_hidden_size", 1),
        ("head_num_heads", 1),
        ("head_layers", 0),
    ):
        if getattr(config, name) < least:
            raise ConfigFieldError(name, f"{name} must be >= {least}, got {getattr(config, name)}")
    if config.clip_frames <= 0 or config.image_size <= 0:
        raise ConfigFieldError(
            ("clip_frames", "image_size"),
            f"clip_frames and image_size must be > 0, got {config.clip_frames} and {config.image_size}",
        )
    patch = config.backbone_config.patch_size
    if config.image_size % patch:
        raise ConfigFieldError(
            "image_size", f"image_size ({config.image_size}) must be a multiple of the backbone's {patch}-px patches"
        )
    if config.clip_frames % config.backbone_config.tubelet_size:
        raise ConfigFieldError(
            "clip_frames",
            f"clip_frames ({config.clip_frames}) must be a multiple of the backbone's tubelet_size "
            f"({config.backbone_config.tubelet_size})",
        )
    if config.num_frames <= 0 or config.num_frames % config.clip_frames:
        raise ConfigFieldError(
            ("num_frames", "clip_frames"),
            f"num_frames ({config.num_frames}) must be a positive multiple of clip_frames ({config.clip_frames})",
        )
    check_layer_fields(config)
    check_decoding_fields(config)
    check_loss_fields(config)


def check_layer_fields(config) -> None:
    """The layer-shape and regularisation fields of a `TSGVConfig` (kernels, head width, drop path): a ValueError
    naming the field when one cannot work."""
    for name in ("scada_temporal_kernel", "head_temporal_kernel"):
        if getattr(config, name) < 1 or getattr(config, name) % 2 == 0:
            raise ConfigFieldError(name, f"{name} must be odd and >= 1, got {getattr(config, name)}")
    if config.head_hidden_size % config.head_num_heads:
        raise ConfigFieldError(
            ("head_hidden_size", "head_num_heads"),
            f"head_hidden_size ({config.head_hidden_size}) must be divisible by head_num_heads ({config.head_num_heads})",
        )
    if not 0.0 <= config.drop_path_rate < 1.0:
        raise ConfigFieldError("drop_path_rate", f"drop_path_rate must be in [0, 1), got {config.drop_path_rate}")


def check_decoding_fields(config) -> None:
    """The decoding fields of a `TSGVConfig` (spans kept, NMS, serving window, score calibrations): a ValueError
    naming the field when one is out of range."""
    if config.max_spans < 1:
        raise ConfigFieldError("max_spans", f"max_spans must be >= 1, got {config.max_spans}")
    if config.nms_threshold is not None and not 0.0 < config.nms_threshold <= 1.0:
        raise ConfigFieldError("nms_threshold", f"nms_threshold must be in (0, 1] or None, got {config.nms_threshold}")
    if not config.inference_window_s > 0:
        raise ConfigFieldError(
            "inference_window_s", f"inference_window_s must be > 0 seconds, got {config.inference_window_s}"
        )
    for name in ("span_calibration", "relevance_calibration"):
        check_calibration(name, getattr(config, name))


def check_calibration(name: str, calibration) -> None:
    """ValueError unless `calibration` is None or [slope > 0, intercept], both finite (`modeling_tsgv.calibration`
    applies it)."""
    if calibration is None:
        return
    try:
        slope, intercept = (float(value) for value in calibration)
    except (TypeError, ValueError):
        raise ConfigFieldError(name, f"{name} must be null or [slope, intercept], got {calibration!r}") from None
    if not (math.isfinite(slope) and math.isfinite(intercept) and slope > 0):
        raise ConfigFieldError(name, f"{name} must be [slope > 0, intercept], finite, got {calibration!r}")


def check_loss_fields(config) -> None:
    """The loss and decision fields of a `TSGVConfig`: a ValueError naming the field when one is out of range."""
    if not 0.0 < config.score_prior < 1.0:
        raise ConfigFieldError("score_prior", f"score_prior must be in (0, 1), got {config.score_prior}")
    if not 0.0 <= config.head_dropout < 1.0:
        raise ConfigFieldError("head_dropout", f"head_dropout must be in [0, 1), got {config.head_dropout}")
    weights = ("loss_focal_weight", "loss_diou_weight", "loss_l1_weight", "loss_saliency_weight")
    for name in (*weights, "loss_relevance_weight", "focal_gamma"):
        if not getattr(config, name) >= 0:
            raise ConfigFieldError(name, f"{name} must be >= 0, got {getattr(config, name)}")
    if not 0.0 <= config.focal_alpha <= 1.0:
        raise ConfigFieldError("focal_alpha", f"focal_alpha must be in [0, 1], got {config.focal_alpha}")
    if not 0.0 < config.relevance_threshold < 1.0:
        raise ConfigFieldError(
            "relevance_threshold", f"relevance_threshold must be in (0, 1), got {config.relevance_threshold}"
        )


def parse_config_overrides(text: str) -> dict:
    """`"key=value,key=value"` (transformers' `--config_overrides` convention) -> {field: typed value}.

    Parsed by `PreTrainedConfig.update_from_string` on a default config, so each value takes its field's type
    (int, float, bool, str). Raises ValueError for an unknown field, a value of the wrong type, or a field that
    is not a plain number / flag / word (lists such as `scada_layers`: use their own flags)."""
    probe = TSGVConfig()
    pairs = [pair.strip() for pair in text.split(",") if pair.strip()]
    settable = settable_fields()
    for pair in pairs:
        if pair.count("=") != 1:
            raise ValueError(f"{pair!r} is not key=value")
        key = pair.split("=")[0].strip()
        if key not in settable:
            raise ValueError(f"{key!r} is not a TSGVConfig field that can be set (see help(TSGVConfig))")
    keys = [pair.split("=")[0].strip() for pair in pairs]
    try:
        probe.update_from_string(",".join(f"{k}={pair.split('=')[1].strip()}" for k, pair in zip(keys, pairs)))
    except (TypeError, AttributeError) as error:  # a field that is not int / float / bool / str
        raise ValueError(str(error)) from error
    return {key: getattr(probe, key) for key in keys}


def config_with_overrides(config: "TSGVConfig", overrides: dict) -> "TSGVConfig":
    """A copy of `config` (a loaded model's) with `overrides` applied and validated, for fine-tuning or evaluating a
    saved model with other settings. Fields that shape the saved weights (`WEIGHT_SHAPING_FIELDS`, and
    switching SCADA adapters on or off) cannot change: they raise a `ConfigFieldError` naming the field."""
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        if key not in settable_fields():
            raise ConfigFieldError(key, f"{key} is not a TSGVConfig field that can be set")
        current = getattr(config, key)
        changes_weights = key in WEIGHT_SHAPING_FIELDS or (
            key == "backbone_tuning" and (value == "scada") != (current == "scada")
        )
        if changes_weights and value != current:
            raise ConfigFieldError(
                key, f"{key} cannot change from {current!r} to {value!r} on a saved model: its weights have that shape"
            )
        setattr(config, key, value)
    validate_config(config)
    return config


def settable_fields() -> set[str]:
    """TSGVConfig's own fields that overrides may set: not PreTrainedConfig's, not the sub-model configs."""
    return set(TSGVConfig.__annotations__) - {"backbone_config", "text_config"}


# fields whose value decides which weights a model has, or their shapes: a saved model keeps them
WEIGHT_SHAPING_FIELDS = (
    "scada_layers",
    "scada_bottleneck",
    "scada_temporal_kernel",
    "scada_film",
    "clip_frames",
    "image_size",
    "spatial_pooling",
    "spatial_pool_location",
    "head_hidden_size",
    "head_layers",
    "head_num_heads",
    "head_temporal_kernel",
    "head_sentence_gating",
    "sentence_standardization",
    "saliency_head",
    "relevance_head",
)


def _pipeline_installed() -> bool:
    """Whether the grounding task is registered with transformers' pipeline() (tsgv imported, not remote code)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    return PIPELINE_TASK in PIPELINE_REGISTRY.get_supported_tasks()


def unknown_config_fields(config_dict: dict) -> list[str]:
    """Keys of a config dict that are neither TSGVConfig fields nor keys transformers itself writes into configs
    (PreTrainedConfig's attributes, generation settings such as `use_cache` that the Trainer sets) (sorted)."""
    global _KNOWN_KEYS
    if _KNOWN_KEYS is None:
        from transformers import GenerationConfig

        _KNOWN_KEYS = (
            {f.name for f in dataclasses.fields(TSGVConfig)}
            | set(vars(PreTrainedConfig()))
            | set(GenerationConfig().to_dict())
            | SAVED_KEYS
        )
    return sorted(key for key in config_dict if key not in _KNOWN_KEYS and not key.startswith("_"))


def misspelt_fields(config_dict: dict) -> dict[str, str]:
    """{unknown key: the TSGVConfig field it closely resembles} for the keys of `config_dict` that look like typos
    of our own fields (`difflib` similarity >= 0.85; keys of other libraries resemble none of them)."""
    fields = sorted(settable_fields())
    close = {
        key: difflib.get_close_matches(key, fields, n=1, cutoff=0.85) for key in unknown_config_fields(config_dict)
    }
    return {key: match[0] for key, match in close.items() if match}


_KNOWN_KEYS = None


def is_hub_id(name: str, owner_required: bool = True) -> bool:
    """Whether `name` is a valid Hugging Face Hub repo id by the Hub's own rules (`validate_repo_id`); with
    `owner_required`, only "org/name" (every VideoMAE checkpoint and every saved tsgv model on the Hub has an owner)."""
    if owner_required and "/" not in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


class ModelFolderError(ValueError):
    """A model path that cannot be a tsgv model (missing, no config.json, another model type, an invalid config
    value, no safetensors weights); the message names the path (or file) and the field."""


def check_model_folder(path: str | os.PathLike, weights: bool = True) -> None:
    """Fail fast, in one line naming `path`, when a local model folder is missing or holds no loadable tsgv model.

    Checks: the folder exists; its config.json parses, is a tsgv config and passes TSGVConfig's validation (keys it
    does not know are kept, see `TSGVConfig.from_dict`); with `weights`, it holds safetensors weights (pickled `pytorch_model.bin` files are
    never loaded: unpickling runs code). An "org/name" that is no local path passes unchecked as a Hub id (unless
    HF_HUB_OFFLINE is set): `from_pretrained` reports its problems.
    Raises:
        ModelFolderError.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        local_parent = os.path.exists(path.split("/")[0])  # "runs/my-model" with a local runs/: a mistyped folder
        if is_hub_id(path) and not local_parent and not huggingface_hub.constants.HF_HUB_OFFLINE:
            return  # an "org/name" Hub id: from_pretrained decides
        raise ModelFolderError(f"{path}: model folder not found")
    if not os.path.isdir(path):
        raise ModelFolderError(f"{path}: not a folder (a tsgv model is a folder with config.json and weights)")
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise ModelFolderError(f"{path}: no config.json, so not a saved model folder")
    try:
        with open(config_file) as f:
            config_dict = json.load(f)
    except (OSError, ValueError) as err:
        raise ModelFolderError(f"{config_file}: unreadable config ({err})") from err
    if not isinstance(config_dict, dict):
        raise ModelFolderError(f"{config_file}: not a config (a JSON object is expected)")
    model_type = config_dict.get("model_type")
    if model_type != "tsgv":
        raise ModelFolderError(f"{path}: not a tsgv model (config.json has model_type {model_type!r})")
    try:
        TSGVConfig.from_dict(config_dict)
    except (ValueError, TypeError, KeyError) as err:
        raise ModelFolderError(f"{config_file}: {str(err).strip().splitlines()[0]}") from err
    if weights and not any(os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES):
        pickles = [name for name in PICKLE_WEIGHT_FILES if os.path.isfile(os.path.join(path, name))]
        if pickles:
            raise ModelFolderError(
                f"{path}: has {pickles[0]} but no model.safetensors; tsgv loads weights only from safetensors "
                "(unpickling a .bin can run code): convert it with save_pretrained where you trust the file"
            )
        raise ModelFolderError(f"{path}: no model.safetensors (weights) in the folder")


TSGVConfig.register_for_auto_class()  # save_pretrained writes auto_map and copies this file (remote code)

__all__ = [
    "ConfigFieldError",
    "validate_config",
    "TSGVConfig",
    "BACKBONE_TUNING_MODES",
    "BUILTIN_BACKBONES",
    "ModelFolderError",
    "builtin_backbone_path",
    "check_model_folder",
    "parse_config_overrides",
    "config_with_overrides",
]
