"""Highlight detection: how much each time step matters to a sentence (QVHighlights' "saliency").

A model with `config.saliency_head` reads a per-step saliency logit from the head's fused step features, trained
with binary cross-entropy against soft targets: a step's target is the annotators' mean rating / 4 of the rated
clip its centre falls in (QVHighlights' `saliency_scores`; 0 in unrated clips), and where a query has no ratings,
whether the step lies inside one of its moments. Without the head, a step's saliency is its foreground
probability (`sigmoid(step_logits)`), which the grounding loss trains from the moment masks.
"""

import torch
import torch.nn.functional as F


def step_saliency(step_logits: torch.Tensor, saliency_logits: torch.Tensor | None) -> torch.Tensor:
    """(B_q, L_t) saliency in [0, 1]: the saliency head's probabilities, or the foreground probabilities without one."""
    return (saliency_logits if saliency_logits is not None else step_logits).float().sigmoid()


def saliency_targets(ratings: torch.Tensor | None, positive: torch.Tensor, centers: torch.Tensor):
    """Per-step targets and which queries have one.

    Args:
        ratings: (B_q, R, 3) rated clips (start, end, saliency in [0, 1]) in normalised time, padded with -100
            (`VideoCentricCollator`'s `saliency_labels`), or None.
        positive: (B_q, L_t) bool, the step lies inside a moment (`assign_targets`).
        centers: (L_t,) step centres in normalised time.
    Returns:
        targets (B_q, L_t) in [0, 1]; rated (B_q,) bool, the query's targets come from ratings.
    """
    if ratings is None:
        return positive.float(), torch.zeros(positive.shape[0], dtype=torch.bool, device=positive.device)
    start, end, score = ratings.to(positive.device).float().unbind(-1)  # (B_q, R) each
    valid = start >= 0
    inside = (centers[None, :, None] >= start[:, None]) & (centers[None, :, None] < end[:, None]) & valid[:, None]
    from_ratings = torch.where(inside, score[:, None, :], torch.zeros_like(score[:, None, :])).amax(-1)  # (B_q, L_t)
    rated = valid.any(-1)
    return torch.where(rated[:, None], from_ratings, positive.float()), rated


def saliency_loss(saliency_logits, ratings, positive, has_label, centers, normaliser) -> torch.Tensor:
    """Binary cross-entropy of the saliency logits (B_q, L_t) against `saliency_targets`, summed over the steps of
    queries with a target (ratings or moments) and divided by `normaliser` (the grounding loss's: foreground steps of
    the whole optimiser step), so that it adds up over micro-batches as the other terms do."""
    targets, rated = saliency_targets(ratings, positive, centers)
    counted = (rated | has_label).float()[:, None]  # (B_q, 1)
    bce = F.binary_cross_entropy_with_logits(saliency_logits.float(), targets, reduction="none")
    return (bce * counted).sum() / normaliser


__all__ = ["saliency_loss", "saliency_targets", "step_saliency"]
