"""What `TSGVForGrounding` returns: the query-independent states of `encode_video` (`TSGVEncodedVideos`), the
grounding output (`TSGVGroundingOutput`), and what `output_hidden_states` / `output_attentions` collect along the
forward path (`OutputRecord`)."""

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel
from transformers.utils import ModelOutput
from transformers.utils.output_capturing import resolve_hidden_states_indices, selected_hidden_states

from .configuration_tsgv import TSGVConfig
from .input_checks import check_cached_states


@dataclass
class TSGVEncodedVideos:
    """Query-independent backbone states of B_v videos, from [`TSGVForGrounding.encode_video`].

    Attributes:
        hidden_states: (B_v*C, N, D) tokens after the blocks every query shares (C clips per video, N tokens per clip).
        num_videos: B_v.
        clips: C, clips per video.
        steps_per_clip: time steps per clip (clip_frames / tubelet_size).
    """

    hidden_states: torch.Tensor
    num_videos: int
    clips: int
    steps_per_clip: int

    @classmethod
    def from_cache(cls, video_states: torch.Tensor, config: TSGVConfig, dtype: torch.dtype) -> "TSGVEncodedVideos":
        """(B_v, C, N, D) cached `encode_video` hidden states (`forward`'s `video_states`), checked to fit a model of
        `config`, as the model's `dtype`."""
        check_cached_states(video_states, config)
        steps_per_clip = config.clip_frames // config.backbone_config.tubelet_size
        batch_v, clips = video_states.shape[:2]
        return cls(video_states.flatten(0, 1).to(dtype), batch_v, clips, steps_per_clip)


TSGVVideoStates = TSGVEncodedVideos  # its former name (`ground` took `video_states`), kept for imports


