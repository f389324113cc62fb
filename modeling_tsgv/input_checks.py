"""The checks `TSGVForGrounding` runs on its inputs before any block does: each raises a ValueError that says what is
wrong in the caller's terms, instead of a shape error deep inside torch."""

import torch

from .configuration_tsgv import TSGVConfig


def checks_values(tensor: torch.Tensor) -> bool:
    """Whether to check an input's values (not only its shape): on the CPU, where it is free; not on an accelerator,
    where reading a value back waits for all queued work (a training step, or each window of the pipeline, would stall
    on it), and not while torch.compile traces (the check would split the graph). What reaches an accelerator in tsgv
    was built valid on the CPU: the collators check labels and query indices, the pipeline builds its own."""
    if torch.compiler.is_compiling():
        return False
    return tensor.device.type == "cpu"


def check_forward_inputs(pixel_values, input_ids, video_states, token_type_ids, check_values=checks_values) -> None:
    """`forward`'s inputs: sentences given, exactly one of frames and cached states, one segment only (the
    `token_type_ids` values are read where `check_values(token_type_ids)` says so, see `checks_values`)."""
    if token_type_ids is not None and check_values(token_type_ids) and bool(token_type_ids.any()):
        raise ValueError("token_type_ids must be all zero: each query is a single sentence, not a sentence pair")
    if input_ids is None:
        raise ValueError("input_ids are required: the sentences to ground")
    if (pixel_values is None) == (video_states is None):
        raise ValueError("pass exactly one of pixel_values (frames) and video_states (cached encode_video states)")


def check_pixel_values(pixel_values: torch.Tensor, config: TSGVConfig) -> None:
    """(B_v, T, 3, H, W) frames: floating point (normalised), T a multiple of `clip_frames`, H = W = `image_size`."""
    num_frames, height, width = pixel_values.shape[1], pixel_values.shape[3], pixel_values.shape[4]
    clip_frames = config.clip_frames
    if num_frames % clip_frames:
        raise ValueError(f"pixel_values has {num_frames} frames: must be a multiple of clip_frames ({clip_frames})")
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values are {pixel_values.dtype}: normalise them first (processing_tsgv.normalize_frames)"
        )
    if height != config.image_size or width != config.image_size:
        raise ValueError(f"frames are {height}x{width} but the model expects {config.image_size}x{config.image_size}")


def check_cached_states(video_states: torch.Tensor, config: TSGVConfig) -> None:
    """Cached `encode_video` states (B_v, C, N, D) of a model with this config: C clips, N tokens per clip, D wide."""
    backbone = config.backbone_config
    steps_per_clip = config.clip_frames // backbone.tubelet_size
    patches = (config.image_size // backbone.patch_size) ** 2
    expected = (config.num_frames // config.clip_frames, steps_per_clip * patches)
    width = backbone.hidden_size
    if video_states.dim() != 4 or tuple(video_states.shape[1:3]) != expected or video_states.shape[3] != width:
        raise ValueError(
            f"video_states must have shape (B_v, {expected[0]}, {expected[1]}, {width}) for this model, "
            f"got {tuple(video_states.shape)}"
        )


def check_query_video_index(
    query_video_index: torch.Tensor | None, num_queries: int, num_videos: int, device, check_values: bool
) -> torch.Tensor:
    """The video of each query as a (B_q,) long tensor: `query_video_index` (its values checked to lie in
    [0, num_videos) with `check_values`), or, when None, query i -> video i (then B_q must equal num_videos)."""
    if query_video_index is None:
        if num_queries != num_videos:
            raise ValueError(
                f"{num_queries} queries for {num_videos} videos: pass query_video_index to map queries to videos"
            )
        return torch.arange(num_videos, device=device)
    query_video_index = query_video_index.long()
    if (
        check_values
        and query_video_index.numel()
        and (query_video_index.min() < 0 or query_video_index.max() >= num_videos)
    ):
        raise ValueError(f"query_video_index must lie in [0, {num_videos}), got {query_video_index.tolist()}")
    return query_video_index


def check_text_states(text_states: torch.Tensor, input_ids: torch.Tensor, encoder_trains: bool) -> None:
    """ValueError unless `text_states` (B_q, S, D_text) fit `input_ids` (B_q, S) and the encoder is frozen."""
    if encoder_trains:
        raise ValueError("text_states come from a frozen text encoder: not with train_text_encoder=True")
    if text_states.shape[:2] != input_ids.shape:
        raise ValueError(f"text_states {tuple(text_states.shape)} do not match input_ids {tuple(input_ids.shape)}")
