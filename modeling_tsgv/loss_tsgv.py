"""The grounding loss: each time step is assigned the shortest ground-truth moment containing its centre; focal
loss on the per-step scores, DIoU and L1 on the spans of the assigned (foreground) steps, plus the optional saliency
and relevance terms. Kept apart from the model (as transformers keeps its losses in `loss/`).

Shapes: B_q queries, L_t time steps, W ground-truth moments per query (padded with -100), in normalised time.
"""

import math

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from .relevance import relevance_loss
from .saliency import saliency_loss
from .spans import offsets_to_spans, step_centers


def diou_loss_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1-D distance-IoU loss, elementwise: pred/target (..., 2) spans -> (...,).

    Written by hand because torchvision's `distance_box_iou_loss` is 2-D: its enclosing-box diagonal would add the
    (constant) box height to the normaliser and change the loss.
    """
    inter = (torch.min(pred[..., 1], target[..., 1]) - torch.max(pred[..., 0], target[..., 0])).clamp(min=0)
    union = (pred[..., 1] - pred[..., 0]) + (target[..., 1] - target[..., 0]) - inter
    iou = inter / union.clamp(min=eps)
    hull = torch.max(pred[..., 1], target[..., 1]) - torch.min(pred[..., 0], target[..., 0])
    centre_gap = (pred[..., 0] + pred[..., 1] - target[..., 0] - target[..., 1]) / 2
    return 1 - iou + centre_gap.pow(2) / hull.clamp(min=eps).pow(2)


def assign_targets(moments: torch.Tensor, num_steps: int):
    """Assign each time step to a ground-truth moment.

    Args:
        moments: (B_q, W, 2) moments in normalised time; rows padded with negative values (-100) are ignored.
    Returns:
        positive (B_q, L_t) bool: the step centre lies inside a moment (each moment's central step always counts);
        target (B_q, L_t, 2): the shortest moment containing the step (zeros where not positive).
    """
    centers = step_centers(num_steps, moments.device)  # (L_t,)
    start, end = moments[..., 0], moments[..., 1]  # (B_q, W)
    valid = start >= 0
    inside = (centers[None, :, None] >= start[:, None]) & (centers[None, :, None] <= end[:, None])  # (B_q, L_t, W)
    central = ((start + end) / 2 * num_steps).long().clamp(0, num_steps - 1)  # (B_q, W)
    inside |= F.one_hot(central, num_steps).transpose(1, 2).bool()
    inside &= valid[:, None, :]
    length = torch.where(inside, (end - start)[:, None, :], torch.full_like(inside, math.inf, dtype=moments.dtype))
    best = length.argmin(-1)  # (B_q, L_t)
    target = torch.gather(moments, 1, best[..., None].expand(-1, -1, 2))  # (B_q, L_t, 2)
    positive = inside.any(-1)
    return positive, torch.where(positive[..., None], target, torch.zeros_like(target))


def normalize_labels(labels: torch.Tensor, check_values: bool = True) -> torch.Tensor:
    """labels (B_q, 2) or (B_q, W, 2) in normalised time -> (B_q, W, 2); checks range and order of real moments
    (unless `check_values=False`: reading values back from an accelerator waits for it)."""
    if labels.dim() == 2:
        labels = labels[:, None, :]
    if labels.dim() != 3 or labels.shape[-1] != 2:
        raise ValueError(f"labels must have shape (B_q, 2) or (B_q, W, 2), got {tuple(labels.shape)}")
    if not check_values:
        return labels.float()
    valid = labels[..., 0] >= 0
    real = labels[valid]
    if real.numel() and (real.min() < 0 or real.max() > 1 + 1e-6 or (real[:, 1] < real[:, 0]).any()):
        raise ValueError("labels must be (start, end) in normalised time with 0 <= start <= end <= 1 (pad with -100)")
    return labels.float()


def count_positive_steps(labels: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Foreground time steps of a batch: the normaliser of `grounding_loss`.

    Args: labels (B_q, 2) or (B_q, W, 2) in normalised time, padded with -100; num_steps: L_t of the model
        (`config.num_time_steps`).
    Returns: a 0-d int64 tensor on `labels`' device (no wait for the device).
    """
    positive, _ = assign_targets(normalize_labels(labels, check_values=False), num_steps)
    return positive.sum()


def grounding_loss(
    step_logits: torch.Tensor,
    step_offsets: torch.Tensor,
    labels: torch.Tensor,
    config,
    check_values: bool = True,
    num_items_in_batch: torch.Tensor | int | None = None,
    saliency_logits: torch.Tensor | None = None,
    saliency_labels: torch.Tensor | None = None,
    relevance_logits: torch.Tensor | None = None,
    relevance_labels: torch.Tensor | None = None,
):
    """Focal loss on step scores + DIoU and L1 on the spans of foreground steps, weighted by `config`'s
    `loss_{focal,diou,l1}_weight` (focal with `focal_alpha` / `focal_gamma`); with `saliency_logits` (B_q, L_t), the
    saliency head's cross-entropy (`saliency.saliency_loss`, against `saliency_labels` (B_q, R, 3) rated clips or
    the moment masks), weighted by `loss_saliency_weight`; with `relevance_logits` (B_q,) and `relevance_labels` (B_q,),
    the relevance head's cross-entropy (`relevance.relevance_loss`), weighted by `loss_relevance_weight`.

    Args: step_logits (B_q, L_t); step_offsets (B_q, L_t, 2); labels (B_q, 2) or (B_q, W, 2) normalised, padded with
        -100; check_values: check the labels' range (reading values back waits for an accelerator);
        num_items_in_batch: foreground steps of the whole optimiser step (every micro-batch of a gradient
            accumulation, every process: `count_positive_steps` summed, as the Trainer's `get_batch_samples` does in
            `TSGVTrainer`). Given, each term is this batch's sum over that total, so the sum over micro-batches (and
            processes) is one mean over the whole step whatever the split; None: this batch's own foreground steps.
    Returns: (loss scalar, {"focal", "diou", "l1"(, "saliency", "relevance")} unweighted scalars), each term
        averaged over foreground steps.
    """
    moments = normalize_labels(labels, check_values)
    has_label = (moments[..., 0] >= 0).any(-1)  # (B_q,)
    positive, target = assign_targets(moments, step_logits.shape[1])  # target zeros where not positive
    normaliser = positive.sum() if num_items_in_batch is None else num_items_in_batch
    normaliser = torch.as_tensor(normaliser, device=step_logits.device).float().clamp(min=1)
    # masks instead of boolean indexing: no wait for the device, shapes fixed (torch.compile traces one graph)
    focal = sigmoid_focal_loss(step_logits, positive.float(), alpha=config.focal_alpha, gamma=config.focal_gamma)
    focal = (focal * has_label[:, None]).sum()  # (B_q, L_t) -> scalar
    spans = offsets_to_spans(step_offsets)  # (B_q, L_t, 2)
    weight = positive.to(spans.dtype)
    diou = (diou_loss_1d(spans, target) * weight).sum()
    l1 = ((spans - target).abs().sum(-1) * weight).sum()
    terms = {"focal": focal / normaliser, "diou": diou / normaliser, "l1": l1 / normaliser}
    loss = (
        config.loss_focal_weight * terms["focal"]
        + config.loss_diou_weight * terms["diou"]
        + config.loss_l1_weight * terms["l1"]
    )
    if saliency_logits is not None:
        centers = step_centers(step_logits.shape[1], step_logits.device)
        terms["saliency"] = saliency_loss(saliency_logits, saliency_labels, positive, has_label, centers, normaliser)
        loss = loss + config.loss_saliency_weight * terms["saliency"]
    if relevance_logits is not None and relevance_labels is not None:
        terms["relevance"] = relevance_loss(relevance_logits, relevance_labels, normaliser)
        loss = loss + config.loss_relevance_weight * terms["relevance"]
    return loss, {k: v.detach() for k, v in terms.items()}
