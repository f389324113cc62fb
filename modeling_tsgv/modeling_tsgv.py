"""TSGVForGrounding: VideoMAE + SCADA adapters + text encoder + anchor-free grounding head, in one forward path.

The path a batch takes (shapes: B_v videos, B_q queries, C clips per video, F frames per clip, N tokens per clip,
D backbone width, L_t time steps per video, S text tokens, K spans per query):

    pixel_values (B_v, C*F, 3, H, W) -> clips (B_v*C, F, 3, H, W) -> VideoMAE embeddings (B_v*C, N, D)
    blocks up to the first SCADA block: once per video                  (B_v*C, N, D)
    gather by query_video_index, then adapters and later blocks: per query (B_q*C, N, D)
    spatial pool (mean, or weighted by the sentence)                    (B_q, L_t, D)
    fusion with text tokens, per-step score + distances to start/end     (B_q, L_t), (B_q, L_t, 2)
    decoding (1-D NMS, top-K)                                            pred_spans (B_q, K, 2) in [0, 1]

`forward` = `encode_video` (the query-independent blocks, once per video) + `ground` (everything per query), so
inference can encode a video once and ground any number of queries against it, in one call or in chunks.
"""

import math
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops import MLP
from transformers import AutoModel, PreTrainedModel, VideoMAEForVideoClassification
from transformers import initialization as init
from transformers.utils import ModelOutput, logging
from transformers.utils.output_capturing import resolve_hidden_states_indices, selected_hidden_states

from .calibration import calibrated_probability
from .configuration_tsgv import CUSTOM_PIPELINES, TSGVConfig, check_model_folder
from .loss_tsgv import grounding_loss
from .relevance import relevance_summary
from .saliency import step_saliency
from .spans import decode_spans
from .video_backbones import load_video_backbone, with_fc_norm_as_layernorm

logger = logging.get_logger(__name__)


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
# SCADA: sentence-conditioned adapter
# ---------------------------------------------------------------------------------------------------------------------


