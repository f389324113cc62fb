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

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import logging

from .calibration import calibrated_probability
from .configuration_tsgv import TSGVConfig
from .input_checks import (
    check_forward_inputs,
    check_pixel_values,
    check_query_video_index,
    check_text_states,
)
from .layers_tsgv import SentenceStandardizer, attention_location, drop_path, mlp, sinusoidal_positions
from .outputs_tsgv import OutputRecord, TSGVEncodedVideos, TSGVGroundingOutput, TSGVVideoStates, output_record
from .pretrained_tsgv import TSGVPreTrainedMixin, block_needs_checkpoint, mark_initialized, without_hub_kernels
from .relevance import relevance_summary
from .saliency import step_saliency
from .video_backbones import video_backbone

logger = logging.get_logger(__name__)

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
        return pooled + self.location(attention_location(weights, logits, self.grid))  # (B_q, L_t, D)


# ---------------------------------------------------------------------------------------------------------------------
# Grounding head: cross-modal fusion + anchor-free dense prediction
# ---------------------------------------------------------------------------------------------------------------------


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
        fusion = {"activation": "gelu", "batch_first": True, "norm_first": True}
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(dim, config.head_num_heads, 4 * dim, config.head_dropout, **fusion)
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
        """`_block`, under activation checkpointing (non-reentrant) when it is on for block `index` and the call needs
        a gradient (`pretrained_tsgv.block_needs_checkpoint`)."""
        layer = self.video_model.encoder.layer[index]
        adapter = self.adapters[str(index)] if sentence is not None and str(index) in self.adapters else None
        if backbone:
            self.block_clip_passes["train" if self.training else "eval"] += hidden.shape[0]
        if block_needs_checkpoint(self, layer, [layer if backbone else None, adapter], [hidden, sentence]):
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

    def encode_video(self, pixel_values: torch.Tensor, record: OutputRecord | None = None) -> TSGVEncodedVideos:
        """The query-independent part of the backbone, run once per video however many queries it has.

        Args:
            pixel_values: (B_v, T, 3, H, W) normalised frames; T a multiple of clip_frames (usually config.num_frames).
            record: collects the embeddings and the outputs of the blocks below the first adapter (all blocks
                without adapters), per video (B_v*C, N, D).
        Returns:
            `TSGVEncodedVideos`: tokens after blocks 0..first_query_block (after all blocks and the final layernorm when
            the model has no adapters), (B_v*C, N, D). Pass them to `query_features` (or `ground`) with any number of
            queries, in one call or in chunks.
        """
        check_pixel_values(pixel_values, self.config)
        batch_v, num_frames, channels, height, width = pixel_values.shape
        clip_frames, tubelet = self.config.clip_frames, self.config.backbone_config.tubelet_size
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
        return TSGVEncodedVideos(hidden, batch_v, clips, steps_per_clip)

    def query_features(
        self,
        encoded: TSGVEncodedVideos,
        sentence: torch.Tensor | None,
        query_video_index: torch.Tensor,
        record: OutputRecord | None = None,
    ) -> torch.Tensor:
        """The per-query part of the backbone: adapters from the first SCADA block on, then spatial pooling.

        Args:
            encoded: output of `encode_video` for B_v videos.
            sentence: (B_q, D_text) pooled sentence embeddings (may be None without adapters and sentence pooling).
            query_video_index: (B_q,) long, video of each query, in [0, B_v).
            record: collects the outputs of the blocks from the first adapter on, per query (B_q*C, N, D).
        Returns:
            (B_q, L_t, D) spatially pooled features, L_t = T / tubelet_size.
        """
        clips, steps_per_clip = encoded.clips, encoded.steps_per_clip
        hidden = encoded.hidden_states  # (B_v*C, N, D)
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


