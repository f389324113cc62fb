"""TSGVTrainer: the transformers Trainer with video-major evaluation outputs, grounding metrics and a correct resume.

- Evaluation outputs are packed video-major, `(B_v, Q_max, ...)` padded with -100, because the Trainer pads across
  processes only along dim 1: a flat `(B_q, ...)` tensor has a different first dimension on each rank and breaks the
  gather (gloo aborts). `compute_metrics` unpacks them.
- transformers 5.24's checkpoint reload (`_load_from_checkpoint`, `_load_best_model`) skips the VideoMAE key renaming
  that `from_pretrained` applies (`...attention.attention.q_bias` -> `query.bias`), silently leaving those weights
  fresh on resume (upstream huggingface/transformers#43701). We load checkpoints with the renaming and strict=True.
"""

import os
import re
from collections.abc import Callable

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback
from transformers.utils import logging

from .metrics import grounding_metrics

logger = logging.get_logger(__name__)

PAD = -100.0
# the renaming `VideoMAEModel.from_pretrained` applies to VideoMAE's legacy checkpoint names
VIDEOMAE_KEY_RENAMES = [
    (re.compile(r"attention\.attention\.q_bias$"), "attention.attention.query.bias"),
    (re.compile(r"attention\.attention\.v_bias$"), "attention.attention.value.bias"),
]


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
    Returns: list of dicts {video, query, spans_s (K, 3) [start, end, score], windows_s (list of [s, e])}.
    """
    queries = []
    for v in range(spans.shape[0]):
        for q in range(spans.shape[1]):
            if spans[v, q, 0, 0] == PAD:
                continue
            duration = float(durations_s[v])
            ranked = np.concatenate([np.clip(spans[v, q] * duration, 0, duration), scores[v, q][:, None]], axis=1)
            windows = [] if labels is None else [list(w * duration) for w in labels[v, q] if w[0] != PAD]
            queries.append({"video": v, "query": q, "spans_s": ranked, "windows_s": windows})
    return queries


def compute_grounding_metrics(eval_pred) -> dict[str, float]:
    """`compute_metrics` for the Trainer: R1/R5 @ 0.3/0.5/0.7 and mIoU (%) over queries that have windows."""
    spans, scores = eval_pred.predictions[:2]
    labels, durations_s = eval_pred.label_ids
    queries = [q for q in unpack_predictions(spans, scores, labels, durations_s) if q["windows_s"]]
    metrics = grounding_metrics([q["spans_s"] for q in queries], [q["windows_s"] for q in queries])
    metrics["num_queries"] = float(len(queries))
    return metrics


class EpochCallback(TrainerCallback):
    """Tells seeded data pieces (FrameTransform, collators: anything with `set_epoch`) which epoch starts."""

    def __init__(self, *targets):
        self.targets = targets

    def on_epoch_begin(self, args, state, control, **kwargs):
        for target in self.targets:
            target.set_epoch(int(state.epoch or 0))


class TSGVTrainer(Trainer):
    """Trainer for `TSGVForGrounding` with video-centric batches.

    Args (beyond `Trainer`'s):
        eval_data_collator: collator for evaluation / prediction (e.g. all queries of a video, uniform frames);
            training uses `data_collator`.
    """

    def __init__(self, *args, eval_data_collator: Callable | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator or self.data_collator

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
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            outputs = model(**inputs)
        loss = outputs.loss.detach() if outputs.loss is not None else None
        if prediction_loss_only:
            return loss, None, None
        videos = inputs["pixel_values"] if inputs.get("pixel_values") is not None else inputs["video_states"]
        index, num_videos = inputs["query_video_index"], videos.shape[0]
        spans = pack_video_major(outputs.pred_spans.float(), index, num_videos)
        scores = pack_video_major(outputs.pred_scores.float(), index, num_videos)
        labels = inputs.get("labels")
        if labels is not None:
            labels = pack_video_major(
                labels.float() if labels.dim() == 3 else labels[:, None].float(), index, num_videos
            )
        else:  # label-less data: an all-padding label block keeps the output structure fixed
            labels = spans.new_full((num_videos, spans.shape[1], 1, 2), PAD)
        return loss, (spans, scores), (labels, inputs["durations_s"].float())

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not self._load_safetensors_with_videomae_renames(resume_from_checkpoint, model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self):
        best = self.state.best_model_checkpoint
        if best is None or not self._load_safetensors_with_videomae_renames(best, None):
            super()._load_best_model()
        else:
            logger.info(f"Loaded best model from {best} (score: {self.state.best_metric}).")

    def _load_safetensors_with_videomae_renames(self, folder: str, model) -> bool:
        """Load `folder/model.safetensors` strictly, with VideoMAE's key renaming; False when not applicable
        (DeepSpeed / FSDP / sharded checkpoints are left to the Trainer)."""
        path = os.path.join(folder, "model.safetensors")
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or not os.path.isfile(path):
            return False
        model = model if model is not None else self.model
        state = load_file(path, device="cpu")
        for pattern, replacement in VIDEOMAE_KEY_RENAMES:
            state = {pattern.sub(replacement, key): value for key, value in state.items()}
        self.accelerator.unwrap_model(model).load_state_dict(state, strict=True)
        return True


__all__ = ["TSGVTrainer", "EpochCallback", "pack_video_major", "unpack_predictions", "compute_grounding_metrics"]