class ScadaAdapter(nn.Module):
    """Bottleneck adapter whose activations are FiLM-modulated by the sentence, with a temporal depth-wise conv.

    `x + up(h + pointwise(dwconv_t(h)))` with `h = act(FiLM_s(down(x)))` and `FiLM_s(h) = (1 + gamma(s)) * h + beta(s)`.
    The depth-wise conv runs over the whole video's time axis (all clips), so adapters carry context across the
    clips (`clip_frames` frames each) that the backbone sees separately. `up` starts at zero: a fresh adapter is the
    identity.
    """

    def __init__(self, config: TSGVConfig):
        super().__init__()
        width, bottleneck = config.backbone_config.hidden_size, config.scada_bottleneck
        kernel = config.scada_temporal_kernel
        self.down = nn.Linear(width, bottleneck)
        # without FiLM (config.scada_film False, an ablation) the adapter ignores the sentence
        self.film = nn.Linear(config.text_config.hidden_size, 2 * bottleneck) if config.scada_film else None
        self.act = nn.GELU()
        if kernel > 1:
            self.temporal_conv = nn.Conv1d(bottleneck, bottleneck, kernel, padding=kernel // 2, groups=bottleneck)
            self.pointwise = nn.Linear(bottleneck, bottleneck)
        else:
            self.temporal_conv = None
        self.up = nn.Linear(bottleneck, width)

    def forward(self, hidden: torch.Tensor, sentence: torch.Tensor, steps_per_clip: int) -> torch.Tensor:
        """hidden (B_q*C, N, D) tokens, t-major within a clip; sentence (B_q, D_text) -> (B_q*C, N, D)."""
        batch_q = sentence.shape[0]
        clips, tokens = hidden.shape[0] // batch_q, hidden.shape[1]
        h = self.down(hidden).view(batch_q, clips, tokens, -1)  # (B_q, C, N, r)
        if self.film is not None:
            gamma, beta = self.film(sentence).chunk(2, dim=-1)  # (B_q, r) each
            h = h * (1 + gamma[:, None, None]) + beta[:, None, None]
        h = self.act(h)
        if self.temporal_conv is not None:
            r = h.shape[-1]
            h5 = h.view(batch_q, clips, steps_per_clip, tokens // steps_per_clip, r)  # (B_q, C, t, hw, r)
            seq = h5.permute(0, 3, 4, 1, 2).reshape(-1, r, clips * steps_per_clip)  # (B_q*hw, r, C*t)
            seq = self.temporal_conv(seq)
            seq = seq.view(batch_q, -1, r, clips, steps_per_clip).permute(0, 3, 4, 1, 2)  # (B_q, C, t, hw, r)
            h = h + self.pointwise(seq.reshape(batch_q, clips, tokens, r))
        return hidden + self.up(h).view_as(hidden)


class SentenceStandardizer(nn.Module):
    """Standardises pooled sentence embeddings per dimension with running statistics: (s - mean) / std.

    Frozen text encoders give anisotropic embeddings (a large component shared by every sentence, dimensions of very
    different scales), which makes the projections that read the sentence learn slowly. Statistics are running
    averages over training batches (the first updates are plain cumulative means, so they settle within a few steps);
    the same statistics are used in training and evaluation, so a batch of one query behaves like any other. Starts as
    the identity (mean 0, variance 1).
    """

    def __init__(self, dim: int, momentum: float = 0.01, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def forward(self, sentence: torch.Tensor) -> torch.Tensor:
        """sentence (B_q, D_text) -> (B_q, D_text); updates the statistics in training mode."""
        if self.training and sentence.shape[0] > 1:
            with torch.no_grad():
                batch = sentence.detach().float()
                # a tensor, not a float: reading the count back would wait for the device
                rate = (1.0 / (self.num_batches_tracked + 1).float()).clamp(min=self.momentum)
                # DeepSpeed casts buffers to the training dtype (bf16): update in the buffers' own dtype
                self.running_mean.lerp_(batch.mean(0).to(self.running_mean.dtype), rate)
                self.running_var.lerp_(batch.var(0).to(self.running_var.dtype), rate)
                self.num_batches_tracked += 1
        mean, var = self.running_mean.to(sentence.dtype), self.running_var.to(sentence.dtype)
        return (sentence - mean) * torch.rsqrt(var + self.eps)


class SentenceSpatialPool(nn.Module):
    """Pools the spatial tokens of each time step with attention weights computed from the sentence embedding, and
    reports where it looked.

    weights = softmax_hw(<k(token), q(sentence)> / sqrt(D)); pooled = sum_hw weights * token. With
    `spatial_pool_location`, the step's vector also gets a projection of where the weights sit: their mean (x, y)
    position on the patch grid, their spread, and how strongly the best-matching tokens matched (logsumexp of the
    logits against the uniform level). These follow the referred region from step to step (it moves, grows, vanishes)
    in a form the head reads directly; token features carry position only implicitly. `q` and the location
    projection start at zero, so a fresh pool is the plain mean.
    """

    def __init__(self, config: TSGVConfig):
        super().__init__()
        width = config.backbone_config.hidden_size
        self.key = nn.Linear(width, width)
        self.query = nn.Linear(config.text_config.hidden_size, width)
        self.grid = config.image_size // config.backbone_config.patch_size  # patches per side
        self.location = nn.Linear(4, width) if config.spatial_pool_location else None

    def forward(self, tokens: torch.Tensor, sentence: torch.Tensor, query_video_index=None) -> torch.Tensor:
        """tokens (B_q, L_t, hw, D) — or (B_v, L_t, hw, D) with `query_video_index` (B_q,), shared by the queries of
        each video —, sentence (B_q, D_text) -> (B_q, L_t, D).

        Memory: no (B_q, L_t, hw, D) temporary. The key projection is folded into the query, <W_k t + b_k, q> =
        <t, W_k^T q> + <b_k, q>, so keys are never formed, and logits and the weighted sum are each one einsum over
        the tokens as they are; with `query_video_index`, over every (query, video) pair, the other videos' weights
        zero, so tokens are not copied per query either."""
        query = self.query(sentence)  # (B_q, D)
        folded = query @ self.key.weight  # (B_q, D): W_k^T q
        offset = (query @ self.key.bias)[:, None, None]  # (B_q, 1, 1): <b_k, q>, the same for every token
        scale = 1.0 / math.sqrt(tokens.shape[-1])
        if query_video_index is None:
            logits = (torch.einsum("qlhd,qd->qlh", tokens, folded) + offset) * scale  # (B_q, L_t, hw)
            weights = logits.softmax(dim=-1)
            pooled = torch.einsum("qlh,qlhd->qld", weights, tokens)  # (B_q, L_t, D)
        else:
            own = F.one_hot(query_video_index, tokens.shape[0]).to(tokens.dtype)  # (B_q, B_v)
            logits = torch.einsum("vlhd,qd,qv->qlh", tokens, folded, own)  # (B_q, L_t, hw): each query's own video
            logits = (logits + offset) * scale
            weights = logits.softmax(dim=-1)
            pooled = torch.einsum("qlh,qv,vlhd->qld", weights, own, tokens)  # (B_q, L_t, D)
        if self.location is None:
            return pooled
        if weights.shape[-1] != self.grid**2:
            raise ValueError(f"{weights.shape[-1]} spatial tokens per step, expected {self.grid}x{self.grid}")
        # (hw, 2) patch-centre (x, y) in [-1, 1], row-major as the patch embedding orders tokens; built here, not kept
        # as a buffer: from_pretrained leaves non-persistent buffers uninitialised
        axis = torch.linspace(-1, 1, self.grid, device=weights.device, dtype=weights.dtype)
        positions = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
        where = weights @ positions  # (B_q, L_t, 2)
        spread = (weights * (positions - where[..., None, :]).pow(2).sum(-1)).sum(-1)  # (B_q, L_t)
        peak = logits.logsumexp(-1) - math.log(weights.shape[-1])  # 0 when nothing stands out
        return pooled + self.location(torch.cat([where, spread[..., None], peak[..., None]], -1))


# ---------------------------------------------------------------------------------------------------------------------
# Grounding head: cross-modal fusion + anchor-free dense prediction
# ---------------------------------------------------------------------------------------------------------------------


def sinusoidal_positions(length: int, dim: int, device, dtype) -> torch.Tensor:
    """Fixed sin/cos embedding of time-step indices: (length, dim). Fixed, so any number of steps works."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table.to(dtype)


def mlp(in_features: int, hidden_features: int, out_features: int) -> MLP:
    """Linear -> GELU -> Linear (`torchvision.ops.MLP`: the linear layers are `0` and `3`, in memory and in files)."""
    return MLP(in_features, [hidden_features, out_features], activation_layer=nn.GELU)


class TSGVGroundingHead(nn.Module):
    """Fusion layers over video steps attending to text tokens, then per-step score and (start, end) distances."""

    def __init__(self, config: TSGVConfig):
        super().__init__()
        dim = config.head_hidden_size
        self.video_proj = nn.Sequential(nn.Linear(config.backbone_config.hidden_size, dim), nn.LayerNorm(dim))
        # the change of a step's features from its neighbours (something moved, grew, vanished) in one layer:
        # attention would have to learn to look one step back and forward first
        kernel = config.head_temporal_kernel
        self.temporal_conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2) if kernel > 1 else None
        self.text_proj = nn.Sequential(nn.Linear(config.text_config.hidden_size, dim), nn.LayerNorm(dim))
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(
                dim,
                config.head_num_heads,
                4 * dim,
                config.head_dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(config.head_layers)
        )
        # product fusion (as 2D-TAN's Hadamard product): each step's features are gated by the sentence, so a step
        # can match the sentence with one multiplication instead of an attention pattern learned over many steps
        self.sentence_gate = nn.Linear(config.text_config.hidden_size, dim) if config.head_sentence_gating else None
        self.norm = nn.LayerNorm(dim)
        self.score = mlp(dim, dim, 1)
        self.offsets = mlp(dim, dim, 2)
        self.saliency = mlp(dim, dim, 1) if config.saliency_head else None  # highlight detection (saliency.py)
        self.relevance = mlp(2 * dim, dim, 1) if config.relevance_head else None  # is it in the video (relevance.py)

    def forward(self, video: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, sentence=None, keep=None):
        """video (B_q, L_t, D), text (B_q, S, D_text), text_mask (B_q, S) 1 = token, sentence (B_q, D_text) pooled
        (needed with `head_sentence_gating`) -> logits (B_q, L_t), offsets (B_q, L_t, 2), saliency logits (B_q, L_t)
        and relevance logits (B_q,) (None without those heads). `keep`: called with the step features (B_q, L_t, d)
        before the fusion layers and after each (`OutputRecord.keep`)."""
        steps = video.shape[1]
        x = self.video_proj(video)  # (B_q, L_t, d)
        if self.temporal_conv is not None:
            x = x + self.temporal_conv(x.transpose(1, 2)).transpose(1, 2)  # (B_q, L_t, d)
        if self.sentence_gate is not None:
            x = x * self.sentence_gate(sentence)[:, None, :]
        x = x + sinusoidal_positions(steps, x.shape[-1], x.device, x.dtype)
        memory = self.text_proj(text)  # (B_q, S, d)
        padding = text_mask == 0
        if keep is not None:
            keep(x)
        for layer in self.layers:
            x = layer(x, memory, memory_key_padding_mask=padding)
            if keep is not None:
                keep(x)
        x = self.norm(x)
        logits = self.score(x).squeeze(-1)  # (B_q, L_t)
        # distances in time steps -> normalised time; softplus keeps them >= 0
        offsets = F.softplus(self.offsets(x).float()) / steps  # (B_q, L_t, 2)
        saliency = self.saliency(x).squeeze(-1) if self.saliency is not None else None  # (B_q, L_t)
        relevance = self.relevance(relevance_summary(x)).squeeze(-1) if self.relevance is not None else None  # (B_q,)
        return logits, offsets, saliency, relevance


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class TSGVVideoStates:
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


def drop_path(block: nn.Module, hidden: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """`block(hidden)` with stochastic depth (per clip, the whole block's residual update dropped with probability
    `rate` and the kept ones scaled by 1 / (1 - rate)) in training when the block trains; otherwise `block(hidden)`.
    A frozen block never drops: its output is a cached, query-independent state. hidden (B*C, N, D)."""
    out = block(hidden)
    if not training or rate == 0.0 or not any(p.requires_grad for p in block.parameters()):
        return out
    keep = (torch.rand(hidden.shape[0], 1, 1, device=hidden.device) >= rate).to(hidden.dtype) / (1.0 - rate)
    return hidden + (out - hidden) * keep


class TSGVVideoBackbone(nn.Module):
    """The video path of [`TSGVForGrounding`] in its two stages: `encode_video` runs the query-independent blocks
    once per video, `query_features` the SCADA adapters and the blocks above them once per query, then pools each
    time step (mean, or weighted by the sentence).

    Owns `video_model` (VideoMAE, its state-dict keys unchanged under `backbone.video_model.`), `adapters` (SCADA,
    keyed by block index) and `spatial_pool`.
    """

    def __init__(self, config: TSGVConfig, video_model: PreTrainedModel):
        super().__init__()
        self.config = config
        self.video_model = video_model
        use_scada = config.backbone_tuning == "scada"
        self.adapters = nn.ModuleDict({str(i): ScadaAdapter(config) for i in config.scada_layers} if use_scada else {})
        self.spatial_pool = SentenceSpatialPool(config) if config.spatial_pooling == "sentence" else None
        # our block loop checkpoints block + adapter as one call: transformers sets these two (as on every module
        # with a `gradient_checkpointing` flag) in `activation_checkpointing_enable`; which blocks are checkpointed
        # follows their own flags (`every_n_layers`), see `TSGVPreTrainedModel._set_gradient_checkpointing`
        self.gradient_checkpointing = False
        self._gradient_checkpointing_func = None
        # backbone blocks run x clips they ran on, by mode ("train" / "eval"): what video-centric batches and the
        # caches save is read here (a recomputation under activation checkpointing is not counted)
        self.block_clip_passes = {"train": 0, "eval": 0}
        layers = len(video_model.encoder.layer)
        self.drop_path_rates = [config.drop_path_rate * i / max(layers - 1, 1) for i in range(layers)]  # timm's ramp

    def set_trainable(self, mode: str, partial_layers: list[int]) -> None:
        """`requires_grad` by tuning mode: the VideoMAE blocks under "full" (all) or "partial" (`partial_layers`),
        never under "scada" / "frozen"; the adapters and the pooling always."""
        for param in self.video_model.parameters():
            param.requires_grad_(mode == "full")
        if mode == "partial":
            for i in partial_layers:
                self.video_model.encoder.layer[i].requires_grad_(True)
        self.adapters.requires_grad_(True)
        if self.spatial_pool is not None:
            self.spatial_pool.requires_grad_(True)

    def _block(self, index: int, hidden: torch.Tensor, sentence, steps_per_clip: int, backbone: bool = True):
        """Backbone block `index` (unless `backbone=False`), then its adapter when it has one and `sentence` is given.

        hidden (B*C, N, D) -> (B*C, N, D); sentence (B, D_text) or None (query-independent stage: no adapter)."""
        if backbone:
            hidden = drop_path(
                self.video_model.encoder.layer[index], hidden, self.drop_path_rates[index], self.training
            )
        if sentence is not None and str(index) in self.adapters:
            hidden = self.adapters[str(index)](hidden, sentence, steps_per_clip)
        return hidden

    def _run_block(self, index: int, hidden: torch.Tensor, sentence, steps_per_clip: int, backbone: bool = True):
        """`_block`, under activation checkpointing when it is on and the block (or its input) needs a gradient."""
        layer = self.video_model.encoder.layer[index] if backbone else None
        adapter = self.adapters[str(index)] if sentence is not None and str(index) in self.adapters else None
        if backbone:
            self.block_clip_passes["train" if self.training else "eval"] += hidden.shape[0]
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        checkpointing = checkpointing and self.video_model.encoder.layer[index].gradient_checkpointing  # every n-th
        inputs_need_grad = hidden.requires_grad or (sentence is not None and sentence.requires_grad)
        if checkpointing and (
            inputs_need_grad or any(p.requires_grad for m in (layer, adapter) if m is not None for p in m.parameters())
        ):
            # the checkpoint function transformers set up on this module (its kwargs, offloading), always the
            # non-reentrant variant: a reentrant checkpoint runs its first pass with gradients off, so a block that
            # trains above frozen inputs (the first adapter, a partial block) would get no gradient, and the
            # VideoMAE block inside would not see that it is being checkpointed (see `_set_gradient_checkpointing`)
            return self._gradient_checkpointing_func(
                self._block, index, hidden, sentence, steps_per_clip, backbone, use_reentrant=False
            )
        return self._block(index, hidden, sentence, steps_per_clip, backbone)

    @property
    def first_query_block(self) -> int | None:
        """Index of the first backbone block with a SCADA adapter (None without adapters).

        Blocks 0..first_query_block run once per video; the adapter of that block and everything above run per query.
        """
        return min(int(i) for i in self.adapters) if len(self.adapters) else None

    @property
    def last_shared_block(self) -> int:
        """Index of the last backbone block `encode_video` runs once per video: `first_query_block` (its adapter
        then runs per query), or the top block without adapters."""
        first = self.first_query_block
        return len(self.video_model.encoder.layer) - 1 if first is None else first

    def shared_modules(self) -> list[tuple[str, nn.Module]]:
        """(name, module) of what `encode_video` runs once per video, in order: the embeddings, blocks
        0..last_shared_block and, without adapters, the final layernorm. The one answer to "which part of the
        backbone is query-independent": the feature cache and the feature store key on it."""
        video = self.video_model
        modules = [("embeddings", video.embeddings)]
        modules += [(f"block{i}", video.encoder.layer[i]) for i in range(self.last_shared_block + 1)]
        if self.first_query_block is None and video.layernorm is not None:
            modules.append(("layernorm", video.layernorm))
        return modules

    def encode_video(self, pixel_values: torch.Tensor, record: OutputRecord | None = None) -> TSGVVideoStates:
        """The query-independent part of the backbone, run once per video however many queries it has.

        Args:
            pixel_values: (B_v, T, 3, H, W) normalised frames; T a multiple of clip_frames (usually config.num_frames).
            record: collects the embeddings and the outputs of the blocks below the first adapter (all blocks
                without adapters), per video (B_v*C, N, D).
        Returns:
            `TSGVVideoStates`: tokens after blocks 0..first_query_block (after all blocks and the final layernorm when
            the model has no adapters), (B_v*C, N, D). Pass them to `query_features` (or `ground`) with any number of
            queries, in one call or in chunks.
        """
        batch_v, num_frames, channels, height, width = pixel_values.shape
        clip_frames, tubelet = self.config.clip_frames, self.config.backbone_config.tubelet_size
        if num_frames % clip_frames:
            raise ValueError(
                f"pixel_values has {num_frames} frames: must be a multiple of clip_frames ({clip_frames})"
            )
        if not pixel_values.is_floating_point():
            raise ValueError(
                f"pixel_values are {pixel_values.dtype}: normalise them first (processing_tsgv.normalize_frames)"
            )
        if height != self.config.image_size or width != self.config.image_size:
            raise ValueError(
                f"frames are {height}x{width} but the model expects {self.config.image_size}x{self.config.image_size}"
            )
        clips = num_frames // clip_frames
        steps_per_clip = clip_frames // tubelet
        frames = pixel_values.reshape(batch_v * clips, clip_frames, channels, height, width)  # (B_v*C, F, 3, H, W)
        frames = frames.to(self.video_model.embeddings.patch_embeddings.projection.weight.dtype)  # cached: float16
        hidden = self.video_model.embeddings(frames, None)  # (B_v*C, N, D)
        record = record or OutputRecord()
        record.keep(hidden)
        first = self.first_query_block
        for index in range(self.last_shared_block + 1):
            hidden = self._run_block(index, hidden, None, steps_per_clip)
            if first is None or index < first:  # block `first` is recorded after its adapter, per query
                record.keep(hidden)
        if first is None and self.video_model.layernorm is not None:
            hidden = self.video_model.layernorm(hidden)
        return TSGVVideoStates(hidden, batch_v, clips, steps_per_clip)

    def query_features(
        self,
        video_states: TSGVVideoStates,
        sentence: torch.Tensor | None,
        query_video_index: torch.Tensor,
        record: OutputRecord | None = None,
    ) -> torch.Tensor:
        """The per-query part of the backbone: adapters from the first SCADA block on, then spatial pooling.

        Args:
            video_states: output of `encode_video` for B_v videos.
            sentence: (B_q, D_text) pooled sentence embeddings (may be None without adapters and sentence pooling).
            query_video_index: (B_q,) long, video of each query, in [0, B_v).
            record: collects the outputs of the blocks from the first adapter on, per query (B_q*C, N, D).
        Returns:
            (B_q, L_t, D) spatially pooled features, L_t = T / tubelet_size.
        """
        clips, steps_per_clip = video_states.clips, video_states.steps_per_clip
        hidden = video_states.hidden_states  # (B_v*C, N, D)
        batch_q = query_video_index.shape[0]
        first = self.first_query_block
        if sentence is None and (first is not None or self.spatial_pool is not None):
            raise ValueError("this model conditions the backbone or its pooling on the sentence: pass `sentence`")
        if first is not None:
            # token (b, c) of the per-query batch comes from token (video(b), c) of the per-video batch
            gather_index = query_video_index[:, None] * clips + torch.arange(clips, device=hidden.device)
            hidden = hidden[gather_index.reshape(-1)]  # (B_v*C, N, D) -> (B_q*C, N, D)
            hidden = self._run_block(first, hidden, sentence, steps_per_clip, backbone=False)  # its adapter only
            record = record or OutputRecord()
            record.keep(hidden)
            for index in range(first + 1, len(self.video_model.encoder.layer)):
                hidden = self._run_block(index, hidden, sentence, steps_per_clip)
                record.keep(hidden)
            if self.video_model.layernorm is not None:
                hidden = self.video_model.layernorm(hidden)

        batch = hidden.shape[0] // clips  # B_q after a gather, else B_v
        dim = hidden.shape[-1]
        tokens = hidden.view(batch, clips, steps_per_clip, -1, dim)  # (B, C, t, hw, D)
        tokens = tokens.reshape(batch, clips * steps_per_clip, -1, dim)  # (B, L_t, hw, D)
        if self.spatial_pool is None:
            pooled = tokens.mean(2)  # (B, L_t, D)
            if first is None:
                pooled = pooled[query_video_index]  # query-independent backbone: fan out after pooling (cheapest)
        else:
            # a query-independent backbone: keys once per video, then fan out to the queries
            fan_out = query_video_index if first is None else None
            pooled = self.spatial_pool(tokens, sentence, fan_out)  # (B_q, L_t, D)
        assert pooled.shape[0] == batch_q
        return pooled

    def video_states_from_cache(self, video_states: torch.Tensor) -> TSGVVideoStates:
        """(B_v, C, N, D) cached `encode_video` hidden states -> `TSGVVideoStates`; checks they fit this model."""
        tubelet = self.config.backbone_config.tubelet_size
        steps_per_clip = self.config.clip_frames // tubelet
        patches = (self.config.image_size // self.config.backbone_config.patch_size) ** 2
        expected = (self.config.num_frames // self.config.clip_frames, steps_per_clip * patches)
        width = self.config.backbone_config.hidden_size
        if video_states.dim() != 4 or tuple(video_states.shape[1:3]) != expected or video_states.shape[3] != width:
            raise ValueError(
                f"video_states must have shape (B_v, {expected[0]}, {expected[1]}, {width}) for this model, "
                f"got {tuple(video_states.shape)}"
            )
        batch_v, clips = video_states.shape[:2]
        dtype = next(self.video_model.parameters()).dtype
        return TSGVVideoStates(video_states.flatten(0, 1).to(dtype), batch_v, clips, steps_per_clip)


def check_query_video_index(
    query_video_index: torch.Tensor | None, num_queries: int, video_states: TSGVVideoStates, check_values: bool
) -> torch.Tensor:
    """The video of each query as a (B_q,) long tensor: `query_video_index` checked to lie in [0, B_v), or, when
    None, query i -> video i (then B_q must equal B_v). `check_values`: also check the values (reading them back
    waits for an accelerator)."""
    batch_v = video_states.num_videos
    if query_video_index is None:
        if num_queries != batch_v:
            raise ValueError(
                f"{num_queries} queries for {batch_v} videos: pass query_video_index to map queries to videos"
            )
        return torch.arange(batch_v, device=video_states.hidden_states.device)
    query_video_index = query_video_index.long()
    if (
        check_values
        and query_video_index.numel()
        and (query_video_index.min() < 0 or query_video_index.max() >= batch_v)
    ):
        raise ValueError(f"query_video_index must lie in [0, {batch_v}), got {query_video_index.tolist()}")
    return query_video_index


def check_text_states(text_states: torch.Tensor, input_ids: torch.Tensor, encoder_trains: bool) -> None:
    """ValueError unless `text_states` (B_q, S, D_text) fit `input_ids` (B_q, S) and the encoder is frozen."""
    if encoder_trains:
        raise ValueError("text_states come from a frozen text encoder: not with train_text_encoder=True")
    if text_states.shape[:2] != input_ids.shape:
        raise ValueError(f"text_states {tuple(text_states.shape)} do not match input_ids {tuple(input_ids.shape)}")


def call_directly(function, *args, **kwargs):
    """A checkpoint function that checkpoints nothing: `function(*args, **kwargs)` (see `_set_gradient_checkpointing`)."""
    return function(*args, **kwargs)


def mark_initialized(*parts) -> None:
    """Flag every module of the given models (None skipped) as initialised: a model handed in was initialised (or
    loaded) by its own constructor, and our `post_init` must not touch it. Under ZeRO-3 with several ranks,
    `_from_config` leaves part of its modules unflagged on ranks > 0, and re-initialising their partitioned (empty)
    weights fails, e.g. BERT's `weight[padding_idx]`."""
    for part in parts:
        for module in part.modules() if part is not None else ():
            module._is_hf_initialized = True


def video_backbone(video, clip_frames: int | None = None, image_size: int | None = None) -> PreTrainedModel:
    """The `VideoMAEModel` to build on: `video` itself (or the base of a VideoMAE pre-training / classification model),
    or loaded from a path / Hub name with `clip_frames` frames per clip and `image_size` px (VideoMAE's positional
    table is sinusoidal, so both may change there) by `video_backbones.load_video_backbone`, which takes every
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


class TSGVPreTrainedModel(PreTrainedModel):
    config: TSGVConfig
    config_class = TSGVConfig
    base_model_prefix = "tsgv"
    main_input_name = "pixel_values"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["ScadaAdapter", "SentenceSpatialPool", "TSGVGroundingHead"]
    _supports_sdpa = True
    # `forward` takes `num_items_in_batch` (the foreground steps of the whole optimiser step, counted by
    # `TSGVTrainer.get_batch_samples`): the Trainer then neither divides the loss by the accumulation steps nor lets
    # DDP's gradient mean shrink it (it multiplies by the number of processes), so one objective results
    accepts_loss_kwargs = True

    @classmethod
    def is_custom_code(cls) -> bool:
        # transformers skips `_init_weights` on parameter-less modules of "custom code", assuming such code writes
        # tensors in place and would clobber loaded weights. Ours goes through `transformers.initialization` (which
        # honours loaded weights), and needs the module-level inits below (adapter `up`, score prior) to run.
        return False

    def _init_weights(self, module):
        """Initialise every module tsgv adds (also under ZeRO-3, where torch's default init is switched off).

        Sub-models (VideoMAE, text encoder) are dispatched to their own `_init_weights` by transformers.
        """
        super()._init_weights(module)  # Linear/Conv: normal(initializer_range); norms: ones/zeros; MHA: torch init
        if isinstance(module, ScadaAdapter):
            init.zeros_(module.up.weight)  # identity at start: a fresh SCADA model computes the plain backbone
            init.zeros_(module.up.bias)
        elif isinstance(module, SentenceSpatialPool):
            init.zeros_(module.query.weight)  # uniform weights at start: the plain spatial mean
            init.zeros_(module.query.bias)
            if module.location is not None:
                init.zeros_(module.location.weight)
                init.zeros_(module.location.bias)
        elif isinstance(module, SentenceStandardizer):  # the identity until training has seen sentences
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, TSGVGroundingHead):
            prior = self.config.score_prior
            init.constant_(module.score[3].bias, -math.log((1 - prior) / prior))  # the output layer

    def _set_gradient_checkpointing(
        self, enable: bool = True, gradient_checkpointing_func=checkpoint, every_n_layers=1
    ):
        """transformers' flags on every module that has one (VideoMAE's blocks: every `every_n_layers`-th), as every
        model keeps them; our block loop then checkpoints each flagged block together with its adapter in one call
        (one saved input per block, not two), so a VideoMAE block's own checkpoint function becomes a direct call
        (it stays a `GradientCheckpointingLayer` called through `__call__`, so FSDP / ZeRO-3 module hooks still run).
        The block loop's checkpoint is always non-reentrant (`TSGVVideoBackbone._run_block` says why); the text
        encoder's layers checkpoint themselves, with the `use_reentrant` asked for."""
        super()._set_gradient_checkpointing(enable, gradient_checkpointing_func, every_n_layers)
        if enable and hasattr(self, "backbone"):
            for layer in self.backbone.video_model.encoder.layer:
                layer._gradient_checkpointing_func = call_directly

    # ------------------------------------------------------------------ the parts `TSGVForGrounding` builds

    @property
    def video_model(self) -> PreTrainedModel:
        """The VideoMAE backbone."""
        return self.backbone.video_model

    @property
    def adapters(self) -> nn.ModuleDict:
        """SCADA adapters keyed by block index (empty unless backbone_tuning="scada")."""
        return self.backbone.adapters

    @property
    def spatial_pool(self) -> "SentenceSpatialPool | None":
        """The sentence-weighted spatial pooling (None for mean pooling)."""
        return self.backbone.spatial_pool

    def get_input_embeddings(self) -> nn.Module:
        """The text encoder's token embeddings: the vocabulary `resize_token_embeddings` resizes (the video side has
        patch embeddings, returned by `video_model.get_input_embeddings()`)."""
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        """Replace the text encoder's token embeddings."""
        self.text_model.set_input_embeddings(value)

    def compute_loss(
        self,
        step_logits: torch.Tensor,
        step_offsets: torch.Tensor,
        labels: torch.Tensor,
        num_items_in_batch: torch.Tensor | int | None = None,
        **extra,
    ):
        """`grounding_loss` with this model's weights: (loss, {"focal", "diou", "l1"(, "saliency", "relevance")});
        `extra`: its saliency / relevance logits and labels."""
        labels = labels.to(step_logits.device)
        checks = self._checks_values(labels)
        return grounding_loss(step_logits, step_offsets, labels, self.config, checks, num_items_in_batch, **extra)

    def decode(self, step_logits: torch.Tensor, step_offsets: torch.Tensor, max_spans: int | None = None):
        """`decode_spans` with K = min(max_spans or config.max_spans, L_t): spans (B_q, K, 2), scores (B_q, K)."""
        k = min(max_spans or self.config.max_spans, step_logits.shape[1])
        return decode_spans(step_logits, step_offsets, k, self.config.nms_threshold, self.config.span_calibration)

    def trainable_parameters_report(self) -> str:
        """One line in peft's format: `trainable params: N || all params: M || trainable%: P`."""
        sizes = [(getattr(p, "ds_numel", p.numel()), p.requires_grad) for p in self.parameters()]  # ZeRO-3: full size
        trainable = sum(n for n, needs_grad in sizes if needs_grad)
        total = sum(n for n, _ in sizes)
        return (
            f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
        )

    # ------------------------------------------------------------------ forward path

    def _checks_values(self, tensor: torch.Tensor) -> bool:
        """Whether to check an input's values (not only its shape): on the CPU, where it is free; not on an
        accelerator, where reading a value back waits for all queued work (a training step, or each window of the
        pipeline, would stall on it), and not while torch.compile traces (the check would split the graph). What
        reaches an accelerator in tsgv was built valid on the CPU: the collators check labels and query indices,
        the pipeline builds its own."""
        if torch.compiler.is_compiling():
            return False
        return tensor.device.type == "cpu"

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus what transformers needs to load the folder where tsgv is not
        installed (`trust_remote_code=True`): config.json's `auto_map` (AutoConfig / AutoModel) and
        `custom_pipelines` (the grounding pipeline), and the module files they name, copied beside the weights (this
        file and the configuration by transformers; the pipeline and what it imports here)."""
        self.config.custom_pipelines = CUSTOM_PIPELINES
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            from transformers.dynamic_module_utils import get_relative_import_files

            pipeline_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline_tsgv.py")
            if os.path.isfile(pipeline_file):
                for path in [pipeline_file, *get_relative_import_files(pipeline_file)]:
                    shutil.copy(path, os.path.join(save_directory, os.path.basename(path)))
            else:  # a model loaded as remote code without its pipeline file: the folder still loads as a model
                logger.warning(f"{pipeline_file} not found: {save_directory} will not carry the pipeline's code")
        return result

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained` for safetensors weights only, then `apply_backbone_tuning` (loading
        replaces parameters and with them the `requires_grad` flags set in `__init__`). A local folder is checked
        first (`check_model_folder`): what is wrong with it comes as one `ModelFolderError` line naming the path."""
        if isinstance(pretrained_model_name_or_path, (str, os.PathLike)) and os.path.isdir(
            pretrained_model_name_or_path
        ):
            check_model_folder(pretrained_model_name_or_path)
        kwargs.setdefault("use_safetensors", True)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        # with output_loading_info=True transformers returns (model, loading_info)
        (loaded[0] if isinstance(loaded, tuple) else loaded).apply_backbone_tuning()
        return loaded


class TSGVForGrounding(TSGVPreTrainedModel):
    """Temporal sentence grounding: (video frames, sentences) -> scored (start, end) spans in normalised time.
    `TSGVForGrounding(config)(pixel_values, input_ids, attention_mask).pred_spans` is (B_q, K, 2)."""

    def __init__(self, config: TSGVConfig, video_model: PreTrainedModel | None = None, text_model=None):
        super().__init__(config)
        mark_initialized(video_model, text_model)
        video_model = video_model if video_model is not None else AutoModel.from_config(config.backbone_config)
        self.backbone = TSGVVideoBackbone(config, video_model)
        self.text_model = text_model if text_model is not None else AutoModel.from_config(config.text_config)
        self.head = TSGVGroundingHead(config)
        hidden = config.text_config.hidden_size
        self.sentence_norm = SentenceStandardizer(hidden) if config.sentence_standardization else None
        self.post_init()
        self.apply_backbone_tuning()

    def encode_video(self, pixel_values: torch.Tensor) -> TSGVVideoStates:
        """`TSGVVideoBackbone.encode_video`: (B_v, T, 3, H, W) frames -> the query-independent states."""
        return self.backbone.encode_video(pixel_values)

    # ------------------------------------------------------------------ construction and what trains

    @classmethod
    def from_backbones(cls, video, text, **config_overrides) -> "TSGVForGrounding":
        """Build a model from separately pretrained parts.

        Args:
            video: a VideoMAE model (`VideoMAEModel`, or a pre-training / classification model whose base is used) or
                a path / Hub name that `AutoModel.from_pretrained` loads.
            text: a text encoder model, or a path / Hub name (DistilBERT, BERT, MiniLM...).
            **config_overrides: `TSGVConfig` fields (e.g. `num_frames=64, backbone_tuning="scada"`). `clip_frames` and
                `image_size` are applied while loading a backbone given by path (VideoMAE's positional table is
                sinusoidal, so both may change); for a model object they must match its config.
        Returns:
            `TSGVForGrounding` whose backbone and text weights are exactly the pretrained ones.
        """
        video = video_backbone(video, config_overrides.get("clip_frames"), config_overrides.get("image_size"))
        if isinstance(text, (str, bytes)) or hasattr(text, "__fspath__"):
            text = AutoModel.from_pretrained(text)
        # each part keeps the attention it loaded with (a composite config resets its sub-configs' choice); read
        # from the private attribute: transformers has no public getter (`set_attn_implementation` is the setter)
        attention = {
            "backbone_config": video.config._attn_implementation,
            "text_config": text.config._attn_implementation,
        }
        config = TSGVConfig(backbone_config=video.config, text_config=text.config, **config_overrides)
        # `_from_config` builds our own modules under ZeRO-3's zero.Init when DeepSpeed ZeRO-3 is configured, so they
        # are partitioned and cast (e.g. to bf16) like the parts; otherwise it is a plain constructor call
        model = cls._from_config(config, video_model=video, text_model=text)
        model.set_attn_implementation(attention)
        return model

    def apply_backbone_tuning(self):
        """Set `requires_grad` by structure, once: what trains follows `config.backbone_tuning` / `train_text_encoder`."""
        self.backbone.set_trainable(self.config.backbone_tuning, self.config.partial_layers)
        self.text_model.requires_grad_(self.config.train_text_encoder)
        if getattr(self.text_model, "pooler", None) is not None:
            self.text_model.pooler.requires_grad_(False)  # unused (we mean-pool tokens); DDP rejects unused trainables
        self.head.requires_grad_(True)

    # ------------------------------------------------------------------ text

    def train(self, mode: bool = True):
        """`nn.Module.train`, except that a frozen text encoder stays in eval mode: no dropout noise on features that do
        not train, so a sentence always gets the same states (which `text_states.SentenceStates` relies on)."""
        super().train(mode)
        if not self.config.train_text_encoder:
            self.text_model.eval()
        return self

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, text_states=None):
        """input_ids / attention_mask (B_q, S) -> token states (B_q, S, D_text) and mean-pooled sentence (B_q, D_text).

        `text_states` (B_q, S, D_text): the frozen encoder's states of these sentences, computed earlier
        (`text_states.SentenceStates`, served by the collator): used instead of running the encoder."""
        if text_states is not None:
            check_text_states(text_states, input_ids, self.config.train_text_encoder and self.training)
            tokens = text_states.to(self.text_model.dtype)  # as the encoder would give them
        else:
            tokens = self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask[..., None].to(tokens.dtype)  # (B_q, S, 1)
        sentence = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return tokens, sentence

    # ------------------------------------------------------------------ forward path

    def _check_inputs(self, pixel_values, input_ids, video_states, token_type_ids) -> None:
        """`forward`'s inputs, checked: sentences given, exactly one of frames and cached states, one segment only."""
        if token_type_ids is not None and self._checks_values(token_type_ids) and bool(token_type_ids.any()):
            raise ValueError("token_type_ids must be all zero: each query is a single sentence, not a sentence pair")
        if input_ids is None:
            raise ValueError("input_ids are required: the sentences to ground")
        if (pixel_values is None) == (video_states is None):
            raise ValueError("pass exactly one of pixel_values (frames) and video_states (cached encode_video states)")

    def _output_record(self, output_hidden_states, output_attentions, cached: bool = False) -> OutputRecord:
        """The `OutputRecord` for `forward`'s flags (None: the config's); hidden-state indices resolved against the
        full count (the backbone's num_hidden_layers + 1, the head's head_layers + 1), as transformers resolves them.
        `cached`: the forward starts from cached video states, whose blocks do not run (ValueError if asked for)."""
        config = self.config
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
            selected = resolve_hidden_states_indices(self, selected, total)
        return OutputRecord([] if output_hidden_states else None, [] if output_attentions else None, selected)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        query_video_index: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        durations_s: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        video_states: torch.Tensor | None = None,
        text_states: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | int | list[int] | None = None,
        return_dict: bool | None = None,
        saliency_labels: torch.Tensor | None = None,
        relevance_labels: torch.Tensor | None = None,
    ) -> TSGVGroundingOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B_v, T, 3, H, W)`): normalised frames sampled by time over
                each whole video (see [`TSGVProcessor`]); T a multiple of `clip_frames`.
            input_ids / attention_mask (`torch.LongTensor` of shape `(B_q, S)`): the tokenised sentences; 1 = token.
            query_video_index (`torch.LongTensor` of shape `(B_q,)`, *optional*): the video (row of `pixel_values`)
                of each query; `None`: one query per video (B_q == B_v).
            labels (`torch.FloatTensor` of shape `(B_q, 2)` or `(B_q, W, 2)`, *optional*): ground-truth (start, end)
                in normalised time [0, 1], several moments per query padded with -100 (all padding: no loss).
            durations_s (`torch.FloatTensor` of shape `(B_v,)`, *optional*): video durations in seconds, unused (the
                model works in normalised time); accepted because the Trainer hands every batch entry to `forward`.
            token_type_ids (`torch.LongTensor` of shape `(B_q, S)`, *optional*): accepted so that a tokenizer's output
                can be passed whole; each query is one sentence, so a non-zero entry is an error.
            video_states (`torch.FloatTensor` of shape `(B_v, C, N, D)`, *optional*): instead of `pixel_values`, the
                videos' `encode_video` states computed earlier with the same frozen weights (`feature_cache`).
            text_states (`torch.FloatTensor` of shape `(B_q, S, D_text)`, *optional*): the frozen text encoder's
                states of `input_ids`, served by the collator (`text_states.py`).
            num_items_in_batch (`torch.Tensor` or `int`, *optional*): foreground time steps of the whole optimiser
                step (all micro-batches and processes) the loss is divided by (the Trainer passes it); None: this
                batch's own.
            output_attentions (`bool`, *optional*): return the backbone blocks' attention weights (eager attention
                only); output_hidden_states (`bool` or `list[int]`, *optional*): return the backbone's and the head's
                hidden states, all or those at the given indices; return_dict (`bool`, *optional*): the output or its
                `to_tuple()`. Defaults: the config's.
            saliency_labels (`(B_q, R, 3)`) / relevance_labels (`(B_q,)`), *optional*: rated clips (start, end,
                saliency; -100 padding) and presence (1 / 0 / -100 unknown), for those heads' losses.
        Returns:
            [`TSGVGroundingOutput`] (or its `to_tuple()`).
        """
        self._check_inputs(pixel_values, input_ids, video_states, token_type_ids)
        record = self._output_record(output_hidden_states, output_attentions, cached=video_states is not None)
        text = {"text_states": text_states, "num_items_in_batch": num_items_in_batch, "record": record,
                "saliency_labels": saliency_labels, "relevance_labels": relevance_labels}  # fmt: skip
        with record.attention_hooks(self.video_model):
            if video_states is None:
                states = self.backbone.encode_video(pixel_values, record)
            else:
                states = self.backbone.video_states_from_cache(video_states)
            out = self.ground(states, input_ids, attention_mask, query_video_index, labels, **text)
        if record.attentions == []:
            logger.warning_once("attention weights are computed only by attn_implementation='eager': none returned")
        return out if (self.config.return_dict if return_dict is None else return_dict) else out.to_tuple()

    def ground(
        self,
        video_states: TSGVVideoStates,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        query_video_index: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_spans: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        text_states: torch.Tensor | None = None,
        record: OutputRecord | None = None,
        saliency_labels: torch.Tensor | None = None,
        relevance_labels: torch.Tensor | None = None,
    ) -> TSGVGroundingOutput:
        r"""Ground queries in videos already encoded by `encode_video` (`forward` = `encode_video` + `ground`).

        Calling `ground` several times on the same `video_states` (e.g. chunks of a long query list) gives the same
        result per query as one call with all queries: the query-independent blocks are not run again.

        Args:
            video_states: `encode_video(pixel_values)` of B_v videos.
            input_ids / attention_mask (`(B_q, S)`), query_video_index (`(B_q,)`), labels: as in `forward`.
            return_spans: False skips NMS / top-K (`pred_spans` / `pred_scores` are then None), for callers that rank
                the per-step candidates themselves (the inference pipeline merges them across windows). Default:
                decode, except in training mode with `labels` (a training step needs only the loss).
            num_items_in_batch: the loss's normaliser, as in `forward`.
            text_states: the frozen text encoder's states of `input_ids`, as in `forward`.
            record: an `OutputRecord` collecting the per-query blocks' (and the head's) outputs (`forward`'s flags).
            saliency_labels / relevance_labels: as in `forward`.
        Returns:
            [`TSGVGroundingOutput`].
        """
        attention_mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        checks = self._checks_values(query_video_index) if query_video_index is not None else False
        query_video_index = check_query_video_index(query_video_index, input_ids.shape[0], video_states, checks)
        return_spans = not (self.training and labels is not None) if return_spans is None else return_spans
        text_tokens, sentence = self.encode_text(input_ids, attention_mask, text_states)
        if self.sentence_norm is not None:
            sentence = self.sentence_norm(sentence)
        record = record or OutputRecord()
        video = self.backbone.query_features(video_states, sentence, query_video_index, record)  # (B_q, L_t, D)
        text = (text_tokens, attention_mask, sentence)
        targets = {"labels": labels, "saliency_labels": saliency_labels, "relevance_labels": relevance_labels}
        return self._answer(video, text, record, targets, num_items_in_batch, return_spans)

    def _answer(self, video, text, record: OutputRecord, targets: dict, num_items_in_batch, return_spans: bool):
        """The head on per-query video features (B_q, L_t, D) and `text` (tokens, mask, pooled sentence): its
        outputs, the loss when `targets` has `labels` (and the saliency / relevance labels), decoded spans when
        `return_spans`."""
        step_logits, step_offsets, salient, relevant = self.head(video, *text, record.keep)
        step_logits = step_logits.float()
        loss = loss_dict = pred_spans = pred_scores = None
        if targets["labels"] is not None:
            extra = {"saliency_logits": salient, "saliency_labels": targets["saliency_labels"],
                     "relevance_logits": relevant, "relevance_labels": targets["relevance_labels"]}  # fmt: skip
            loss, loss_dict = self.compute_loss(
                step_logits, step_offsets, targets["labels"], num_items_in_batch, **extra
            )
        if return_spans:
            pred_spans, pred_scores = self.decode(step_logits, step_offsets)
        return TSGVGroundingOutput(
            loss=loss,
            pred_spans=pred_spans,
            pred_scores=pred_scores,
            step_logits=step_logits,
            step_offsets=step_offsets,
            step_saliency=step_saliency(step_logits, salient),
            relevance=calibrated_probability(relevant.float(), self.config.relevance_calibration)
            if relevant is not None
            else None,
            video_hidden_states=video,
            loss_dict=loss_dict,
            **record.outputs(),
        )


TSGVForGrounding.register_for_auto_class("AutoModel")  # save_pretrained writes auto_map and copies this file

__all__ = [
    "TSGVForGrounding",
    "TSGVVideoStates",
    "video_backbone",
    "TSGVVideoBackbone",
    "check_query_video_index",
    "TSGVPreTrainedModel",
    "TSGVGroundingOutput",
    "ScadaAdapter",
    "SentenceSpatialPool",
    "TSGVGroundingHead",
]