class TSGVPreTrainedModel(TSGVPreTrainedMixin, PreTrainedModel):
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
        without_hub_kernels(self)  # the parts handed in were loaded with them on
        self.apply_backbone_tuning()

    def encode_video(self, pixel_values: torch.Tensor) -> TSGVEncodedVideos:
        """`TSGVVideoBackbone.encode_video`: (B_v, T, 3, H, W) frames -> the query-independent states."""
        return self.backbone.encode_video(pixel_values)

    # ------------------------------------------------------------------ construction and what trains

    def apply_backbone_tuning(self):
        """Set `requires_grad` by structure, once: what trains follows `config.backbone_tuning` / `train_text_encoder`."""
        self.backbone.set_trainable(self.config.backbone_tuning, self.config.partial_layers)
        self.text_model.requires_grad_(self.config.train_text_encoder)
        if getattr(self.text_model, "pooler", None) is not None:
            self.text_model.pooler.requires_grad_(False)  # unused (we mean-pool tokens); DDP rejects unused trainables
        self.head.requires_grad_(True)

    # ------------------------------------------------------------------ text

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
            durations_s (`(B_v,)`) / token_type_ids (`(B_q, S)`), *optional*: accepted because the Trainer and a
                tokenizer hand them over; durations are unused (the model works in normalised time), and each query
                is one sentence, so a non-zero token type is an error.
            video_states (`torch.FloatTensor` of shape `(B_v, C, N, D)`, *optional*): instead of `pixel_values`, the
                videos' `encode_video` states computed earlier with the same frozen weights (`feature_cache`).
            text_states (`torch.FloatTensor` of shape `(B_q, S, D_text)`, *optional*): the frozen text encoder's
                states of `input_ids`, served by the collator (`text_states.py`).
            num_items_in_batch (`torch.Tensor` or `int`, *optional*): foreground time steps of the whole optimiser
                step (all micro-batches and processes) the loss is divided by (the Trainer passes it); None: this
                batch's own.
            output_attentions / output_hidden_states (`bool`, or `list[int]` of indices) / return_dict, *optional*:
                the backbone blocks' attention weights (eager attention only), the backbone's and the head's hidden
                states, the output or its `to_tuple()`; defaults: the config's.
            saliency_labels (`(B_q, R, 3)`) / relevance_labels (`(B_q,)`), *optional*: rated clips (start, end,
                saliency; -100 padding) and presence (1 / 0 / -100 unknown), for those heads' losses.
        Returns:
            [`TSGVGroundingOutput`] (or its `to_tuple()`).
        """
        check_forward_inputs(pixel_values, input_ids, video_states, token_type_ids, self._checks_values)
        record = output_record(self, output_hidden_states, output_attentions, cached=video_states is not None)
        text = {"text_states": text_states, "num_items_in_batch": num_items_in_batch, "record": record,
                "saliency_labels": saliency_labels, "relevance_labels": relevance_labels}  # fmt: skip
        with record.attention_hooks(self.video_model):
            if video_states is None:
                states = self.backbone.encode_video(pixel_values, record)
            else:
                states = TSGVEncodedVideos.from_cache(video_states, self.config, self.video_model.dtype)
            out = self.ground(states, input_ids, attention_mask, query_video_index, labels, **text)
        if record.attentions == []:
            logger.warning_once("attention weights are computed only by attn_implementation='eager': none returned")
        return out if (self.config.return_dict if return_dict is None else return_dict) else out.to_tuple()

    def ground(
        self,
        encoded: TSGVEncodedVideos,
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

        Calling `ground` several times on the same `encoded` (e.g. chunks of a long query list) gives the same
        result per query as one call with all queries: the query-independent blocks are not run again.

        Args:
            encoded: `encode_video(pixel_values)` of B_v videos.
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
        device = encoded.hidden_states.device
        query_video_index = check_query_video_index(
            query_video_index, input_ids.shape[0], encoded.num_videos, device, checks
        )
        return_spans = not (self.training and labels is not None) if return_spans is None else return_spans
        text_tokens, sentence = self.encode_text(input_ids, attention_mask, text_states)
        if self.sentence_norm is not None:
            sentence = self.sentence_norm(sentence)
        record = record or OutputRecord()
        video = self.backbone.query_features(encoded, sentence, query_video_index, record)  # (B_q, L_t, D)
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
        relevance = (
            None if relevant is None else calibrated_probability(relevant.float(), self.config.relevance_calibration)
        )
        return TSGVGroundingOutput(
            loss=loss, pred_spans=pred_spans, pred_scores=pred_scores, step_logits=step_logits,
            step_offsets=step_offsets, step_saliency=step_saliency(step_logits, salient), relevance=relevance,
            video_hidden_states=video, loss_dict=loss_dict, **record.outputs(),
        )  # fmt: skip


TSGVForGrounding.register_for_auto_class("AutoModel")  # save_pretrained writes auto_map and copies this file

__all__ = [
    "TSGVForGrounding",
    "TSGVEncodedVideos",
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
