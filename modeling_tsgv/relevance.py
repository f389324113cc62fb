"""Relevance: is the described moment in the video at all?

A model with `config.relevance_head` reads one logit per query from its fused step features (their max and mean over
time, so one matching stretch suffices), trained with binary cross-entropy: 1 for a query with a moment, 0 for a
negative query — a sentence of another video in the batch (`VideoCentricCollator(negatives_per_video=...)`, as
RaTSG builds them) or an annotated absent query. The probability is `relevance` in the model's output; below
`config.relevance_threshold` an answer is "probably not in this video".
"""

import torch
import torch.nn.functional as F


def relevance_summary(steps: torch.Tensor) -> torch.Tensor:
    """(B_q, L_t, d) fused step features -> (B_q, 2d): their max and mean over time."""
    return torch.cat([steps.max(1).values, steps.mean(1)], dim=-1)


def relevance_loss(relevance_logits: torch.Tensor, relevance_labels: torch.Tensor, normaliser) -> torch.Tensor:
    """Binary cross-entropy of (B_q,) logits against (B_q,) labels (1 present, 0 absent, -100 unknown: not counted),
    summed and divided by `normaliser` (the grounding loss's, so micro-batches add up to one objective)."""
    labels = relevance_labels.to(relevance_logits.device).float()
    known = (labels >= 0).float()
    bce = F.binary_cross_entropy_with_logits(relevance_logits.float(), labels.clamp(min=0.0), reduction="none")
    return (bce * known).sum() / normaliser


__all__ = ["relevance_loss", "relevance_summary"]
