"""The VideoMAE backbone a grounding model builds on, from any kind of VideoMAE checkpoint.

transformers' VideoMAE checkpoints come in three layouts, and each hands over its encoder differently:

| checkpoint (`config.architectures`)            | encoder weights        | final norm of the tokens                       |
|------------------------------------------------|------------------------|------------------------------------------------|
| `VideoMAEModel`                                | `embeddings`, `encoder`| `layernorm` (absent with `use_mean_pooling`)   |
| `VideoMAEForPreTraining` (masked reconstruction)| `videomae.*`          | `videomae.layernorm` (absent with mean pooling) |
| `VideoMAEForVideoClassification`, mean pooling  | `videomae.*`          | `fc_norm`, in the classification head          |
|   (the Kinetics / SSv2-finetuned checkpoints)   |                        |                                                |

`AutoModel.from_pretrained` keeps only `videomae.*`: a finetuned classification checkpoint then loses `fc_norm`, the
only normalisation its fine-tuning trained the tokens' read-out with, and the backbone runs with no final norm at all.
`load_video_backbone` carries `fc_norm` over as the encoder's `layernorm` (applied per token, before our pooling,
where the classifier applied it to the token mean) and saves that layout (`use_mean_pooling=False`), so a saved tsgv
model reloads it. VideoMAE V2 checkpoints (the paper's ViT-g) are remote code of another layout:
`python -m modeling_tsgv.convert_videomae_v2` converts them.
"""

import json
import os

from torch import nn
from transformers import AutoModel, PreTrainedConfig, PreTrainedModel, VideoMAEForVideoClassification
from transformers.utils import logging

logger = logging.get_logger(__name__)


class BackboneCheckpointError(ValueError):
    """A video checkpoint tsgv cannot build on; the message names the path and why, in one line."""


def checkpoint_config(path) -> dict:
    """The checkpoint's config.json as a dict (a local folder or a Hub id), read without building a config class, so
    that remote-code configs (VideoMAE V2) can be recognised without running their code."""
    return PreTrainedConfig.get_config_dict(os.fspath(path))[0]


def check_backbone_config(path: str, config: dict) -> None:
    """Refuse, in one line naming `path`, a config that is no transformers VideoMAE (VideoMAE V2's remote code:
    with the command that converts it)."""
    model_type = str(config.get("model_type", ""))
    if model_type.lower().startswith("videomaev2") or "VideoMAEv2" in json.dumps(config.get("auto_map", {})):
        raise BackboneCheckpointError(
            f"{path}: a VideoMAE V2 checkpoint (remote code, model_type {model_type!r}); convert it to a transformers "
            f"VideoMAE checkpoint first: python -m modeling_tsgv.convert_videomae_v2 {path} OUT_FOLDER"
        )
    if model_type != "videomae":
        raise BackboneCheckpointError(
            f"{path}: the video backbone must be a VideoMAE model, got model_type={model_type!r}"
        )


def load_video_backbone(path, **config_kwargs) -> PreTrainedModel:
    """The `VideoMAEModel` of the checkpoint at `path` (folder or Hub id), whatever its layout (module docstring).

    `config_kwargs` (e.g. `num_frames`, `image_size`) override the checkpoint's config as `from_pretrained` does.
    Raises `BackboneCheckpointError` (one line) for a checkpoint that is no VideoMAE, or whose weights do not cover the
    encoder (another layout saved under a VideoMAE config)."""
    config = checkpoint_config(path)
    check_backbone_config(path, config)
    architectures = config.get("architectures") or []
    if "VideoMAEForVideoClassification" in architectures and config.get("use_mean_pooling", True):
        full, info = VideoMAEForVideoClassification.from_pretrained(path, output_loading_info=True, **config_kwargs)
        video = with_fc_norm_as_layernorm(full)
    else:
        video, info = AutoModel.from_pretrained(path, output_loading_info=True, **config_kwargs)
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise BackboneCheckpointError(
            f"{path}: the checkpoint lacks {len(missing)} of the VideoMAE encoder's weights (e.g. {missing[0]!r}): not "
            "a transformers VideoMAE checkpoint of this size"
        )
    return video


def with_fc_norm_as_layernorm(classifier: VideoMAEForVideoClassification) -> PreTrainedModel:
    """The encoder of a mean-pooling classification model, with its `fc_norm` as the encoder's final `layernorm`
    (same weights; epsilon the config's `layer_norm_eps`, as a reloaded model builds it) and `use_mean_pooling=False`
    in its config, so that a saved tsgv model rebuilds and reloads that norm."""
    video = classifier.videomae
    if classifier.fc_norm is None:
        return video
    norm = nn.LayerNorm(video.config.hidden_size, eps=video.config.layer_norm_eps)
    norm.load_state_dict(classifier.fc_norm.state_dict())
    video.layernorm = norm.to(classifier.fc_norm.weight.device, classifier.fc_norm.weight.dtype)
    video.config.use_mean_pooling = False
    logger.info("the classification checkpoint's fc_norm is the backbone's final layernorm (applied per token)")
    return video


def video_backbone(video, clip_frames: int | None = None, image_size: int | None = None) -> PreTrainedModel:
    """The `VideoMAEModel` to build on: `video` itself (or the base of a VideoMAE pre-training / classification model),
    or loaded from a path / Hub name with `clip_frames` frames per clip and `image_size` px (VideoMAE's positional
    table is sinusoidal, so both may change there) by `load_video_backbone`, which takes every
    checkpoint layout (a classification checkpoint's `fc_norm` included). A model object must already match both;
    ValueError otherwise (`BackboneCheckpointError` for a checkpoint that cannot be used)."""
    if isinstance(video, (str, bytes)) or hasattr(video, "__fspath__"):
        sizes = {"num_frames": clip_frames, "image_size": image_size}
        video = load_video_backbone(video, **{k: v for k, v in sizes.items() if v is not None})
    elif isinstance(video, VideoMAEForVideoClassification):
        video = with_fc_norm_as_layernorm(video)
    video = getattr(video, "videomae", video)  # VideoMAEForPreTraining -> VideoMAEModel
    if video.config.model_type != "videomae":
        raise ValueError(f"the video backbone must be a VideoMAE model, got model_type={video.config.model_type!r}")
    for name, wanted, backbone_name in (
        ("clip_frames", clip_frames, "num_frames"),
        ("image_size", image_size, "image_size"),
    ):
        if wanted is not None and wanted != getattr(video.config, backbone_name):
            raise ValueError(
                f"{name}={wanted} does not match the given backbone ({backbone_name}="
                f"{getattr(video.config, backbone_name)}); pass the backbone as a path so it is loaded with the new "
                "size"
            )
    return video


__all__ = [
    "BackboneCheckpointError",
    "check_backbone_config",
    "checkpoint_config",
    "load_video_backbone",
    "video_backbone",
    "with_fc_norm_as_layernorm",
]