@dataclass
class TSGVGroundingOutput(ModelOutput):
    r"""
    Output of [`TSGVForGrounding`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Weighted sum of focal, DIoU and L1 losses; present when `labels` are given.
        pred_spans (`torch.FloatTensor` of shape `(B_q, K, 2)`):
            Decoded spans per query, best first, in normalised time [0, 1] (0 = video start, 1 = video end),
            start <= end. K = min(config.max_spans, L_t). None in training mode when `labels` are given (a training
            step needs only the loss; call `decode(step_logits, step_offsets)` for them).
        pred_scores (`torch.FloatTensor` of shape `(B_q, K)`):
            Confidence in [0, 1] of each span, non-increasing along K (None when `pred_spans` is).
        step_logits (`torch.FloatTensor` of shape `(B_q, L_t)`):
            Per-time-step foreground logits (sigmoid = probability the step lies inside the moment).
        step_offsets (`torch.FloatTensor` of shape `(B_q, L_t, 2)`):
            Per-time-step distances (normalised time, >= 0) from the step centre back to the start and on to the end.
        step_saliency (`torch.FloatTensor` of shape `(B_q, L_t)`):
            How much each time step matters to the sentence, in [0, 1] (highlight detection): the saliency head's
            probabilities (`config.saliency_head`), else the foreground probabilities (`sigmoid(step_logits)`).
        relevance (`torch.FloatTensor` of shape `(B_q,)`, *optional*):
            Probability that the described moment occurs in the video at all (`config.relevance_head`; None without).
        video_hidden_states (`torch.FloatTensor` of shape `(B_q, L_t, D)`):
            Spatially pooled backbone features per query (sentence-conditioned under SCADA).
        loss_dict (`dict[str, torch.FloatTensor]`, *optional*):
            Unweighted loss terms `focal`, `diou`, `l1` (scalars), for logging.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, with `output_hidden_states`):
            The hidden states along the path, in order (num_hidden_layers + head_layers + 2 tensors). First the
            backbone's tokens per clip, as VideoMAE runs them: its embeddings, then each block's output (before the
            final layernorm). Blocks every query shares run once per video, so up to the block before the first
            SCADA adapter they are `(B_v*C, N, D)`; from that block (its output after its adapter) on they are per
            query, `(B_q*C, N, D)` (C clips per video, N tokens per clip). Then the grounding head's step features
            `(B_q, L_t, head_hidden_size)`: its input (projected, sentence-gated, with positions) and the output of each
            fusion layer, the last being what the score and the boundaries are read from. With
            `output_hidden_states` a list of indices (negative ones count from the end), the others are None.
        attentions (`tuple(torch.FloatTensor)`, *optional*, with `output_attentions=True`):
            Each backbone block's attention weights after the softmax, `(B_v*C or B_q*C, heads, N, N)` as for
            `hidden_states`; computed only by the eager attention (`attn_implementation="eager"`), empty otherwise.
    """

    loss: torch.FloatTensor | None = None
    pred_spans: torch.FloatTensor | None = None
    pred_scores: torch.FloatTensor | None = None
    step_logits: torch.FloatTensor | None = None
    step_offsets: torch.FloatTensor | None = None
    step_saliency: torch.FloatTensor | None = None
    relevance: torch.FloatTensor | None = None
    video_hidden_states: torch.FloatTensor | None = None
    loss_dict: dict | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class OutputRecord:
    """What `output_hidden_states` / `output_attentions` collect along the forward path, in order (a list, or None:
    not collected): `hidden_states` (the backbone's embeddings and block outputs, an adapter's where a block has one,
    then the head's step features) and `attentions` (each backbone block's weights, from its self-attention module
    while `attention_hooks` is open). `selected`: indices of the hidden states kept (None: all); the others are None.
    """

    hidden_states: list | None = None
    attentions: list | None = None
    selected: set[int] | None = None

    def outputs(self) -> dict:
        """`hidden_states` / `attentions` as tuples (None where not collected), for the model's output."""
        return {name: None if got is None else tuple(got) for name, got in vars(self).items() if name != "selected"}

    def keep(self, hidden: torch.Tensor) -> None:
        """Append `hidden` to `hidden_states` (None in its place when its index is not selected), if they are
        collected."""
        if self.hidden_states is not None:
            chosen = self.selected is None or len(self.hidden_states) in self.selected
            self.hidden_states.append(hidden if chosen else None)

    @contextmanager
    def attention_hooks(self, video_model: PreTrainedModel):
        """While open, each VideoMAE self-attention module of `video_model` appends its weights to `attentions`
        (VideoMAE's blocks return only their hidden states; transformers' own models record them with such hooks)."""
        if self.attentions is None:
            yield
            return
        handles = [layer.attention.attention.register_forward_hook(self._keep_attention) for layer in
                   video_model.encoder.layer]  # fmt: skip
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _keep_attention(self, module, args, output) -> None:
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is not None:  # SDPA / flash attention compute no weights
            self.attentions.append(weights)


def output_record(model: PreTrainedModel, output_hidden_states, output_attentions, cached: bool) -> OutputRecord:
    """The `OutputRecord` for `forward`'s flags (None: `model.config`'s); hidden-state indices resolved against the
    full count (the backbone's num_hidden_layers + 1, the head's head_layers + 1), as transformers resolves them.
    `cached`: the forward starts from cached video states, whose blocks do not run (ValueError if asked for)."""
    config = model.config
    output_attentions = config.output_attentions if output_attentions is None else output_attentions
    output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
    if cached and (output_attentions or output_hidden_states):
        raise ValueError(
            "output_attentions / output_hidden_states need pixel_values: with cached video_states the blocks "
            "below the first adapter do not run"
        )
    selected = selected_hidden_states(output_hidden_states)
    if selected is not None:
        total = config.backbone_config.num_hidden_layers + config.head_layers + 2
        selected = resolve_hidden_states_indices(model, selected, total)
    return OutputRecord([] if output_hidden_states else None, [] if output_attentions else None, selected)
